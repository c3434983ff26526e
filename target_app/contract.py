"""The event contract every target speaks, defined once.

The Flask-SocketIO app and the asyncio baseline both register handlers for
these names and shape their acks with the helpers below, so a load test sees
the same protocol whichever server it measures.

Events a client emits (all acked unless noted):

``echo``            ack = the payload, unchanged (binary stays binary).
``broadcast``       ``{"payload": any, "room": str | None}``: emits ``fanout``
                    with ``{"payload": ..., "sender": sid}`` to the room, or to
                    every client of the namespace; ack = ``{"recipients": n}``
                    (clients reached on this instance, sender included).
``join``            ``{"room": str}``; ack = ``{"room": str, "size": n}``.
``leave``           ``{"room": str}``; ack = ``{"room": str, "size": n}``.
``room_message``    ``{"room": str, "payload": any}``: emits ``room_message``
                    with ``{"payload": ..., "sender": sid}`` to the other
                    members of the room; ack = ``{"recipients": n}``.
``subscribe_ticks`` ``{"rate": hz, "count": n, "size": bytes}``: the server
                    emits ``tick`` ``{"seq": i, "t_ns": epoch_ns, "data": str}``
                    ``count`` times at ``rate`` per second; ack =
                    ``{"rate": hz, "count": n}`` (after clamping).
``unsubscribe_ticks`` stops the ticks; ack = ``{"stopped": bool}``.

``connect`` takes an optional auth payload. When the target runs with an auth
token, the client must send ``{"token": TOKEN}`` or the connection is refused
with a connect error whose message is ``unauthorized``.

Every event exists on the default namespace and on ``/bench``.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

NAMESPACES: tuple[str, ...] = ("/", "/bench")

# Client-to-server events.
ECHO = "echo"
BROADCAST = "broadcast"
JOIN = "join"
LEAVE = "leave"
ROOM_MESSAGE = "room_message"
SUBSCRIBE_TICKS = "subscribe_ticks"
UNSUBSCRIBE_TICKS = "unsubscribe_ticks"
CLIENT_EVENTS: tuple[str, ...] = (
    ECHO, BROADCAST, JOIN, LEAVE, ROOM_MESSAGE, SUBSCRIBE_TICKS, UNSUBSCRIBE_TICKS,
)

# Server-to-client events.
FANOUT = "fanout"
TICK = "tick"
# ROOM_MESSAGE is also emitted by the server, to the other room members.

UNAUTHORIZED = "unauthorized"

# Bounds that keep one client from turning a tick request into unbounded work.
MAX_TICK_RATE_HZ = 1000.0
# A slower stream would hold its thread or greenlet for ages: a client that left
# stops its stream within one interval, at most 1 / MIN_TICK_RATE_HZ seconds.
MIN_TICK_RATE_HZ = 0.2
MAX_TICK_COUNT = 100_000
MAX_TICK_SIZE = 65_536
MAX_ROOM_NAME = 128


class ContractError(ValueError):
    """A client sent a payload the contract does not accept."""


def check_auth(auth: Any, token: str | None) -> bool:
    """True when a connection with this auth payload may connect."""
    if token is None:
        return True
    return isinstance(auth, dict) and auth.get("token") == token


def room_name(data: Any) -> str:
    """The room named by a ``join``/``leave``/``room_message`` payload."""
    room = data.get("room") if isinstance(data, dict) else None
    if not isinstance(room, str) or not room or len(room) > MAX_ROOM_NAME:
        raise ContractError(f"expected {{'room': str of 1..{MAX_ROOM_NAME} chars}}, got {data!r:.80}")
    return room


def broadcast_target(data: Any) -> tuple[Any, str | None]:
    """Split a ``broadcast`` payload into (payload, room or None for everyone)."""
    if not isinstance(data, dict):
        return data, None
    room = data.get("room")
    if room is not None:
        room = room_name(data)
    return data.get("payload"), room


def relayed(payload: Any, sender: str) -> dict[str, Any]:
    """What ``fanout`` and ``room_message`` deliver to each receiver."""
    return {"payload": payload, "sender": sender}


@dataclass(frozen=True)
class TickPlan:
    """A clamped ``subscribe_ticks`` request."""

    rate: float
    count: int
    size: int

    @property
    def interval_s(self) -> float:
        return 1.0 / self.rate

    def ack(self) -> dict[str, Any]:
        return {"rate": self.rate, "count": self.count}


def tick_plan(data: Any) -> TickPlan:
    """Parse and clamp a ``subscribe_ticks`` payload."""
    if not isinstance(data, dict):
        raise ContractError(f"expected {{'rate', 'count', 'size'}}, got {data!r:.80}")
    try:
        rate = float(data.get("rate", 10.0))
        count = int(data.get("count", 10))
        size = int(data.get("size", 0))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ContractError(f"bad subscribe_ticks payload {data!r:.80}: {exc}") from None
    if not (math.isfinite(rate) and rate >= MIN_TICK_RATE_HZ):
        raise ContractError(f"tick rate must be a number >= {MIN_TICK_RATE_HZ:g} Hz, got {rate}")
    return TickPlan(
        rate=min(rate, MAX_TICK_RATE_HZ),
        count=max(0, min(count, MAX_TICK_COUNT)),
        size=max(0, min(size, MAX_TICK_SIZE)),
    )


def tick_message(seq: int, t_ns: int, size: int) -> dict[str, Any]:
    return {"seq": seq, "t_ns": t_ns, "data": "x" * size}


def handler_loop(iterations: int) -> int:
    """``iterations`` turns of a fixed loop (``--handler-loop``): work whose instruction count is exact."""
    total = 0
    for _ in itertools.repeat(None, iterations):  # no int made per turn: each turn costs the same
        total = (total + 3) & 7
    return total


def spend_cpu(microseconds: float) -> None:
    """Busy-wait ``microseconds`` of CPU on the perf clock (``--handler-cost-us``).

    A loop, not a sleep: it costs CPU exactly as a slow handler does, and it
    holds the event loop (eventlet, gevent, asyncio) as real handler code would.
    """
    if microseconds <= 0:
        return
    deadline = time.perf_counter_ns() + int(microseconds * 1000)
    while time.perf_counter_ns() < deadline:
        pass


def error_ack(exc: Exception) -> dict[str, str]:
    """The ack sent instead of a result when a payload breaks the contract."""
    return {"error": str(exc)}
