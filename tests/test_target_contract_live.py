"""Every event of the contract, against every way the target runs, over both transports."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import socketio

from target_app import contract
from target_app.process import TargetProcess

from .conftest import ALL_TARGETS, running_target, target_id

TOKEN = "s3cret"
TIMEOUT = 10.0


@pytest.fixture(scope="module", params=ALL_TARGETS, ids=target_id)
def target(request: pytest.FixtureRequest, module_tmp: Path) -> Iterator[TargetProcess]:
    # A short ping interval bounds how long a long-polling client's
    # disconnect waits for its pending GET.
    yield from running_target(*request.param, module_tmp, "--auth-token", TOKEN,
                              "--ping-interval", "1", "--ping-timeout", "3")


@pytest.fixture(params=["websocket", "polling"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


# python-socketio's client can stall seconds in ``disconnect()`` (websocket
# close handshake, pending long-poll), so tests hand their clients to
# background threads and each module joins them once, at its end.
_closing: list[threading.Thread] = []


@pytest.fixture(scope="module", autouse=True)
def _join_closing_clients() -> Iterator[None]:
    yield
    while _closing:
        _closing.pop().join(timeout=TIMEOUT)


class Clients:
    """python-socketio clients for one test, disconnected in the background."""

    def __init__(self, target: TargetProcess, transport: str) -> None:
        self.target, self.transport = target, transport
        self.clients: list[socketio.Client] = []

    def connect(self, namespace: str = "/", auth: Any = None, **handlers: Callable[..., Any]) -> socketio.Client:
        client = socketio.Client(reconnection=False)
        for event, handler in handlers.items():
            client.on(event, handler, namespace=namespace)
        self.clients.append(client)
        client.connect(self.target.url, transports=[self.transport], namespaces=[namespace],
                       auth={"token": TOKEN} if auth is None else auth, wait_timeout=TIMEOUT)
        return client

    def close(self) -> None:
        for client in self.clients:
            # Close a websocket's socket first: websocket-client's own close() waits for the frame lock that
            # the client's read loop holds while it waits for a frame (its timeout bounds only the read), and
            # under gevent's patching that wait stalls the whole test process.
            ws = getattr(client.eio, "ws", None)
            if ws is not None:
                ws.shutdown()
            thread = threading.Thread(target=client.disconnect, daemon=True)
            thread.start()
            _closing.append(thread)


@pytest.fixture
def clients(target: TargetProcess, transport: str) -> Iterator[Clients]:
    pool = Clients(target, transport)
    try:
        yield pool
    finally:
        pool.close()


def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_echo_returns_payload(clients: Clients) -> None:
    client = clients.connect()
    payload = {"text": "héllo", "n": [1, 2.5, None], "nested": {"ok": True}}
    assert client.call(contract.ECHO, payload, timeout=TIMEOUT) == payload


def test_binary_echo_stays_binary(clients: Clients) -> None:
    client = clients.connect()
    blob = bytes(range(256)) * 4
    assert client.call(contract.ECHO, blob, timeout=TIMEOUT) == blob
    mixed = {"label": "frame", "data": b"\x00\xff\x10"}
    assert client.call(contract.ECHO, mixed, timeout=TIMEOUT) == mixed


def test_rejected_auth_gets_connect_error(target: TargetProcess, clients: Clients) -> None:
    errors: list[Any] = []
    with pytest.raises(socketio.exceptions.ConnectionError):
        clients.connect(auth={"token": "wrong"}, connect_error=errors.append)
    assert errors == [{"message": contract.UNAUTHORIZED}]
    assert target.stats()["rejected_total"] >= 1


def test_broadcast_reaches_everyone_and_acks_recipients(clients: Clients) -> None:
    received: dict[str, list[Any]] = {"a": [], "b": []}
    sender = clients.connect(**{contract.FANOUT: received["a"].append})
    clients.connect(**{contract.FANOUT: received["b"].append})
    ack = sender.call(contract.BROADCAST, {"payload": {"t_ns": 123}}, timeout=TIMEOUT)
    assert ack["recipients"] >= 2
    assert wait_for(lambda: received["a"] and received["b"])
    assert received["b"][0]["payload"] == {"t_ns": 123}
    assert received["b"][0]["sender"] == sender.get_sid()


def test_rooms_join_broadcast_message_leave(clients: Clients) -> None:
    room = f"room-{time.monotonic_ns()}"
    inbox: dict[str, list[Any]] = {"member": [], "outsider": [], "sender": []}
    sender = clients.connect(**{contract.ROOM_MESSAGE: inbox["sender"].append})
    member = clients.connect(**{contract.ROOM_MESSAGE: inbox["member"].append,
                                contract.FANOUT: inbox["member"].append})
    clients.connect(**{contract.ROOM_MESSAGE: inbox["outsider"].append,
                       contract.FANOUT: inbox["outsider"].append})

    assert sender.call(contract.JOIN, {"room": room}, timeout=TIMEOUT) == {"room": room, "size": 1}
    assert member.call(contract.JOIN, {"room": room}, timeout=TIMEOUT) == {"room": room, "size": 2}

    # room_message goes to the other members only.
    ack = sender.call(contract.ROOM_MESSAGE, {"room": room, "payload": "hi"}, timeout=TIMEOUT)
    assert ack == {"recipients": 1}
    assert wait_for(lambda: len(inbox["member"]) == 1)
    assert inbox["member"][0] == {"payload": "hi", "sender": sender.get_sid()}

    # broadcast to a room reaches its members, sender included.
    ack = sender.call(contract.BROADCAST, {"room": room, "payload": 7}, timeout=TIMEOUT)
    assert ack == {"recipients": 2}
    assert wait_for(lambda: len(inbox["member"]) == 2)

    assert member.call(contract.LEAVE, {"room": room}, timeout=TIMEOUT) == {"room": room, "size": 1}
    assert sender.call(contract.ROOM_MESSAGE, {"room": room, "payload": "alone"}, timeout=TIMEOUT) == {"recipients": 0}
    time.sleep(0.2)
    assert inbox["sender"] == [] and inbox["outsider"] == [] and len(inbox["member"]) == 2


def test_bad_room_payload_gets_error_ack(clients: Clients) -> None:
    client = clients.connect()
    assert "error" in client.call(contract.JOIN, {"room": ""}, timeout=TIMEOUT)
    assert "error" in client.call(contract.ROOM_MESSAGE, "not a dict", timeout=TIMEOUT)
    assert client.call(contract.ECHO, "still fine", timeout=TIMEOUT) == "still fine"


def test_ticks_are_pushed_then_stop(clients: Clients) -> None:
    ticks: list[dict[str, Any]] = []
    client = clients.connect(**{contract.TICK: ticks.append})
    ack = client.call(contract.SUBSCRIBE_TICKS, {"rate": 50, "count": 5, "size": 16}, timeout=TIMEOUT)
    assert ack == {"rate": 50.0, "count": 5}
    assert wait_for(lambda: len(ticks) == 5)
    assert [t["seq"] for t in ticks] == [0, 1, 2, 3, 4]
    assert all(len(t["data"]) == 16 and t["t_ns"] <= time.time_ns() for t in ticks)

    client.call(contract.SUBSCRIBE_TICKS, {"rate": 20, "count": 1000}, timeout=TIMEOUT)
    assert wait_for(lambda: len(ticks) >= 7)
    assert client.call(contract.UNSUBSCRIBE_TICKS, None, timeout=TIMEOUT) == {"stopped": True}
    time.sleep(0.3)
    settled = len(ticks)
    time.sleep(0.5)
    assert len(ticks) == settled < 5 + 1000


def test_bench_namespace_speaks_the_same_contract(clients: Clients) -> None:
    client = clients.connect(namespace="/bench")
    assert client.call(contract.ECHO, [1, 2], namespace="/bench", timeout=TIMEOUT) == [1, 2]
    # A room of this test's own: the target serves every test of the module, and an earlier test's
    # client may still be leaving a shared name when the machine is busy.
    room = f"bench-room-{time.monotonic_ns()}"
    ack = client.call(contract.JOIN, {"room": room}, namespace="/bench", timeout=TIMEOUT)
    assert ack == {"room": room, "size": 1}


def test_stats_count_connections_and_events(target: TargetProcess, clients: Clients) -> None:
    before = target.stats()
    client = clients.connect()
    client.call(contract.ECHO, 1, timeout=TIMEOUT)
    client.emit("no_such_event", {"x": 1})
    assert wait_for(lambda: target.stats()["events"].get("unknown", 0) > before["events"].get("unknown", 0))
    after = target.stats()
    assert after["async_mode"] == target.mode
    assert after["server"] == target.server
    assert after["pid"] > 0 and after["uptime_s"] > 0
    assert after["connected"] >= 1
    assert after["connects_total"] == before["connects_total"] + 1
    assert after["events"][contract.ECHO] == before["events"].get(contract.ECHO, 0) + 1
    assert TOKEN not in str(after)
