"""What a locustfile offers, asked of Locust itself (``locust -f FILE --list``) before a run starts.

Importing a user's locustfile here would import Locust, which monkey-patches
this process with gevent; a short child process answers instead, so a bad
``--locustfile`` or ``--user`` is one clear line before any target starts.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sioharness.bench.profile import LoadShape, Scenario
from sioharness.core.paths import IMPORT_ROOT, python_path_with

LIST_TIMEOUT_S = 90.0


class LocustfileError(ValueError):
    """A locustfile that cannot run, or a user class it does not have; the message says which."""


def user_classes_of(locustfile: Path) -> list[str]:
    """The user classes Locust finds in ``locustfile``; LocustfileError when there are none or it fails to load."""
    if not locustfile.is_file():
        raise LocustfileError(f"--locustfile {locustfile}: no such file")
    env = os.environ | {"PYTHONPATH": python_path_with(IMPORT_ROOT)}
    try:
        done = subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--list"], cwd=IMPORT_ROOT,
                              env=env, capture_output=True, text=True, timeout=LIST_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LocustfileError(f"--locustfile {locustfile}: Locust did not list its users within "
                              f"{LIST_TIMEOUT_S:.0f} s (does it run something at import?)") from None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or "Available Users:" not in lines:
        problem = next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()
                        and "locust.main: Starting Locust" not in line), f"exit code {done.returncode}")
        raise LocustfileError(f"--locustfile {locustfile}: Locust could not load it: {problem}")
    classes = [line.strip() for line in lines[lines.index("Available Users:") + 1:] if line.strip()]
    if not classes:
        raise LocustfileError(f"--locustfile {locustfile} defines no user class: subclass loadtests.SocketIOUser "
                              "(or another Locust User) and give it @task methods")
    return classes


def check_user_classes(locustfile: Path, wanted: Sequence[str]) -> list[str]:
    """``wanted`` when the locustfile has each; otherwise LocustfileError listing the valid names."""
    found = user_classes_of(locustfile)
    missing = [name for name in wanted if name not in found]
    if missing:
        raise LocustfileError(f"--user {missing[0]}: {locustfile} has no such user class "
                              f"(it has: {', '.join(found)})")
    return list(wanted) or found


def single_user_scenario(locustfile: Path | None, user: str | None, reference: str, load: LoadShape) -> Scenario:
    """The one scenario a command runs: ``--user`` of ``--locustfile`` (checked with Locust), or the reference one.

    A locustfile with several classes needs ``--user``; LocustfileError otherwise.
    """
    if locustfile is None:
        return Scenario.of_user(user, load) if user else Scenario(reference, load)
    locustfile = locustfile.resolve()
    users = check_user_classes(locustfile, [user] if user else [])
    if len(users) != 1:
        raise LocustfileError(f"--locustfile has {len(users)} user classes ({', '.join(users)}): "
                              "pick one with --user")
    return Scenario.of_user(users[0], load, locustfile)
