"""Socket.IO load test entry point in a checkout: ``locust -f locustfile.py``.

The scenario users and the web UI extension are in ``sioharness/locustfile.py``
(the file the runners give Locust, in a checkout and installed alike); this one
lets ``locust -f locustfile.py`` work from the repository root, as the docs and
the container images use it.
"""
from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent)
if _ROOT not in sys.path:  # let `locust -f` work from any directory
    sys.path.insert(0, _ROOT)

from sioharness.locustfile import *  # noqa: E402,F403  (the scenario users; Locust collects them here)
