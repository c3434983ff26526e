"""Locust's web UI, made complete for Socket.IO load tests.

``locustfile.py`` calls :func:`register`; from then on every web
UI run gets a results folder per test start, a Socket.IO page with live
figures from the recorder's samples (``/socketio/``), a button that writes
the full report, Socket.IO tabs in Locust's own UI, and a login when
Locust runs with ``--web-login``. ``python -m sioharness.bench.ui`` starts a target
and this UI together.

Importing this package is cheap and has no side effects; the Locust-side
parts load when Locust initialises.
"""
from __future__ import annotations

from typing import Any

__all__ = ["register"]

_registered: set[int] = set()


def register(events: Any) -> None:
    """Hook the web UI extension into Locust's ``init`` event (``locust.events``), once."""
    from sioharness.webui.panel import on_init

    if id(events) in _registered:
        return
    _registered.add(id(events))
    events.init.add_listener(on_init)
