"""Cell names: ``<mode>-<server>--<scenario>[--<variant>]``, built and parsed in one place.

A cell is one target, one scenario and one load shape, and its name is its
results folder. The first ``--`` separates the target label from the
scenario; anything after a second ``--`` is a variant of the same scenario
(a capacity step ``--u00020``, a start time). Parsing never guesses from the
right, so a variant does not turn into the scenario.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SEPARATOR = "--"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def safe_part(text: str) -> str:
    """``text`` made safe for a folder name: runs of other characters become ``_``."""
    return _UNSAFE.sub("_", text).strip("_") or "unknown"


@dataclass(frozen=True)
class CellName:
    """The parts of a cell name."""

    target: str
    scenario: str
    variant: str = ""

    def __str__(self) -> str:
        parts = [self.target, self.scenario] + ([self.variant] if self.variant else [])
        return SEPARATOR.join(parts)

    @classmethod
    def parse(cls, name: str) -> CellName:
        """Split a folder name; one without ``--`` is all target, with an empty scenario."""
        target, _, rest = name.partition(SEPARATOR)
        scenario, _, variant = rest.partition(SEPARATOR)
        return cls(target, scenario, variant)


def target_label(mode: str, server: str) -> str:
    """``gevent-dev``: the target part of a cell name."""
    return f"{safe_part(mode)}-{safe_part(server)}"


def cell_name(mode: str, server: str, scenario: str, variant: str = "") -> str:
    """``<mode>-<server>--<scenario>[--<variant>]``."""
    return str(CellName(target_label(mode, server), safe_part(scenario), variant))


def capacity_variant(users: int) -> str:
    """The variant of one step of a capacity search: ``u00020``."""
    return f"u{users:05d}"
