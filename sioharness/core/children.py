"""Child processes that end with the process that started them.

A runner killed outright (SIGKILL, an OOM kill) cannot stop its children, and
each child runs in a session of its own (so a Ctrl-C reaches the runner
first). Linux's parent-death signal closes that gap: every server, Redis and
Locust the harness starts is prefixed with util-linux's ``setpriv
--pdeathsig TERM``, so the kernel sends it SIGTERM when the runner dies,
however it dies. Where ``setpriv`` is missing (not Linux) the prefix is
empty and the runner's own clean-up is all there is.
"""
from __future__ import annotations

import functools
import shutil
import subprocess


@functools.cache
def _setpriv() -> str | None:
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if "--pdeathsig" in done.stdout else None


def dies_with_parent(argv: list[str]) -> list[str]:
    """``argv`` prefixed so that the child gets SIGTERM when this process dies."""
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)
