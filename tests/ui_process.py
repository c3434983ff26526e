"""A web UI launcher (``sioharness.bench.ui`` or the ``sioharness ui`` command) run for a test, always stopped."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


@contextlib.contextmanager
def running_ui(argv: Sequence[str], *, port: int, cwd: Path, env: Mapping[str, str], log: Path,
               timeout: float = 90) -> Iterator[str]:
    """Start the launcher, wait until its web UI answers on ``port``, yield the start page; Ctrl-C at the end.

    Fails with the launcher's output when the page never came. The launcher gets SIGINT, as a user's Ctrl-C,
    and its process group SIGKILL if it has not ended within a minute.
    """
    with open(log, "wb") as out:
        ui = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        page = ""
        while not page and time.monotonic() < deadline and ui.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as response:
                    page = response.read().decode()
            except OSError:
                time.sleep(0.5)
        assert page, log.read_text(errors="replace")[-3000:]
        yield page
    finally:
        ui.send_signal(signal.SIGINT)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(timeout=10)
