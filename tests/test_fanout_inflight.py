"""A declared fan-out send stays in the ledger's in-flight count until its ack has added what it promised.

At stop each member drains until every room's ledger is settled (nothing in flight, every promised delivery
received), then leaves. A send whose ack had not come back yet promised nothing so far: without the in-flight
count a member could leave before its delivery arrived, and the run counted that delivery lost. These tests
drive the user's round trip with a stand-in for the connection (no server), so each step is deterministic.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from gevent import GreenletExit

from loadtests import FanOut, SocketIOUser
from loadtests.runtime.fanout import LEDGER
from loadtests.wire.errors import ConnectionClosed

KEY = "push:said"


class _Chat(SocketIOUser):
    abstract = True
    fanout = {"say": FanOut("said", expected="roster")}


class _Pending:
    """Answers each wait with the next outcome (an exception is raised); checks the ledger while it waits."""

    sent_bytes = 10

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.in_flight_seen: list[int] = []

    def wait(self, timeout: float) -> Any:
        self.in_flight_seen.append(LEDGER.inflight[KEY])
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _user() -> _Chat:
    user = _Chat.__new__(_Chat)  # no Locust environment: only what a round trip reads
    user.client = SimpleNamespace(connected=True)
    user.settings = SimpleNamespace(call_timeout=1.0)
    user._inflight = None
    user._inflight_fanout = None
    user.record = lambda *args, **kwargs: None  # type: ignore[method-assign]
    user._record_ack = lambda pending, ack, *rest: ack  # type: ignore[method-assign]
    user.roster_count = lambda data, declaration: 3  # type: ignore[method-assign]
    return user


@pytest.fixture(autouse=True)
def clean_ledger() -> Any:
    LEDGER.reset()
    yield
    LEDGER.reset()


def _say(user: _Chat, pending: _Pending) -> Any:
    return user._round_trip(lambda event, *args: pending, "say", ({"room": "r"},), None, None, None, None)


def test_a_send_is_in_flight_until_its_ack_adds_the_deliveries_it_promised() -> None:
    pending = _Pending({"ok": True})
    _say(_user(), pending)
    assert pending.in_flight_seen == [1]  # a member draining meanwhile would have waited
    assert LEDGER.inflight[KEY] == 0 and LEDGER.expected[KEY] == 3
    assert not LEDGER.settled(KEY)  # the three deliveries are still owed
    LEDGER.delivered[KEY] += 3
    assert LEDGER.settled(KEY)


def test_a_failed_send_is_no_longer_in_flight() -> None:
    _say(_user(), _Pending(ConnectionClosed("gone")))
    assert LEDGER.inflight[KEY] == 0 and LEDGER.expected[KEY] == 0 and LEDGER.settled(KEY)


def test_a_send_the_stop_interrupted_stays_in_flight_until_it_is_finished() -> None:
    user, pending = _user(), _Pending(GreenletExit(), {"ok": True})
    with pytest.raises(GreenletExit):
        _say(user, pending)
    assert LEDGER.inflight[KEY] == 1 and not LEDGER.settled(KEY)
    user.finish_inflight(1.0)
    assert LEDGER.inflight[KEY] == 0 and LEDGER.expected[KEY] == 3


def test_a_send_abandoned_by_a_disconnect_is_no_longer_in_flight() -> None:
    user, pending = _user(), _Pending(GreenletExit())
    with pytest.raises(GreenletExit):
        _say(user, pending)
    user._abandon_inflight("the connection was closed")
    assert LEDGER.inflight[KEY] == 0 and LEDGER.settled(KEY)
