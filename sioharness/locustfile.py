"""The harness's locustfile: ``locust -f locustfile.py`` in a checkout (the root file imports this one).

Scenario users (pick one or more by name, or with ``--class-picker`` in the
web UI):

- ``ChurnUser``      connect, one echo, disconnect, repeat
- ``EchoUser``       stay connected, acked echoes at ``--emit-rate`` or flat out
- ``BroadcastUser``  rooms of listeners with a few senders; fan-out latency
- ``RoomsUser``      chat rooms: everyone sends and receives
- ``IdleUser``       hold connections open, answering pings
- ``ReferenceUser``  Locust's python-socketio user (``--transport polling`` too)

Headless example (results folder for the sample shards)::

    locust -f locustfile.py --headless -u 50 -r 50 -t 30s --stop-timeout 5 \\
        --host http://127.0.0.1:5000 --results-dir results/x/cell EchoUser --emit-rate 20

Installed, the runners pass this file's path to Locust (``sioharness.core.paths.HARNESS_LOCUSTFILE``).
"""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # a checkout: let `locust -f` work from any directory
    sys.path.insert(0, _ROOT)

from locust import events  # noqa: E402

from loadtests.users import (  # noqa: E402,F401  (Locust collects the classes it finds here)
    BroadcastUser,
    ChurnUser,
    EchoUser,
    IdleUser,
    ReferenceUser,
    RoomsUser,
)
from sioharness.webui import register as register_web_ui  # noqa: E402

#: what the checkout's root locustfile.py re-exports for Locust
__all__ = ["BroadcastUser", "ChurnUser", "EchoUser", "IdleUser", "ReferenceUser", "RoomsUser"]

register_web_ui(events)  # Socket.IO page, a folder per test, login (webui)
