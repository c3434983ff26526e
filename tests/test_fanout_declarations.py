"""Declared fan-out (loadtests.runtime.fanout): pure logic, no network."""
from __future__ import annotations

import time

import pytest

from loadtests.runtime.fanout import FanOut, check_declarations, pairs_of, sent_ns_of, stamped


def test_stamped_adds_the_send_time() -> None:
    before = time.time_ns()
    data = stamped({"room": "a"}, text="hi")
    assert data["room"] == "a" and data["text"] == "hi" and before <= data["t_ns"] <= time.time_ns()


@pytest.mark.parametrize("push, sent", [
    ({"t_ns": 5}, 5),
    ({"payload": {"t_ns": 7, "data": "x"}}, 7),
    ({"text": "no stamp"}, None),
    (["t_ns", 5], None),
])
def test_the_send_time_is_found_where_servers_put_it(push: object, sent: object) -> None:
    assert sent_ns_of(push) == sent


def test_pairs_come_from_every_class() -> None:
    class Chat:
        fanout = {"chat_message": FanOut("new_message", expected="roster")}

    class Alerts:
        fanout = {"alert": FanOut("alerted", expected=lambda user, data, ack: 3)}

    class Plain:
        pass

    assert pairs_of([Chat, Alerts, Plain]) == {"chat_message": "new_message", "alert": "alerted"}


@pytest.mark.parametrize("make, message", [
    (lambda: FanOut(""), "push must be an event name"),
    (lambda: FanOut("x", expected="room"), "expected must be one of ack, roster"),
    (lambda: FanOut("x", expected=3), "expected must be a source name or a function"),
])
def test_a_bad_declaration_is_named(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_class_fanout_must_map_events_to_declarations() -> None:
    assert check_declarations("ChatUser", {"m": FanOut("n")}) == {"m": FanOut("n")}
    with pytest.raises(ValueError, match=r"ChatUser.fanout\['m'\] must be FanOut"):
        check_declarations("ChatUser", {"m": "n"})
    with pytest.raises(ValueError, match="ChatUser.fanout must be a dict"):
        check_declarations("ChatUser", [("m", FanOut("n"))])


@pytest.mark.parametrize("push, stamp, sent", [
    ({"data": {"t_ns": 9, "text": "hi"}, "count": 3}, "data.t_ns", 9),
    ({"data": 11}, "data", 11),
    ({"items": [{"t": 1}, {"t": 12}]}, "items.1.t", 12),
    ({"items": [{"t": 1}]}, "items.3.t", None),
    ({"data": "Connected"}, "data.t_ns", None),
    ({"t_ns": 5}, "data.t_ns", None),  # a path given is the only place looked at
])
def test_the_send_time_is_found_at_a_dotted_path(push: object, stamp: str, sent: object) -> None:
    assert sent_ns_of(push, stamp) == sent


@pytest.mark.parametrize("make, message", [
    (lambda: FanOut("p", stamp="data..t_ns"), "dotted path"),
    (lambda: FanOut("p", stamp=""), "dotted path"),
    (lambda: FanOut("p", match="room"), "match must be a function"),
])
def test_a_bad_stamp_or_match_is_named(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_a_match_decides_which_pushes_are_the_fan_outs() -> None:
    declaration = FanOut("my_response", match=lambda m: m.get("data", {}).get("kind") == "room")
    assert declaration.match is not None
    assert declaration.match({"data": {"kind": "room", "t_ns": 1}})
    assert not declaration.match({"data": {"kind": "all"}})


def test_primary_is_an_event_name_or_connects() -> None:
    from loadtests.runtime.fanout import check_primary, primary_of

    check_primary("U", None)
    check_primary("U", "my_event")
    check_primary("U", "connects/s")
    for bad in (5, "", "  ", ["my_event"]):
        with pytest.raises(ValueError, match="U.primary must be the main event's name"):
            check_primary("U", bad)

    class A:
        primary = None

    class B:
        primary = "my_event"

    assert primary_of([A, B]) == "my_event" and primary_of([A]) is None
