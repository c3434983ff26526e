"""Where the harness's own files are: it runs from its repository, nothing is installed."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: the harness's locustfile: the scenario users, the recorder and the web UI extension
HARNESS_LOCUSTFILE = REPO_ROOT / "locustfile.py"
PROFILES_DIR = REPO_ROOT / "profiles"
#: the web UI extension as a locustfile of its own, loaded beside a user's locustfile
WEBUI_PLUGIN = REPO_ROOT / "webui" / "locust_plugin.py"
