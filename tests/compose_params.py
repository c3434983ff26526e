"""Parametrize a test over every compose this machine has (v2 and/or v1)."""
from __future__ import annotations

import pytest

from sioharness.dockertools.cli import installed_composes

COMPOSES = [list(command) for command in installed_composes()]

with_each_compose = pytest.mark.parametrize(
    "compose",
    COMPOSES or [pytest.param(None, marks=pytest.mark.skip(
        reason="no docker compose (v2) or docker-compose (v1) installed"))],
    ids=lambda c: "v2" if c and c[-1] == "compose" else "v1",
)
