"""What a scenario means: its user class, main event, fan-out pairs and the figure that ranks it.

The reference scenarios are specs in :data:`REFERENCE_SCENARIOS`; a user's own
classes declare the same things on the class (``fanout = {...}``, ``primary =
"chat"``), the harness writes them into the cell, and :func:`spec_of` makes
one :class:`ScenarioSpec` of either. The reports, compare, check, capacity and
the A/B read the spec (or the ``primary`` it put into summary.json), never
a map of their own.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sioharness.core.schema import PRIMARY_CONNECTS

#: what ranks a scenario's cells: the main event's p99 (lower is better), the
#: connect rate (higher) or the server's RSS per connected client (lower)
RANK_LATENCY = "latency"
RANK_CONNECTS = "connects"
RANK_MEMORY = "memory"


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario's meaning."""

    name: str
    #: the Locust user class (the harness's for a reference scenario)
    user_class: str | None = None
    #: the acknowledged event the scenario is about (None: the busiest one measured)
    main_event: str | None = None
    #: acked event -> the push its fan-out deliveries arrive as
    fanout: Mapping[str, str] = field(default_factory=dict)
    rank_by: str = RANK_LATENCY
    #: the users read the room options (--room-size, --senders-per-room)
    rooms: bool = False

    @property
    def higher_is_better(self) -> bool:
        return self.rank_by == RANK_CONNECTS


#: the reference scenarios (locustfile.py's user classes), by profile name
REFERENCE_SCENARIOS: dict[str, ScenarioSpec] = {spec.name: spec for spec in (
    ScenarioSpec("churn", "ChurnUser", rank_by=RANK_CONNECTS),
    ScenarioSpec("echo", "EchoUser", main_event="echo"),
    ScenarioSpec("broadcast", "BroadcastUser", main_event="broadcast", fanout={"broadcast": "fanout"}, rooms=True),
    ScenarioSpec("rooms", "RoomsUser", main_event="room_message", fanout={"room_message": "room_message"},
                 rooms=True),
    ScenarioSpec("idle", "IdleUser", rank_by=RANK_MEMORY),
    ScenarioSpec("reference", "ReferenceUser"),
)}

#: scenario name -> user class in the harness's locustfile
SCENARIO_USERS: dict[str, str] = {name: str(spec.user_class) for name, spec in REFERENCE_SCENARIOS.items()}
_SCENARIO_BY_CLASS = {cls: name for name, cls in SCENARIO_USERS.items()}


def reference_parts(scenario: str) -> list[ScenarioSpec] | None:
    """The reference specs a (``+``-joined) scenario name runs, or None when any part is a user's own."""
    parts = [REFERENCE_SCENARIOS.get(part) for part in scenario.split("+")]
    return None if any(p is None for p in parts) else [p for p in parts if p is not None]


#: the reference target's fan-out pairs: they hold in every cell, since a user's own class may send them too
REFERENCE_FANOUT: dict[str, str] = {event: push for spec in REFERENCE_SCENARIOS.values()
                                    for event, push in spec.fanout.items()}


def spec_of(scenario: str | None, declared_fanout: Mapping[str, str] | None = None,
            declared_primary: str | None = None) -> ScenarioSpec:
    """The spec of a cell's scenario: its reference spec (a mix has none), with what its user classes declared."""
    name = scenario or ""
    parts = reference_parts(name) or []
    own = parts[0] if len(parts) == 1 else ScenarioSpec(name)
    main_event, rank_by = own.main_event, own.rank_by
    if declared_primary == PRIMARY_CONNECTS:
        rank_by, main_event = RANK_CONNECTS, None
    elif declared_primary is not None:
        rank_by, main_event = RANK_LATENCY, declared_primary
    return ScenarioSpec(name, own.user_class, main_event, REFERENCE_FANOUT | dict(declared_fanout or {}), rank_by,
                        any(p.rooms for p in parts))


def shaped_by(scenario: str) -> frozenset[str]:
    """The reference options (payload, rooms) that shape ``scenario``; none for a user's own classes."""
    parts = reference_parts(scenario)
    if parts is None:
        return frozenset()
    rooms = {"room_size", "senders_per_room"} if any(p.rooms for p in parts) else set()
    return frozenset({"payload_bytes", *rooms})


def scenario_of_classes(class_names: Iterable[str]) -> str:
    """The scenario a set of user classes runs: ``echo``, ``churn+echo`` for a mix, ``chat`` for ``ChatUser``."""
    names = sorted({_SCENARIO_BY_CLASS.get(c) or re.sub(r"User$", "", c).lower() or c for c in class_names})
    return "+".join(names) or "none"
