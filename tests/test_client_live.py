"""The lean client against the real target app, and against a scripted raw
websocket server for the misbehaviour a real server will not produce."""
from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Callable, Iterator

import gevent
import gevent.event
import pytest
from gevent.server import StreamServer

from loadtests.wire import frames
from loadtests.wire.client import Client
from loadtests.wire.errors import CallTimeout, ConnectError, ConnectionClosed, ConnectRefused, ProtocolError
from target_app.process import free_port, start_target

TOKEN = "s3cret"
AUTH = {"token": TOKEN}


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator:
    log = tmp_path_factory.mktemp("client-target") / "target.log"
    # Short pings so a test can outlive one ping interval in under a second.
    with start_target("gevent", server="dev", log_path=log,
                      extra_args=["--auth-token", TOKEN, "--ping-interval", "0.3", "--ping-timeout", "1"]) as t:
        yield t


def wait_stats(target, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = target.stats()
        if predicate(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def test_handshake_connects_the_namespace(target):
    client = Client(target.url, namespace="/bench", auth=AUTH)
    client.connect()
    try:
        assert client.connected
        assert client.sid and client.eio_sid and client.sid != client.eio_sid
        # (python-engineio truncates the advertised sub-second interval to 0.)
        assert client.ping_timeout == pytest.approx(1.0)
        stats = wait_stats(target, lambda s: s["connected_by_namespace"].get("/bench", 0) >= 1)
        assert stats["connected_by_namespace"]["/bench"] >= 1
    finally:
        client.close()


def test_call_returns_the_ack(target):
    with Client(target.url, auth=AUTH) as client:
        payload = {"n": 1, "text": "héllo", "list": [1, 2.5, None, True]}
        assert client.call("echo", payload, timeout=5) == payload
        pending = [client.call_async("echo", i) for i in range(5)]
        assert [p.wait(5) for p in pending] == list(range(5))
        assert pending[0].sent_bytes > 0


def test_binary_payloads_round_trip(target):
    with Client(target.url, namespace="/bench", auth=AUTH) as client:
        assert client.call("echo", b"\x00\xffraw", timeout=5) == b"\x00\xffraw"
        nested = {"a": [b"one", {"b": b"two"}], "c": "text"}
        assert client.call("echo", nested, timeout=5) == nested
        big = bytes(range(256)) * 400  # 100 KB: 64-bit length frames
        assert client.call("echo", big, timeout=5) == big


def test_namespace_refusal_carries_the_server_message(target):
    client = Client(target.url, namespace="/bench", auth={"token": "wrong"})
    with pytest.raises(ConnectRefused, match="unauthorized") as info:
        client.connect()
    assert info.value.message == "unauthorized"
    assert not client.connected


def test_server_pushes_reach_handlers(target):
    ticks: list[dict] = []
    with Client(target.url, namespace="/bench", auth=AUTH) as client:
        client.on("tick", ticks.append)
        ack = client.call("subscribe_ticks", {"rate": 200, "count": 5, "size": 8}, timeout=5)
        assert ack == {"rate": 200.0, "count": 5}
        assert client.wait_for(lambda: len(ticks) == 5, timeout=10)
    assert [t["seq"] for t in ticks] == [0, 1, 2, 3, 4]
    assert all(t["data"] == "x" * 8 and t["t_ns"] > 0 for t in ticks)


def test_catch_all_handler_gets_the_event_name(target):
    seen: list[tuple] = []
    with Client(target.url, auth=AUTH) as client:
        client.on("*", lambda event, *args: seen.append((event, args)))
        client.call("join", {"room": "catch-all"}, timeout=5)
        client.call("broadcast", {"payload": {"k": 1}, "room": "catch-all"}, timeout=5)
        assert client.wait_for(lambda: seen, timeout=5)
    assert seen[0][0] == "fanout"
    assert seen[0][1][0]["payload"] == {"k": 1}


def test_pings_are_answered_past_the_ping_interval(target):
    with Client(target.url, auth=AUTH) as client:
        # Interval 0.3 s + timeout 1 s: an unanswered ping drops us by ~1.3 s.
        client.pump(2.5)
        assert client.pings >= 3
        assert client.connected
        assert client.call("echo", "still here", timeout=5) == "still here"


def test_close_is_clean_and_the_server_sees_it(target):
    before = target.stats()["disconnects_total"]
    client = Client(target.url, auth=AUTH, close_timeout=10)
    client.connect()
    client.close()
    assert client.closed_cleanly, "close() should end on the server's close, not on its timeout"
    assert str(client.close_reason) == "closed by the client"
    assert not client.connected
    stats = wait_stats(target, lambda s: s["disconnects_total"] > before)
    assert stats["disconnects_total"] > before
    client.close()  # idempotent
    with pytest.raises(ConnectionClosed, match="not connected"):
        client.emit("echo", 1)


def test_many_closes_leave_no_stray_bytes_in_the_server_log(target):
    for _ in range(20):
        with Client(target.url, auth=AUTH) as client:
            client.call("echo", "x", timeout=5)
    assert "Invalid HTTP" not in target.log_tail(200)


def test_refused_connection_is_a_clear_connect_error():
    port = free_port()
    client = Client(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port} failed during tcp connect"):
        client.connect()


def test_bad_urls_and_namespaces_are_rejected_up_front():
    with pytest.raises(ValueError, match="TLS is not supported"):
        Client("https://127.0.0.1:1")
    with pytest.raises(ValueError, match="namespace must start"):
        Client("http://127.0.0.1:1", namespace="bench")


# --- a scripted raw websocket server ------------------------------------


def _read_client_frame(sock) -> tuple[int, bytes]:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    key = exact(4)
    return b0 & 0x0F, frames.mask(key, exact(n))  # masking is its own inverse


def _frame(payload: bytes, opcode: int = 1, first: int | None = None) -> bytes:
    return bytes(((0x80 | opcode) if first is None else first, len(payload))) + payload


class ScriptedServer:
    """Speaks just enough Engine.IO to connect a namespace, then runs a script."""

    def __init__(self, script: Callable, before_connect: bytes = b"") -> None:
        self.script = script
        #: frames sent between the client's CONNECT and the server's answer (a connect handler's emits)
        self.before_connect = before_connect
        self.server = StreamServer(("127.0.0.1", 0), self._handle)

    def __enter__(self) -> str:
        self.server.start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def __exit__(self, *exc: object) -> None:
        self.server.stop(timeout=1)

    def _handle(self, sock, address) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += sock.recv(4096)
        key = [line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:")][0]
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        sock.sendall(_frame(b'0{"sid":"e1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'))
        _read_client_frame(sock)  # the namespace CONNECT
        sock.sendall(self.before_connect + _frame(b'40{"sid":"s1"}'))
        try:
            self.script(sock)
        except (EOFError, OSError):
            pass
        finally:
            sock.close()


def test_server_closing_mid_call_fails_the_call_at_once():
    def close_on_first_event(sock):
        _read_client_frame(sock)
        sock.close()

    with ScriptedServer(close_on_first_event) as url:
        client = Client(url, timeout=30)
        client.connect()
        started = time.monotonic()
        with pytest.raises(ConnectionClosed, match="closed the connection"):
            client.call("echo", 1)
        # Failing on the close, not on the 30 s call timeout.
        assert time.monotonic() - started < 15
        assert not client.connected


def test_malformed_server_frame_is_a_protocol_error():
    def bad_json(sock):
        _read_client_frame(sock)
        sock.sendall(_frame(b'431["echo",'))
        gevent.sleep(5)

    with ScriptedServer(bad_json) as url:
        client = Client(url, timeout=30)
        client.connect()
        with pytest.raises(ProtocolError, match="bad JSON in ACK packet"):
            client.call("echo", 1)
        assert not client.connected
        with pytest.raises(ConnectionClosed, match="bad JSON"):
            client.call("echo", 2)


def test_masked_server_frame_is_a_protocol_error():
    def masked(sock):
        _read_client_frame(sock)
        sock.sendall(bytes((0x81, 0x80 | 4)) + b"\x00\x00\x00\x00" + b"4310")
        gevent.sleep(5)

    with ScriptedServer(masked) as url:
        client = Client(url, timeout=30)
        client.connect()
        with pytest.raises(ProtocolError, match="masked"):
            client.call("echo", 1)


def test_unanswered_call_times_out_and_a_late_ack_is_ignored():
    def late_ack(sock):
        _read_client_frame(sock)
        gevent.sleep(0.5)
        sock.sendall(_frame(b'431["late"]'))
        _read_client_frame(sock)
        sock.sendall(_frame(b'432["on time"]'))
        gevent.sleep(5)

    with ScriptedServer(late_ack) as url:
        client = Client(url)
        client.connect()
        with pytest.raises(CallTimeout, match="no ack for call #1 within 0.1 s"):
            client.call("echo", 1, timeout=0.1)
        assert client.call("echo", 2, timeout=10) == "on time"


def test_every_call_on_a_connection_gets_its_whole_timeout():
    """After a call that timed out, and after one answered late in its time (the timer is reused)."""
    def script(sock):
        _read_client_frame(sock)  # call 1: never answered
        for ack_id in (2, 3):
            _read_client_frame(sock)
            gevent.sleep(0.2)
            sock.sendall(_frame(b"43%d[\"in time\"]" % ack_id))
        gevent.sleep(5)

    with ScriptedServer(script) as url:
        client = Client(url, timeout=0.3, connect_timeout=5)
        client.connect()
        started = time.monotonic()
        with pytest.raises(CallTimeout):
            client.call("echo", 1)
        assert time.monotonic() - started >= 0.29
        assert client.call("echo", 2) == "in time"
        assert client.call("echo", 3) == "in time"  # not what was left of call 2's 0.3 s


def test_pumps_of_the_same_length_each_last_their_time():
    with ScriptedServer(lambda sock: gevent.sleep(5)) as url:
        client = Client(url, timeout=0.1, connect_timeout=5)
        client.connect()
        for _ in range(3):
            started = time.monotonic()
            client.pump(0.1)
            assert time.monotonic() - started >= 0.09


def test_concurrent_writes_that_fill_the_socket_do_not_interleave():
    received: list[tuple[int, bytes]] = []
    done = gevent.event.Event()

    def slow_reader(sock):
        gevent.sleep(0.5)  # let the client's socket buffer fill up first
        for _ in range(3):
            received.append(_read_client_frame(sock))
        done.set()
        gevent.sleep(5)

    with ScriptedServer(slow_reader) as url:
        client = Client(url)
        client.connect()
        # 3 x 4 MB is more than loopback buffers hold: writers block mid-frame.
        writers = [gevent.spawn(client.emit, "big", letter * 4_000_000) for letter in "ABC"]
        gevent.joinall(writers, timeout=30, raise_error=True)
        assert client._write_lock is not None, "precondition: some write had to wait mid-frame"
        assert done.wait(30)
    assert sorted(payload[:9] for _, payload in received) == [b'42["big",'] * 3
    for opcode, payload in received:
        body = payload[len(b'42["big","'):-2]
        assert opcode == frames.OP_TEXT and len(body) == 4_000_000 and len(set(body)) == 1


def test_server_that_never_opens_is_a_connect_timeout():
    def never(sock, address):
        gevent.sleep(10)

    server = StreamServer(("127.0.0.1", 0), never)
    server.start()
    try:
        client = Client(f"http://127.0.0.1:{server.server_port}", connect_timeout=0.3)
        with pytest.raises(ConnectError, match="timed out after 0.3 s during websocket handshake"):
            client.connect()
    finally:
        server.stop(timeout=1)


def _idle(sock):
    gevent.sleep(5)


def test_events_sent_before_the_connect_are_delivered_after_it():
    """Flask-SocketIO sends a connect handler's emits before the CONNECT packet; the JS client buffers them."""
    early = _frame(b'42["my_response",{"data":"Connected"}]') + _frame(b'42["second",1,2]')
    with ScriptedServer(_idle, before_connect=early) as url:
        client = Client(url, timeout=5)
        seen = []
        client.on("my_response", lambda data: seen.append(("my_response", client.connected, data)))
        client.on("second", lambda *args: seen.append(("second", client.connected, args)))
        client.connect()
        assert seen == [("my_response", True, {"data": "Connected"}), ("second", True, (1, 2))]
        client.close()


def test_too_many_events_before_the_connect_is_a_protocol_error(monkeypatch):
    monkeypatch.setattr("loadtests.wire.client.MAX_EARLY_EVENTS", 2)
    with ScriptedServer(_idle, before_connect=_frame(b'42["x"]') * 3) as url:
        client = Client(url, timeout=5)
        with pytest.raises(ProtocolError, match="more than 2 events before the namespace was connected"):
            client.connect()
        assert not client.connected


def test_an_ack_before_the_connect_is_still_a_protocol_error():
    with ScriptedServer(_idle, before_connect=_frame(b'431["x"]')) as url, \
            pytest.raises(ProtocolError, match="ACK packet before the namespace was connected"):
        Client(url, timeout=5).connect()


def test_request_waits_for_the_matching_reply_event():
    received = []

    def replies(sock):
        received.append(_read_client_frame(sock)[1])
        # Someone else's reply first, then ours, then a late one nobody waits for.
        sock.sendall(_frame(b'42["my_response",{"data":"other"}]') + _frame(b'42["my_response",{"data":"mine"}]'))
        received.append(_read_client_frame(sock)[1])
        sock.sendall(_frame(b'42["my_pong"]'))
        gevent.sleep(5)

    with ScriptedServer(replies) as url:
        client = Client(url, timeout=5)
        pushed = []
        client.on("my_response", pushed.append)
        client.connect()
        answer = client.request("my_event", {"data": "mine"}, reply="my_response",
                                match=lambda message: message["data"] == "mine")
        assert answer == {"data": "mine"}
        # The event's handler still saw both, in order.
        assert pushed == [{"data": "other"}, {"data": "mine"}]
        assert client.request("my_ping", reply="my_pong") is None  # a reply with no arguments
        # No ack asked (no id after the type), and emit() with no argument sends none.
        assert received == [b'42["my_event",{"data":"mine"}]', b'42["my_ping"]']
        client.close()


def test_a_request_without_its_reply_times_out_and_is_forgotten():
    with ScriptedServer(_idle) as url:
        client = Client(url, timeout=5)
        client.connect()
        with pytest.raises(CallTimeout, match="no 'my_response' reply within 0.3 s"):
            client.request("my_event", reply="my_response", timeout=0.3)
        assert client._replies == {"my_response": []}
        client.close()


def test_emit_sends_exactly_the_arguments_given():
    received = []

    def read_three(sock):
        for _ in range(3):
            received.append(_read_client_frame(sock)[1])
        gevent.sleep(5)

    with ScriptedServer(read_three) as url:
        client = Client(url, timeout=5)
        client.connect()
        client.emit("none")
        client.emit("one", None)
        client.emit("two", 1, "b")
        client.pump(0.3)
        assert received == [b'42["none"]', b'42["one",null]', b'42["two",1,"b"]']
        client.close()


def test_headers_that_would_break_the_upgrade_request_are_refused():
    with pytest.raises(ValueError, match="cannot go into the upgrade request"):
        Client("http://127.0.0.1:5000", headers={"Cookie": "a=b\r\nX-Injected: 1"})
