"""The web UI extension as a locustfile of its own, for a user's locustfile.

``python -m sioharness.bench.ui --locustfile my_locustfile.py`` runs Locust with
``-f my_locustfile.py,sioharness/webui/locust_plugin.py``: the user's classes fill the
class picker, and this file (which defines no user) adds the Socket.IO page,
a results folder per test and the report button.
"""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # let `locust -f` work from any directory
    sys.path.insert(0, _ROOT)

from locust import events  # noqa: E402

import loadtests.socketio_user  # noqa: E402,F401  (the harness: options, recorder, watchdog)
from sioharness.webui import register  # noqa: E402

register(events)
