"""Declared fan-out: which sent event causes which push, and how many deliveries to expect.

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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sioharness.core.schema import PRIMARY_CONNECTS

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
    :param stamp: where the push carries its sender's ``t_ns``, a dotted
        path such as ``"data.t_ns"`` (None: the user class's ``stamp``).
    :param match: called with a ``push`` event's arguments; only those it
        accepts are this fan-out's deliveries (for an app that sends several
        kinds of message under one event name). None: every one is.
    """

    push: str
    expected: str | ExpectedFunction = "ack"
    room_key: str = "room"
    includes_sender: bool = True
    stamp: str | None = None
    match: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.push, str) or not self.push:
            raise ValueError(f"FanOut: push must be an event name, got {self.push!r}")
        if isinstance(self.expected, str) and self.expected not in EXPECTED_SOURCES:
            raise ValueError(f"FanOut({self.push!r}): expected must be one of {', '.join(EXPECTED_SOURCES)} "
                             f"or a function (user, data, ack) -> int, got {self.expected!r}")
        if not isinstance(self.expected, str) and not callable(self.expected):
            raise ValueError(f"FanOut({self.push!r}): expected must be a source name or a function")
        check_stamp(f"FanOut({self.push!r}).stamp", self.stamp)
        if self.match is not None and not callable(self.match):
            raise ValueError(f"FanOut({self.push!r}): match must be a function of the push's arguments")


def check_stamp(owner: str, stamp: Any) -> None:
    """ValueError unless ``stamp`` is None or a dotted path of keys (``"data.t_ns"``)."""
    if stamp is None:
        return
    if not isinstance(stamp, str) or not all(stamp.split(".")):
        raise ValueError(f"{owner} must be a dotted path such as 'data.t_ns', got {stamp!r}")


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


def check_primary(owner: str, primary: Any) -> None:
    """ValueError unless ``primary`` is None, an event name, or ``"connects/s"``."""
    if primary is not None and (not isinstance(primary, str) or not primary.strip()):
        raise ValueError(f"{owner}.primary must be the main event's name (its p99 ranks the cells) or "
                         f"{PRIMARY_CONNECTS!r} (the connect rate does), got {primary!r}")


def primary_of(user_classes: Iterable[type]) -> str | None:
    """The first declared ``primary`` of the classes (for the reports' ranking), or None."""
    for cls in user_classes:
        if isinstance(primary := getattr(cls, "primary", None), str):
            return primary
    return None


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


def sent_ns_of(data: Any, stamp: str | None = None) -> Any:
    """The sender's ``t_ns`` in a push; None if absent.

    At the dotted path ``stamp`` (a number steps into a list), else
    ``data["t_ns"]`` or ``data["payload"]["t_ns"]``.
    """
    if stamp is not None:
        for key in stamp.split("."):
            if isinstance(data, dict):
                data = data.get(key)
            elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
                data = data[int(key)]
            else:
                return None
        return data
    if not isinstance(data, dict):
        return None
    if "t_ns" in data:
        return data["t_ns"]
    payload = data.get("payload")
    return payload.get("t_ns") if isinstance(payload, dict) else None


# --- delivery accounting: what a broadcast should cause, and what arrived ---------------------------


class FanoutLedger:
    """Per-process delivery accounting for rooms whose members all live here.

    Rooms are named per process, so the acks' ``recipients`` and the pushes
    received here must balance exactly; fan-out users wait at stop until
    they do (bounded by ``--drain-timeout``).
    """

    def __init__(self) -> None:
        self.expected: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.inflight: Counter[str] = Counter()

    def settled(self, room: str) -> bool:
        return self.inflight[room] == 0 and self.delivered[room] >= self.expected[room]

    def totals(self) -> tuple[int, int]:
        """(expected, delivered) over all rooms."""
        return sum(self.expected.values()), sum(self.delivered.values())

    def reset(self) -> None:
        self.expected.clear()
        self.delivered.clear()
        self.inflight.clear()


LEDGER = FanoutLedger()


class RoomRoster:
    """Members of each room as this load-generator process knows them.

    A member counts from its acknowledged join until its connection closes or
    is lost. Rooms are named per process, so the roster sees every member.
    """

    def __init__(self) -> None:
        self._members: defaultdict[str, set[int]] = defaultdict(set)

    def join(self, room: str, user: int) -> None:
        self._members[room].add(user)

    def leave(self, room: str, user: int) -> None:
        members = self._members.get(room)
        if members is not None:
            members.discard(user)

    def size(self, room: str) -> int:
        members = self._members.get(room)
        return len(members) if members else 0

    def reset(self) -> None:
        self._members.clear()


ROSTER = RoomRoster()
