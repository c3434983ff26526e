"""Artillery 2's socketio engine as a third load generator for ``benchmarks.loadgen``.

Artillery is a node program installed outside the repository::

    ARTILLERY_DISABLE_TELEMETRY=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \\
        npm install --prefix /tmp/artillery artillery@2

and found by ``--artillery`` (the install folder or the ``artillery``
executable), ``$ARTILLERY``, or ``artillery`` on the PATH. Its echo
measurement runs a scenario of ``users`` virtual users that connect over
the websocket transport and emit ``echo`` with an acknowledgement in a loop,
flat out, one at a time each (as the lean ``EchoUser`` does); the process
tree's CPU (psutil, children included) over a steady window is divided by
the echoes the target counted in that window.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ENV_COMMAND = "ARTILLERY"
#: what Artillery needs in its environment: no telemetry calls home
RUN_ENV = {"ARTILLERY_DISABLE_TELEMETRY": "1"}
INSTALL_HINT = ("install it outside the repository: ARTILLERY_DISABLE_TELEMETRY=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "
                "npm install --prefix /tmp/artillery artillery@2, then pass --artillery /tmp/artillery")
_ERROR_LINE = re.compile(r"^errors\.[^:]*:\s*\.*\s*(\d+)\s*$", re.MULTILINE)


def find(explicit: str | None = None) -> tuple[list[str] | None, str]:
    """(the command that runs Artillery, "") or (None, why it cannot run)."""
    if shutil.which("node") is None:
        return None, "node is not on the PATH"
    given = explicit or os.environ.get(ENV_COMMAND)
    if given:
        path = Path(given)
        if path.is_dir():
            path = path / "node_modules" / ".bin" / "artillery"
        if not path.exists():
            return None, f"no Artillery at {given} ({INSTALL_HINT})"
        return [str(path)], ""
    found = shutil.which("artillery")
    if found is None:
        return None, f"artillery is not on the PATH and --artillery / ${ENV_COMMAND} is not set ({INSTALL_HINT})"
    return [found], ""


def scenario(url: str, users: int, payload_bytes: int) -> str:
    """The echo scenario: ``users`` virtual users, each emitting acked ``echo`` in a loop."""
    document = {
        "config": {
            "target": url,
            # All users arrive in the first second, then loop until the process is ended.
            "phases": [{"duration": 1, "arrivalCount": users}],
            "socketio": {"transports": ["websocket"]},
        },
        "scenarios": [{
            "name": "echo",
            "engine": "socketio",
            "flow": [{"loop": [{"emit": {"channel": "echo", "data": "x" * payload_bytes}, "acknowledge": {}}],
                      "count": 1_000_000_000}],
        }],
    }
    return json.dumps(document, indent=1)  # JSON is YAML


def tree_cpu_s(root: psutil.Process) -> float:
    """User + system CPU seconds of ``root`` and its live descendants (and the children it reaped)."""
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def errors_in(log: str) -> int:
    """Errors Artillery's periodic reports counted (``errors.<kind>: ... N`` lines)."""
    return sum(int(n) for n in _ERROR_LINE.findall(log))


def measure_echo(command: list[str], url: str, *, users: int, payload_bytes: int, warmup_s: float,
                 window_s: float, cores: list[int] | None, stats: Callable[[], dict[str, Any]],
                 connect_timeout: float = 60.0) -> dict[str, Any]:
    """Run the echo scenario; CPU per ack over a steady window. RuntimeError when Artillery cannot be driven."""
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-artillery-") as folder:
        path = Path(folder) / "echo.yml"
        path.write_text(scenario(url, users, payload_bytes))
        argv = [*command, "run", str(path)]
        if cores:
            argv = ["taskset", "--cpu-list", ",".join(map(str, cores)), *argv]
        log_path = Path(folder) / "artillery.log"
        with open(log_path, "w") as log:
            # Its own session: the whole tree is ended by its process group id at the end.
            proc = subprocess.Popen(argv, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                    env=os.environ | RUN_ENV, start_new_session=True)
        try:
            root = psutil.Process(proc.pid)
            deadline = time.monotonic() + connect_timeout
            while stats()["connected"] < users:
                if proc.poll() is not None:
                    raise RuntimeError(f"artillery exited ({proc.returncode}) before its users connected:\n"
                                       f"{log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"artillery's {users} users did not connect within {connect_timeout:g} s:\n"
                                       f"{log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            time.sleep(warmup_s)
            before, cpu_before, t_before = stats(), tree_cpu_s(root), time.monotonic()
            time.sleep(window_s)
            after, cpu_after, t_after = stats(), tree_cpu_s(root), time.monotonic()
            if proc.poll() is not None:
                raise RuntimeError(f"artillery exited ({proc.returncode}) during the window:\n"
                                   f"{log_path.read_text()[-2000:]}")
        finally:
            _end(proc)
        elapsed, cpu = t_after - t_before, cpu_after - cpu_before
        acks = after["events"].get("echo", 0) - before["events"].get("echo", 0)
        return {"window_s": elapsed, "cpu_s": cpu, "acks": acks, "acks_per_s": acks / elapsed,
                "cpu_us_per_ack": cpu / acks * 1e6 if acks else None, "failures": errors_in(log_path.read_text())}


def _end(proc: subprocess.Popen[bytes]) -> None:
    """End the Artillery process group this module started (by its id), within a few seconds."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
