"""The reference scenarios: profile names and the Locust user classes that run them."""
from __future__ import annotations

import re
from collections.abc import Iterable

#: scenario name -> user class in the harness's locustfile
SCENARIO_USERS: dict[str, str] = {
    "churn": "ChurnUser",
    "echo": "EchoUser",
    "broadcast": "BroadcastUser",
    "rooms": "RoomsUser",
    "idle": "IdleUser",
    "reference": "ReferenceUser",
}

_SCENARIO_BY_CLASS = {cls: name for name, cls in SCENARIO_USERS.items()}

#: reference scenarios whose users read the room options (--room-size, --senders-per-room)
ROOM_SCENARIOS = frozenset({"broadcast", "rooms"})


def shaped_by(scenario: str) -> frozenset[str]:
    """The reference options (payload, rooms) that shape ``scenario``; none for a user's own classes."""
    parts = scenario.split("+")
    if not all(part in SCENARIO_USERS for part in parts):
        return frozenset()
    rooms = {"room_size", "senders_per_room"} if ROOM_SCENARIOS.intersection(parts) else set()
    return frozenset({"payload_bytes", *rooms})


def scenario_of_classes(class_names: Iterable[str]) -> str:
    """The scenario a set of user classes runs: ``echo``, ``churn+echo`` for a mix, ``chat`` for ``ChatUser``."""
    names = sorted({_SCENARIO_BY_CLASS.get(c) or re.sub(r"User$", "", c).lower() or c for c in class_names})
    return "+".join(names) or "none"
