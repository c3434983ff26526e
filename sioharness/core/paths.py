"""Where the harness's own files are: in a checkout, or installed from a wheel into a user's venv."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

#: the sioharness package: core/, bench/, webui/, dockertools/, profiles/ and the harness's locustfile
PACKAGE_DIR = Path(__file__).resolve().parent.parent
#: the folder holding sioharness, loadtests, reports and target_app: a child process gets it first on PYTHONPATH,
#: and the harness's own children start there, where no package of a user's project can shadow the harness's
IMPORT_ROOT = PACKAGE_DIR.parent
#: the repository when the harness runs from a checkout, None when it is installed
CHECKOUT: Path | None = IMPORT_ROOT if (IMPORT_ROOT / "pyproject.toml").is_file() else None
#: the default results root: results/ in the checkout, or in the folder an installed harness is run from
RESULTS_ROOT = (CHECKOUT or Path.cwd()) / "results"
#: the harness's locustfile: the scenario users, the recorder and the web UI extension
HARNESS_LOCUSTFILE = PACKAGE_DIR / "locustfile.py"
PROFILES_DIR = PACKAGE_DIR / "profiles"
#: the web UI extension as a locustfile of its own, loaded beside a user's locustfile
WEBUI_PLUGIN = PACKAGE_DIR / "webui" / "locust_plugin.py"


def python_path_with(root: Path, env: Mapping[str, str] | None = None) -> str:
    """A child's PYTHONPATH: ``root`` first, then what ``env`` (default: this process's) already had."""
    return os.pathsep.join(filter(None, [str(root), (os.environ if env is None else env).get("PYTHONPATH")]))
