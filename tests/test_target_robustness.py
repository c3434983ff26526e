"""Bad input hurts only the client that sent it; connection bookkeeping stays exact."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest
import websocket

from target_app.process import TargetProcess

from .conftest import DEV_TARGETS, running_target, target_id
from .sio_raw import RawPeer

MAX_MESSAGE = 1_000_000


@pytest.fixture(scope="module", params=DEV_TARGETS, ids=target_id)
def target(request: pytest.FixtureRequest, module_tmp: Path) -> Iterator[TargetProcess]:
    # Short pings: a client whose websocket dies on a bad packet is only
    # dropped from the server's books by the ping timeout.
    yield from running_target(*request.param, module_tmp, "--max-http-buffer-size", str(MAX_MESSAGE),
                              "--ping-interval", "1", "--ping-timeout", "2")


BAD_FRAMES: dict[str, Callable[[websocket.WebSocket], object]] = {
    "garbage-text": lambda ws: ws.send("\x00\xff garbage {{"),
    "garbage-binary": lambda ws: ws.send_binary(b"\x00\xff\xfe\x01"),
    "truncated-packet": lambda ws: ws.send('42["echo",{"a":'),
    "unknown-engineio-type": lambda ws: ws.send("9hello"),
    "unknown-socketio-type": lambda ws: ws.send("49[1]"),
    "non-json-event": lambda ws: ws.send("42this is not json"),
    "unknown-event": lambda ws: ws.send('42["no_such_event",1]'),
}


def log_since(target: TargetProcess, start: int) -> str:
    """What the target logged after byte ``start`` of its log (after a moment for it to land)."""
    assert target.log_path is not None
    time.sleep(0.3)
    with open(target.log_path, "rb") as handle:
        handle.seek(start)
        return handle.read().decode(errors="replace")


def assert_good_client_served(target: TargetProcess) -> None:
    with RawPeer(target.url) as peer:
        assert peer.call("echo", {"still": "served"}) == {"still": "served"}
    assert target.alive()


@pytest.mark.parametrize("frame", sorted(BAD_FRAMES))
def test_bad_frame_leaves_server_serving_others(target: TargetProcess, frame: str) -> None:
    bad = RawPeer(target.url)
    try:
        # The server may already have closed this client: allowed.
        with contextlib.suppress(OSError, websocket.WebSocketException):
            BAD_FRAMES[frame](bad.ws)
        assert_good_client_served(target)
    finally:
        bad.close()


def test_oversized_payload_closes_that_client_only(target: TargetProcess) -> None:
    bad = RawPeer(target.url)
    try:
        try:
            bad.ws.send('42["echo","' + "x" * 10_000_000 + '"]')
            bad.ws.settimeout(10)
            answer = bad.ws.recv()  # '' or an exception once the server closes it
        except (OSError, websocket.WebSocketException):
            answer = ""
        assert answer == "" or not answer.startswith("43"), "a 10 MB payload must not be echoed"
        assert_good_client_served(target)
    finally:
        bad.close()


def wait_until_none_connected(target: TargetProcess, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and target.stats()["connected"] != 0:
        time.sleep(0.1)
    return target.stats()


def test_connect_disconnect_200_clients_leaves_none_connected(target: TargetProcess) -> None:
    before = wait_until_none_connected(target)
    for _ in range(200):
        RawPeer(target.url).close()
    stats = wait_until_none_connected(target)
    assert stats["connected"] == 0
    assert stats["connects_total"] - before["connects_total"] == 200
    assert stats["disconnects_total"] - before["disconnects_total"] == 200


def test_events_named_connect_or_disconnect_do_not_move_the_counts(target: TargetProcess) -> None:
    """Only a session's real lifecycle changes ``connected``; messages that borrow the names do not."""
    before = wait_until_none_connected(target)
    with RawPeer(target.url) as peer:
        for _ in range(5):
            peer.ws.send('42["connect",{"token":"x"}]')
        for _ in range(3):
            peer.ws.send('42["disconnect"]')
        assert peer.call("echo", "after") == "after"  # the session itself is untouched
        during = target.stats()
        assert during["connected"] == 1 and during["connects_total"] - before["connects_total"] == 1
    after = wait_until_none_connected(target)
    assert after["connected"] == 0 and after["disconnects_total"] - before["disconnects_total"] == 1


@pytest.mark.parametrize("payload", ['{"count":1e400}', '{"rate":1e-6,"count":2}', '{"rate":"fast"}'])
def test_out_of_range_tick_requests_get_an_error_ack(target: TargetProcess, payload: str) -> None:
    with RawPeer(target.url) as peer:
        peer.ws.send(f'421["subscribe_ticks",{payload}]')
        answer = peer.recv_packet()
        assert answer.startswith('431[{"error":'), answer


@pytest.mark.parametrize("mode, server", [("threading", "dev"), ("eventlet", "dev"), ("gevent", "dev"),
                                          ("asgi", "uvicorn")])
@pytest.mark.parametrize("where", ["port-in-use", "bad-host"])
def test_a_port_in_use_or_a_bad_host_is_one_line(mode: str, server: str, where: str) -> None:
    import socket
    import subprocess
    import sys

    from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        host = "127.0.0.1" if where == "port-in-use" else "no-such-host.invalid"
        done = subprocess.run([sys.executable, "-m", "target_app", "--async-mode", mode, "--server", server,
                               "--host", host, "--port", str(port)], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-2000:]


@pytest.mark.parametrize("mode, server", [("threading", "dev"), ("eventlet", "dev"), ("gevent", "dev"),
                                          ("asgi", "uvicorn"), ("gevent", "gunicorn")])
def test_debug_logs_never_hold_the_auth_token(tmp_path: Path, mode: str, server: str) -> None:
    from loadtests.wire.client import Client
    from target_app.process import start_target

    secret = "s3cret-t0ken-for-the-log-test"
    log = tmp_path / "target.log"
    with start_target(mode, server, log_path=log, extra_args=["--log-level", "debug", "--auth-token", secret]) as t:
        with Client(t.url, auth={"token": secret}, timeout=5) as client:
            assert client.call("echo", {"token": secret, "x": 1}) == {"token": secret, "x": 1}
        time.sleep(0.5)
    text = log.read_text(errors="replace")
    assert "[redacted]" in text, "the debug log shows the packets, redacted"
    assert secret not in text


# gevent-dev is left out: its websocket reader queues a fast client's frames, so RSS still climbs by
# the frames sent (a bound on the bytes pending per client is still to be built; issue 15).
@pytest.mark.slow  # 135 MB of frames: half a minute or more for eventlet's reader
@pytest.mark.parametrize("mode, server", DEV_TARGETS, ids=target_id)
def test_an_attachment_count_lie_cannot_grow_the_servers_memory(tmp_path: Path, mode: str, server: str) -> None:
    """A packet announcing a million attachments, then 150 frames of 900 KB (135 MB): refused, memory bounded.

    A fresh target: other tests' large frames move the allocator's thresholds.
    """
    from target_app.process import start_target

    with start_target(mode, server, log_path=tmp_path / "target.log",
                      extra_args=["--max-http-buffer-size", str(MAX_MESSAGE)]) as target:
        _attachment_lie(target, psutil.Process(target.pid))


def _attachment_lie(target: TargetProcess, process: psutil.Process) -> None:
    rss_before = process.memory_info().rss
    bad = RawPeer(target.url)
    try:
        with contextlib.suppress(OSError, websocket.WebSocketException):
            bad.ws.send('451000000-1["echo",{"_placeholder":true,"num":0}]')
            frame = b"\x04" + b"x" * 900_000
            for _ in range(150):
                bad.ws.send_binary(frame)
        assert_good_client_served(target)
        # The frames were read and dropped one by one (a websocket reader may queue them for a moment):
        # nothing holds them once they are handled, though the client is still connected.
        deadline = time.monotonic() + 10
        while (grown := process.memory_info().rss - rss_before) >= 60 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert grown < 60 * 2**20, f"RSS grew by {grown / 2**20:.0f} MiB while the client is still connected"
    finally:
        bad.close()


def test_a_malformed_frame_is_one_warning_line(target: TargetProcess) -> None:
    """Frames that do not decode: one warning each (closing a broken websocket is another matter)."""
    assert target.log_path is not None
    time.sleep(0.3)
    start = target.log_path.stat().st_size  # the module's target: only what this test adds
    bad = RawPeer(target.url)
    try:
        with contextlib.suppress(OSError, websocket.WebSocketException):
            bad.ws.send("42this is not json")
            bad.ws.send("49[1]")
        assert_good_client_served(target)
    finally:
        bad.close()
    text = log_since(target, start)
    assert "bad input from a client" in text
    assert "Traceback" not in text, text[-2000:]


def _tree_fds(pid: int) -> int:
    root = psutil.Process(pid)
    return sum(p.num_fds() for p in [root] + root.children(recursive=True))


def test_a_websocket_holds_one_file_descriptor(target: TargetProcess) -> None:
    """At 10,000 clients a second descriptor each would meet the process's limit at half the clients."""
    peers = [RawPeer(target.url)]  # warm: the first connection may open lasting descriptors
    time.sleep(0.2)
    before = _tree_fds(target.pid)
    try:
        peers += [RawPeer(target.url) for _ in range(40)]
        time.sleep(0.3)
        per_client = (_tree_fds(target.pid) - before) / 40
    finally:
        for peer in peers:
            peer.close()
    assert 0.9 <= per_client <= 1.1, f"{per_client:.2f} descriptors per websocket client"


def _read_until_closed(sock: object, timeout: float = 3.0) -> bytes:
    sock.settimeout(timeout)  # type: ignore[attr-defined]
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):  # type: ignore[attr-defined]
            data += chunk
    return data


@pytest.mark.parametrize("after_close", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
def test_no_http_response_follows_a_websocket_close(target: TargetProcess, after_close: bytes) -> None:
    """Bytes after the close frame are not a next HTTP request: the server must not answer them."""
    peer = RawPeer(target.url)
    try:
        peer.ws.sock.sendall(bytes([0x88, 0x80, 0, 0, 0, 0]))  # a masked close frame, no payload
        time.sleep(0.1)
        with contextlib.suppress(OSError):
            peer.ws.sock.sendall(after_close)
        received = _read_until_closed(peer.ws.sock)
    finally:
        peer.close()
    assert b"HTTP/" not in received, received[:200]


@pytest.mark.parametrize("frame", [b"\x81\x05hello",  # unmasked: a protocol error
                                   b"\x81\x84\x00\x00\x00\x00" + b"4\xff\xfe2"])  # not UTF-8
def test_a_broken_websocket_gets_a_close_frame_never_an_http_error(target: TargetProcess, frame: bytes) -> None:
    assert target.log_path is not None
    start = target.log_path.stat().st_size
    peer = RawPeer(target.url)
    try:
        peer.ws.sock.sendall(frame)
        received = _read_until_closed(peer.ws.sock)
    finally:
        peer.close()
    assert b"HTTP/" not in received, received[:200]
    assert_good_client_served(target)
    text = log_since(target, start)
    assert "Traceback" not in text, text[-2000:]


def test_a_bad_long_polling_body_is_not_a_server_error(target: TargetProcess) -> None:
    import json
    import urllib.error
    import urllib.request

    assert target.log_path is not None
    start = target.log_path.stat().st_size
    with urllib.request.urlopen(f"{target.url}/socket.io/?EIO=4&transport=polling", timeout=5) as response:
        sid = json.loads(response.read().decode()[1:])["sid"]
    for body in ["\u1234not a packet", "4" + "[" * 5000, "\x1e\x1e9", "451000000-[]"]:
        request = urllib.request.Request(f"{target.url}/socket.io/?EIO=4&transport=polling&sid={sid}",
                                         data=body.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as refused:
            status = refused.code
        assert status < 500, f"{body[:20]!r} answered {status}"
    assert_good_client_served(target)
    text = log_since(target, start)
    assert "Traceback" not in text, text[-2000:]
