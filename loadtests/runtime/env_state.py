"""Typed access to what the harness hangs on Locust's ``Environment``.

Locust's ``Environment`` has no place for a plugin's objects, so the harness
sets attributes on it: the run's settings (read by the users) and the
per-process :class:`loadtests.runtime.harness.Harness`. These accessors keep the
attribute names in one place and give them types. (The web UI's panel is set
by :func:`sioharness.webui.panel.set_panel`, in its own, higher layer.)

No Locust import at run time: :mod:`sioharness.webui.panel` uses this module and is
imported outside Locust processes (importing Locust monkey-patches with gevent).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from locust.env import Environment

    from loadtests.runtime.harness import Harness
    from loadtests.runtime.options import LoadSettings

_SETTINGS = "loadtests_settings"
_HARNESS = "loadtests_harness"


def settings_of(environment: Environment) -> LoadSettings | None:
    """The run's settings, once the harness or a user has parsed them."""
    return getattr(environment, _SETTINGS, None)


def set_settings(environment: Environment, settings: LoadSettings) -> None:
    setattr(environment, _SETTINGS, settings)


def harness_of(environment: Environment) -> Harness | None:
    """This process's harness (None before the ``init`` event, or outside a harness run)."""
    return getattr(environment, _HARNESS, None)


def set_harness(environment: Environment, harness: Harness) -> None:
    setattr(environment, _HARNESS, harness)
