"""Declared fan-out: which acked event causes which push, and how many deliveries to expect.

A user class declares its pairs::

    class ChatUser(SocketIOUser):
        fanout = {"chat_message": FanOut("new_message", expected="roster")}

and the harness records each send's expected deliveries (the ``expected``
column of its ``ack`` sample), times each push from the sender's timestamp
(:func:`stamped`), and writes the pairs to ``fanout-<worker>.json`` so the
reports pair ``chat_message`` -> ``new_message`` as they pair the reference
events. No Locust import here: this is pure logic, testable alone.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: where a send's expected deliveries come from
EXPECTED_SOURCES: tuple[str, ...] = ("ack", "roster")

#: (user, data sent, ack) -> deliveries the send should cause
ExpectedFunction = Callable[[Any, Any, Any], int]


@dataclass(frozen=True)
class FanOut:
    """One acked event's push and the deliveries each successful send should cause.

    :param push: the event name the server pushes to the recipients.
    :param expected: ``"ack"`` (the ack's ``{"recipients": n}``), ``"roster"``
        (members of the room named by ``data[room_key]`` that this process
        has seen join, see :meth:`SocketIOUser.joined`), or a function
        ``(user, data, ack) -> int``.
    :param room_key: the key of the sent data that names the room (roster).
    :param includes_sender: the sender receives its own push (roster).
    """

    push: str
    expected: str | ExpectedFunction = "ack"
    room_key: str = "room"
    includes_sender: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.push, str) or not self.push:
            raise ValueError(f"FanOut: push must be an event name, got {self.push!r}")
        if isinstance(self.expected, str) and self.expected not in EXPECTED_SOURCES:
            raise ValueError(f"FanOut({self.push!r}): expected must be one of {', '.join(EXPECTED_SOURCES)} "
                             f"or a function (user, data, ack) -> int, got {self.expected!r}")
        if not isinstance(self.expected, str) and not callable(self.expected):
            raise ValueError(f"FanOut({self.push!r}): expected must be a source name or a function")


def check_declarations(owner: str, fanout: Any) -> dict[str, FanOut]:
    """A user class's ``fanout`` mapping, checked; ValueError naming the class and the entry."""
    if not isinstance(fanout, Mapping):
        raise ValueError(f"{owner}.fanout must be a dict of event name -> FanOut(...), got {type(fanout).__name__}")
    for event, declaration in fanout.items():
        if not isinstance(event, str) or not event:
            raise ValueError(f"{owner}.fanout: keys must be event names, got {event!r}")
        if not isinstance(declaration, FanOut):
            raise ValueError(f"{owner}.fanout[{event!r}] must be FanOut(push, ...), got {declaration!r:.60}")
    return dict(fanout)


def pairs_of(user_classes: Iterable[type]) -> dict[str, str]:
    """acked event -> push for every class's declared fan-out (for the reports)."""
    pairs: dict[str, str] = {}
    for cls in user_classes:
        for event, declaration in (getattr(cls, "fanout", None) or {}).items():
            pairs[event] = declaration.push
    return pairs


def stamped(data: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """``data`` plus ``t_ns``: the send time (wall clock, ns) a push's delivery latency is measured from.

    The server must pass ``t_ns`` through into the push, at the top level
    or under ``payload``.
    """
    return {**(data or {}), **fields, "t_ns": time.time_ns()}


def sent_ns_of(data: Any) -> Any:
    """The sender's ``t_ns`` in a push: ``data["t_ns"]`` or ``data["payload"]["t_ns"]``; None if absent."""
    if not isinstance(data, dict):
        return None
    if "t_ns" in data:
        return data["t_ns"]
    payload = data.get("payload")
    return payload.get("t_ns") if isinstance(payload, dict) else None
