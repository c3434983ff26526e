"""An IdleUser sleeps on its socket: it wakes for the server's pings and at the stop, not on a timer.

Real target (pings every 2 s, 1 s to answer), real Locust environment in a
subprocess (``tests/idle_probe.py``). Wake-ups are counted twice: by the
client's own counter of resumed waits, and by tracing every switch into the
users' greenlets, whatever caused it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from target_app.process import TargetProcess, start_target

REPO = Path(__file__).resolve().parent.parent
PING_INTERVAL_S = 2
PING_TIMEOUT_S = 1
# Twice the time the server gives a silent client (interval + timeout).
WINDOW_S = 2 * (PING_INTERVAL_S + PING_TIMEOUT_S)
USERS = 3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetProcess]:
    log = tmp_path_factory.mktemp("idle-target") / "target.log"
    with start_target("gevent", "dev", log_path=log, extra_args=[
            "--ping-interval", str(PING_INTERVAL_S), "--ping-timeout", str(PING_TIMEOUT_S)]) as t:
        yield t


def probe(target: TargetProcess, *, stop_timeout: float, freeze: bool = False) -> dict[str, Any]:
    argv = ["nice", "-n", "10", sys.executable, "-m", "tests.idle_probe", target.url, "--users", str(USERS),
            "--window", str(WINDOW_S), "--stop-timeout", str(stop_timeout)]
    if freeze:
        argv += ["--freeze-pid", str(target.pid)]
    proc = subprocess.run(argv, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=WINDOW_S + 60)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(lines[-1])


def test_idle_users_wake_only_for_pings_and_stay_connected(target: TargetProcess) -> None:
    result = probe(target, stop_timeout=30)
    # The pings were answered: the server kept every user past two of its timeouts.
    assert result["connected_at_end"] == USERS
    assert result["server_connected"] == USERS
    pings = result["pings"]
    assert pings >= USERS * (WINDOW_S // PING_INTERVAL_S - 1), result
    # One wake per ping, nothing else (one spare each for a ping caught at
    # the window's edge): a user polling every second wakes WINDOW_S times
    # more (27 wakes and 45 switches here instead of 9 and 9).
    assert result["wakes"] <= pings + USERS, result
    assert result["switches"] <= pings + USERS, result


def test_a_stop_ends_sleeping_users_at_once_and_records_their_disconnect(target: TargetProcess) -> None:
    # A stop timeout lets busy users finish their task; sleeping ones must not make the stop wait for it.
    result = probe(target, stop_timeout=30)
    assert result["stop_s"] < 2, result
    assert result["failures"] == [], result
    assert result["requests"] == {"connect": USERS, "disconnect": USERS}, result


def test_a_silent_server_is_a_lost_connection_after_ping_interval_plus_timeout(target: TargetProcess) -> None:
    # The wait's only timer: with the server stopped, no ping comes and each
    # user records the lost connection (then reconnects once it resumes).
    try:
        result = probe(target, stop_timeout=30, freeze=True)
    finally:
        os.kill(target.pid, signal.SIGCONT)
    assert result["requests"].get("error") == USERS, result
    assert all("missed pings" in failure for failure in result["failures"] if failure.startswith("error")), result
    assert result["server_connected"] == USERS, result  # the reconnects
