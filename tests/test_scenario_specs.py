"""One spec per scenario (sioharness/core/scenarios.py): the reference ones and a user's declared classes alike."""
from __future__ import annotations

import ast
from pathlib import Path

from sioharness.core.scenarios import (
    RANK_CONNECTS,
    RANK_LATENCY,
    RANK_MEMORY,
    REFERENCE_SCENARIOS,
    SCENARIO_USERS,
    shaped_by,
    spec_of,
)
from sioharness.core.schema import PRIMARY_CONNECTS

REPO = Path(__file__).resolve().parent.parent


def test_every_reference_spec_names_a_class_the_harness_locustfile_offers() -> None:
    tree = ast.parse((REPO / "sioharness" / "locustfile.py").read_text(encoding="utf-8"))
    offered = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names}
    assert set(SCENARIO_USERS.values()) <= offered


def test_the_reference_specs_say_what_ranks_them() -> None:
    assert spec_of("churn").rank_by == RANK_CONNECTS and spec_of("churn").higher_is_better
    assert spec_of("idle").rank_by == RANK_MEMORY
    assert (spec_of("echo").main_event, spec_of("echo").rank_by) == ("echo", RANK_LATENCY)
    assert spec_of("rooms").main_event == "room_message" and spec_of("rooms").rooms
    assert spec_of("broadcast").fanout["broadcast"] == "fanout"
    # a mix has no one main event: the busiest one is the main event
    assert spec_of("churn+echo").main_event is None and spec_of("churn+echo").rank_by == RANK_LATENCY


def test_a_users_declarations_make_the_same_kind_of_spec() -> None:
    chat = spec_of("chat", {"chat_message": "new_message"}, "chat_message")
    assert (chat.main_event, chat.rank_by, chat.fanout["chat_message"]) == ("chat_message", RANK_LATENCY,
                                                                           "new_message")
    logins = spec_of("login", None, PRIMARY_CONNECTS)
    assert logins.rank_by == RANK_CONNECTS and logins.main_event is None
    assert spec_of("chat").user_class is None and not spec_of("chat").rooms


def test_only_reference_scenarios_are_shaped_by_the_reference_options() -> None:
    assert shaped_by("broadcast") == {"payload_bytes", "room_size", "senders_per_room"}
    assert shaped_by("echo+rooms") == {"payload_bytes", "room_size", "senders_per_room"}
    assert shaped_by("echo") == {"payload_bytes"}
    assert shaped_by("chat") == frozenset() and shaped_by("chat+echo") == frozenset()
    assert all(spec.name == name for name, spec in REFERENCE_SCENARIOS.items())
