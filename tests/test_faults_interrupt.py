"""SIGINT, SIGTERM, SIGHUP or SIGKILL to the runner mid-run.

Expected: a readable, partial results folder, no half-written file, no process left.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
CELL = "gevent-dev--echo"


def living_descendants(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def wait_for_samples(cell_dir: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if list(cell_dir.glob("samples-*.parquet")):
            return
        time.sleep(0.1)
    pytest.fail("the load never flushed a sample shard")


# SIGTERM goes through the same handler; SIO_INTERRUPT_BOTH=1 runs it too
# (the default keeps the suite within its time budget).
SIGNALS = [pytest.param(signal.SIGINT, True, id="SIGINT-with-report"),
           pytest.param(signal.SIGHUP, False, id="SIGHUP")] + (
    [pytest.param(signal.SIGTERM, False, id="SIGTERM")] if os.environ.get("SIO_INTERRUPT_BOTH") else [])


@pytest.mark.parametrize("signum, report", SIGNALS)
def test_interrupted_run_leaves_a_readable_partial_folder(tmp_path: Path, signum: int, report: bool) -> None:
    argv = [sys.executable, "-m", "sioharness.bench", "--targets", "gevent-dev", "--scenarios", "echo",
            "--duration", "60", "--warmup", "0", "--users", "3", "--emit-rate", "50",
            "--results", str(tmp_path), "--run-id", "r"] + ([] if report else ["--no-report"])
    proc = subprocess.Popen(["nice", "-n", "10", *argv], cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = tmp_path / "r"
    try:
        wait_for_samples(run_dir / CELL, proc, timeout=60)
        proc.send_signal(signum)  # nice execs the runner: proc is the runner itself
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            for child in living_descendants(proc.pid):
                child.kill()
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out[-3000:]
    assert living_descendants(proc.pid) == []
    assert f"{signal.Signals(signum).name}: ending the cell in flight" in out

    cell = run_dir / CELL
    leftovers = [p.name for p in run_dir.rglob(".*")]
    assert leftovers == [], f"half-written files left: {leftovers}"
    info = json.loads((cell / "run.json").read_text())
    assert info["status"] == "partial" and info["reason"] == "interrupted"
    assert info["ended_ns"] > info["started_ns"]
    assert json.loads((run_dir / "run-index.json").read_text())["complete"] is False
    for path in run_dir.rglob("*.json"):
        json.loads(path.read_text())  # every JSON file whole
    shards = sorted(cell.glob("samples-*.parquet"))
    rows = sum(pq.read_table(p).num_rows for p in shards)
    assert rows > 0
    server = pd.read_csv(cell / "server.csv")
    assert len(server) > 0 and not server[["t_ns", "cpu_user_s", "rss_bytes"]].isna().any().any()
    pd.read_csv(cell / "loadgen.csv")
    if report:
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["status"] == "partial" and summary["samples"]["total"] == rows
        assert (cell / "report.html").stat().st_size > 0


def test_a_killed_runner_takes_its_children_along(tmp_path: Path) -> None:
    """SIGKILL cannot be handled: the target and Locust end by their parent-death signal."""
    argv = [sys.executable, "-m", "sioharness.bench", "--targets", "gevent-dev", "--scenarios", "echo",
            "--duration", "60", "--warmup", "0", "--users", "3", "--emit-rate", "50",
            "--results", str(tmp_path), "--run-id", "r", "--no-report"]
    proc = subprocess.Popen(argv, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[psutil.Process] = []
    try:
        wait_for_samples(tmp_path / "r" / CELL, proc, timeout=60)
        children = living_descendants(proc.pid)
        assert len(children) >= 2, "a target and a Locust were running"
        proc.kill()
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=20)
        assert alive == [], f"left running after the runner was killed: {[p.cmdline()[:4] for p in alive]}"
    finally:
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    info = json.loads((tmp_path / "r" / CELL / "run.json").read_text())
    assert info["status"] == "running"  # nobody could finish it: the reports say so
    report = subprocess.run([sys.executable, "-m", "reports", str(tmp_path / "r" / CELL)], cwd=REPO,
                            env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert "never finished this cell" in report.stdout + report.stderr


def test_ctrl_c_while_the_reports_build_changes_nothing_more(tmp_path: Path) -> None:
    """The reports are being built when Ctrl-C comes: no traceback, the reports are whole, exit 130."""
    argv = [sys.executable, "-m", "sioharness.bench", "--targets", "gevent-dev", "--scenarios", "echo",
            "--duration", "3", "--warmup", "0", "--users", "2", "--emit-rate", "20",
            "--results", str(tmp_path), "--run-id", "r"]
    proc = subprocess.Popen(argv, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        # Signal on the line that says the reports are being built (a matplotlib import alone
        # outlasts the signal's delivery), however long the cell took.
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("bench: building reports"):
                proc.send_signal(signal.SIGINT)
                break
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out = "".join(seen) + out
    assert any(line.startswith("bench: building reports") for line in seen), out[-3000:]
    assert proc.returncode == 130 and "Traceback" not in out, out[-3000:]
    summary = json.loads((tmp_path / "r" / CELL / "summary.json").read_text())
    assert summary["samples"]["total"] > 0
    assert (tmp_path / "r" / CELL / "report.html").stat().st_size > 0
    assert [p.name for p in (tmp_path / "r").rglob(".*")] == []
