"""Every call ends as a sample: a target frozen mid-run (SIGSTOP) leaves its calls unanswered, and they count."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow.parquet as pq
import pytest

from reports.build import build_cell_report
from sioharness.core.paths import HARNESS_LOCUSTFILE
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT
from sioharness.core.run_record import ramp_warmup_s
from sioharness.core.stats_client import connected_count, probe_stats
from target_app.process import start_target

pytestmark = pytest.mark.slow

USERS = 4
#: The frozen load's -t: long enough that the freeze, once the echoes flow, leaves seconds to stall.
RUN_S = 10


def wait_until(condition: Callable[[], bool], load: subprocess.Popen[str], what: str, *, timeout_s: float) -> None:
    """Return once ``condition()`` holds: the load is running, whatever its start-up took."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert load.poll() is None, f"Locust ended before {what}"
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not {what} within {timeout_s:.0f} s")


def past_warmup(load: subprocess.Popen[str], users: int, spawn_rate: float, run_s: float) -> None:
    """Wait out the report's warm-up (the ramp, as the harness cuts it), counted from an event seen
    after the load began, so at least that long after the load's start; half a second more for the
    report's window edge."""
    time.sleep(ramp_warmup_s(users, spawn_rate, run_s) + 0.5)
    assert load.poll() is None, "Locust ended during the warm-up"


def echoes_handled(target_url: str) -> int:
    stats = probe_stats(target_url, timeout=1.0)
    return int(stats.get("events", {}).get("echo", 0)) if stats is not None else 0


def test_calls_in_flight_when_the_target_froze_are_failures(tmp_path: Path) -> None:
    with start_target("gevent", "dev", log_path=tmp_path / "target.log") as target:
        argv = [sys.executable, "-m", "locust", "-f", str(HARNESS_LOCUSTFILE), "--headless", "-u", str(USERS),
                "-r", str(USERS), "-t", f"{RUN_S}s", "--stop-timeout", "1", "--host", target.url,
                "--results-dir", str(tmp_path / "cell"), "--call-timeout", "30", "--drain-timeout", "1",
                "--loglevel", "WARNING", "EchoUser"]
        load = subprocess.Popen(argv, cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Freeze once every user is echoing (the target counted echoes), not at a guess of
            # how long Locust takes to start: on a busy machine that guess landed before the load.
            wait_until(lambda: echoes_handled(target.url) > 0, load, "the first echo", timeout_s=60)
            past_warmup(load, USERS, USERS, RUN_S)
            wait_until(lambda: echoes_handled(target.url) >= 50 * USERS, load, "every user echoing", timeout_s=60)
            frozen_at_ns = time.time_ns()
            os.kill(target.pid, signal.SIGSTOP)
            _, stderr = load.communicate(timeout=120)
        finally:
            os.kill(target.pid, signal.SIGCONT)
            if load.poll() is None:
                load.kill()
                load.wait()
    assert load.returncode in (0, 1), stderr[-3000:]
    samples = pd.concat(pq.read_table(p).to_pandas() for p in (tmp_path / "cell").glob("samples-*.parquet"))
    acks = samples[samples.kind == "ack"]
    unanswered = acks[acks.error.fillna("").str.startswith("UnansweredAtStop")]
    # Each user waited on one echo when the target froze; none of them is lost.
    assert len(unanswered) == USERS, acks.error.value_counts(dropna=False)
    assert acks.ok.sum() > 0 and (~acks.ok).sum() == USERS

    # The frozen stretch is a stall in the report: found, timed, and the cell is not "ok".
    summary = build_cell_report(tmp_path / "cell", html=False).summary
    assert summary["stalls"], summary["stall_check"]
    first = summary["stalls"][0]
    frozen_s = (frozen_at_ns - summary["window"]["load_start_ns"]) / 1e9
    # The stall starts at the last answer before the freeze: at most a moment before it (4 users
    # echo flat out, so answers come every few ms), and never long after (frames already in the
    # socket buffers can still arrive). It lasts until the run's end, seconds later.
    assert frozen_s - 0.5 < first["start_s"] < frozen_s + 0.5, (frozen_s, summary["stalls"])
    assert first["length_s"] >= 1.0, summary["stalls"]
    assert summary["status"] != "ok" and any("stall" in p for p in summary["problems"])


def test_connections_follow_a_target_that_died(tmp_path: Path) -> None:
    """Clients of a killed target count as gone from the moment their connections were lost."""
    with start_target("gevent", "dev", log_path=tmp_path / "target.log") as target:
        argv = [sys.executable, "-m", "locust", "-f", str(HARNESS_LOCUSTFILE), "--headless", "-u", "10",
                "-r", "50", "-t", "10s", "--stop-timeout", "1", "--host", target.url,
                "--results-dir", str(tmp_path / "cell"), "--call-timeout", "2", "--fail-fast-after", "0",
                "--loglevel", "WARNING", "EchoUser", "--emit-rate", "20"]
        load = subprocess.Popen(argv, cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Kill once all ten clients are connected (the target counts them), however long Locust took.
            wait_until(lambda: connected_count(target.url) == 10, load, "all 10 clients connected", timeout_s=60)
            past_warmup(load, 10, 50, 10)
            os.kill(target.pid, signal.SIGKILL)
            _, stderr = load.communicate(timeout=120)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    assert load.returncode in (0, 1), stderr[-3000:]
    connections = build_cell_report(tmp_path / "cell", html=False).summary["connections"]
    # Ten clients until the kill, a moment past the warm-up of the 10 s load, none after: far from 10 on average.
    assert connections["peak_concurrent"] == 10
    assert connections["mean_concurrent"] < 6.0, connections


def test_every_connect_refused_stops_early_and_exits_nothing_measured(tmp_path: Path) -> None:
    """A target that refuses every connect: the run stops after the grace period, not at its -t."""
    import json
    import time

    from sioharness.bench import matrix as bench

    started = time.monotonic()
    code = bench.main(["--targets", "gevent-dev", "--scenarios", "echo", "--duration", "40", "--warmup", "0",
                       "--users", "3", "--results", str(tmp_path), "--run-id", "refused", "--no-report",
                       "--target-arg=--auth-token=not-what-the-clients-send"])
    assert code == 4  # sioharness.core.exit_codes.EXIT_NOTHING_MEASURED
    assert time.monotonic() - started < 30, "fail-fast ended the run well before its 40 s"
    record = json.loads((tmp_path / "refused" / "gevent-dev--echo" / "run.json").read_text())
    assert record["status"] == "failed" and "answered none of the run's connects" in record["reason"]
    log = (tmp_path / "refused" / "gevent-dev--echo" / "locust.log").read_text()
    assert "every connect failed for 5 s" in log and "unauthorized" in log
