"""The calibration echo server: its packet handling, and the harness driving it like any target."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from loadtests.wire.client import Client
from loadtests.wire.errors import ConnectionClosed, ConnectRefused
from sioharness.core.stats_client import fetch_stats
from target_app.calibration import (
    ACK,
    BINARY_ACK,
    BINARY_EVENT,
    CONNECT,
    EVENT,
    BadPacket,
    Packet,
    Stats,
    echo_ack,
    encode,
    event_data,
    http_answer,
    launch_calibration,
    parse_packet,
)
from target_app.process import TargetProcess
from tests.test_locust_scenarios import check_common, run_locust

TOKEN = "s3cret"

# --- packets, without a network -------------------------------------------


@pytest.mark.parametrize(("text", "packet"), [
    ("0", Packet(CONNECT, "/", None, "")),
    ('0/bench,{"token":"x"}', Packet(CONNECT, "/bench", None, '{"token":"x"}')),
    ("1/bench,", Packet(1, "/bench", None, "")),
    ("1/bench", Packet(1, "/bench", None, "")),
    ('212["echo","x"]', Packet(EVENT, "/", 12, '["echo","x"]')),
    ('2/bench,7["echo",{"a":1}]', Packet(EVENT, "/bench", 7, '["echo",{"a":1}]')),
    ('2["note"]', Packet(EVENT, "/", None, '["note"]')),
    ('52-/bench,3["echo",{"_placeholder":true,"num":0}]',
     Packet(BINARY_EVENT, "/bench", 3, '["echo",{"_placeholder":true,"num":0}]', attachments=2)),
])
def test_parse_packet(text: str, packet: Packet) -> None:
    assert parse_packet(text) == packet


@pytest.mark.parametrize("text", ["", "9", "x", "5-[]", "5x-[]", "51001-[]"])
def test_parse_packet_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(BadPacket):
        parse_packet(text)


def test_echo_ack_returns_the_arguments_on_the_same_namespace_and_ack_id() -> None:
    packet = parse_packet('2/bench,7["echo",{"a":1},"two"]')
    assert echo_ack(packet, event_data(packet)) == '43/bench,7[{"a":1},"two"]'
    packet = parse_packet('51-9["echo",{"_placeholder":true,"num":0}]')
    assert echo_ack(packet, event_data(packet)) == '461-9[{"_placeholder":true,"num":0}]'
    assert encode(ACK, "/", "[]", 0) == "430[]"
    assert encode(BINARY_ACK, "/x", "[1]", 5, attachments=1) == "461-/x,5[1]"


@pytest.mark.parametrize("body", ["{", "[]", "[1]", '{"a":1}'])
def test_an_event_needs_a_name(body: str) -> None:
    with pytest.raises(BadPacket):
        event_data(Packet(EVENT, "/", None, body))


def _status(stats: Stats, path: str) -> int | None:
    """The HTTP status the server answers ``path`` with; None: it goes on to the websocket upgrade."""
    answer = http_answer(stats, Request(path, Headers()))
    return None if answer is None else answer.status_code


def test_http_answers_health_stats_and_refuses_other_transports() -> None:
    stats = Stats()
    assert _status(stats, "/healthz") == 200
    answer = http_answer(stats, Request("/stats", Headers()))
    assert answer is not None and b'"connected": 0' in answer.body
    assert _status(stats, "/socket.io/?EIO=4&transport=websocket") is None
    assert _status(stats, "/socket.io/?EIO=4&transport=polling") == 400
    assert _status(stats, "/socket.io/?EIO=3&transport=websocket") == 400
    assert _status(stats, "/elsewhere") == 404


# --- the server, over real sockets ------------------------------------------


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetProcess]:
    log = tmp_path_factory.mktemp("calibration") / "server.log"
    target = launch_calibration(log_path=log, extra_args=["--ping-interval", "1", "--ping-timeout", "1",
                                                          "--auth-token", TOKEN])
    try:
        yield target
    finally:
        target.stop()


@pytest.mark.slow
def test_echo_on_both_namespaces_binary_included(calibration: TargetProcess) -> None:
    for namespace in ("/", "/bench"):
        with Client(calibration.url, namespace=namespace, auth={"token": TOKEN}, timeout=5) as client:
            assert client.ping_interval == 1.0 and client.ping_timeout == 1.0
            assert client.call("echo", {"hello": [1, 2]}) == {"hello": [1, 2]}
            assert client.call("echo", {"blob": b"\x00\x01"}, "two") == ({"blob": b"\x00\x01"}, "two")
            assert "error" in client.call("broadcast", {"payload": 1})
            client.pump(2.5)
            assert client.pings >= 2


@pytest.mark.slow
def test_refuses_a_bad_token_and_an_unknown_namespace(calibration: TargetProcess) -> None:
    with pytest.raises(ConnectRefused, match="unauthorized"):
        Client(calibration.url, auth={"token": "wrong"}, timeout=5).connect()
    with pytest.raises(ConnectRefused):
        Client(calibration.url, namespace="/nope", auth={"token": TOKEN}, timeout=5).connect()


@pytest.mark.slow
def test_drops_a_client_that_does_not_answer_pings(calibration: TargetProcess) -> None:
    client = Client(calibration.url, auth={"token": TOKEN}, timeout=5)
    client.connect()
    before = fetch_stats(calibration.url)["disconnects_total"]
    # Silent for longer than ping interval + timeout: nobody reads the socket,
    # so no pong goes back.
    time.sleep(3.0)
    with pytest.raises(ConnectionClosed):
        client.pump(1.0)
    assert fetch_stats(calibration.url)["disconnects_total"] == before + 1


@pytest.mark.slow
def test_http_beside_websockets(calibration: TargetProcess) -> None:
    with socket.create_connection((calibration.host, calibration.port), timeout=5) as sock:
        sock.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    stats = fetch_stats(calibration.url)
    assert stats["server"] == "calibration" and stats["async_mode"] == "asyncio"


@pytest.mark.slow
def test_harness_echo_users_count_what_the_server_counts(calibration: TargetProcess, tmp_path: Path) -> None:
    before = fetch_stats(calibration.url)
    run = run_locust(calibration, tmp_path, "EchoUser", "--namespace", "/bench", "--auth-token", TOKEN,
                     "--emit-rate", "50")
    check_common(run)
    after = fetch_stats(calibration.url)
    assert after["connected"] == 0
    assert run.count("connect") == run.count("disconnect") == after["connects_total"] - before["connects_total"] == 4
    echoes = after["events"].get("echo", 0) - before["events"].get("echo", 0)
    assert run.count("ack", "echo") == echoes > 100
