"""Every call ends as a sample: a target frozen mid-run (SIGSTOP) leaves its calls unanswered, and they count."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.paths import HARNESS_LOCUSTFILE, REPO_ROOT
from reports.build import build_cell_report
from target_app.process import start_target

pytestmark = pytest.mark.slow

USERS = 4


def test_calls_in_flight_when_the_target_froze_are_failures(tmp_path: Path) -> None:
    with start_target("gevent", "dev", log_path=tmp_path / "target.log") as target:
        freeze = threading.Timer(2.5, os.kill, (target.pid, signal.SIGSTOP))
        freeze.start()
        try:
            argv = [sys.executable, "-m", "locust", "-f", str(HARNESS_LOCUSTFILE), "--headless", "-u", str(USERS),
                    "-r", str(USERS), "-t", "5s", "--stop-timeout", "1", "--host", target.url,
                    "--results-dir", str(tmp_path / "cell"), "--call-timeout", "30", "--drain-timeout", "1",
                    "--loglevel", "WARNING", "EchoUser"]
            done = subprocess.run(argv, cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
                                  capture_output=True, text=True, timeout=120)
        finally:
            freeze.cancel()
            os.kill(target.pid, signal.SIGCONT)
    assert done.returncode in (0, 1), done.stderr[-3000:]
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
    assert 1.5 < first["start_s"] < 4.0 and first["length_s"] >= 1.0, summary["stalls"]
    assert summary["status"] != "ok" and any("stall" in p for p in summary["problems"])


def test_connections_follow_a_target_that_died(tmp_path: Path) -> None:
    """Clients of a killed target count as gone from the moment their connections were lost."""
    with start_target("gevent", "dev", log_path=tmp_path / "target.log") as target:
        kill = threading.Timer(3.0, os.kill, (target.pid, signal.SIGKILL))
        kill.start()
        try:
            argv = [sys.executable, "-m", "locust", "-f", str(HARNESS_LOCUSTFILE), "--headless", "-u", "10",
                    "-r", "50", "-t", "8s", "--stop-timeout", "1", "--host", target.url,
                    "--results-dir", str(tmp_path / "cell"), "--call-timeout", "2", "--fail-fast-after", "0",
                    "--loglevel", "WARNING", "EchoUser", "--emit-rate", "20"]
            done = subprocess.run(argv, cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
                                  capture_output=True, text=True, timeout=120)
        finally:
            kill.cancel()
    assert done.returncode in (0, 1), done.stderr[-3000:]
    connections = build_cell_report(tmp_path / "cell", html=False).summary["connections"]
    # Ten clients for the first ~3 of 8 s, none after: about 4, far from 10.
    assert connections["peak_concurrent"] == 10
    assert connections["mean_concurrent"] < 6.0, connections


def test_every_connect_refused_stops_early_and_exits_nothing_measured(tmp_path: Path) -> None:
    """A target that refuses every connect: the run stops after the grace period, not at its -t."""
    import json
    import time

    from bench import matrix as bench

    started = time.monotonic()
    code = bench.main(["--targets", "gevent-dev", "--scenarios", "echo", "--duration", "40", "--warmup", "0",
                       "--users", "3", "--results", str(tmp_path), "--run-id", "refused", "--no-report",
                       "--target-arg=--auth-token=not-what-the-clients-send"])
    assert code == 4  # core.exit_codes.EXIT_NOTHING_MEASURED
    assert time.monotonic() - started < 30, "fail-fast ended the run well before its 40 s"
    record = json.loads((tmp_path / "refused" / "gevent-dev--echo" / "run.json").read_text())
    assert record["status"] == "failed" and "answered none of the run's connects" in record["reason"]
    log = (tmp_path / "refused" / "gevent-dev--echo" / "locust.log").read_text()
    assert "every connect failed for 5 s" in log and "unauthorized" in log
