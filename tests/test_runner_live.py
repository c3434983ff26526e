"""The runner end to end against real targets and a real Locust."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from sioharness.bench import capacity
from sioharness.bench import matrix as bench
from tests.reports_fixtures.html_checks import assert_complete_cell_report

pytestmark = pytest.mark.slow


def leftover_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def cell_status(run_dir: Path, cell: str) -> dict:
    return json.loads((run_dir / cell / "run.json").read_text())


def test_tiny_profile_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["--targets", "gevent-dev,asgi-uvicorn", "--scenarios", "echo", "--duration", "3",
                       "--warmup", "1", "--users", "4", "--results", str(tmp_path), "--run-id", "tiny"])
    out = capsys.readouterr().out
    run = tmp_path / "tiny"
    assert code == 0, out
    for cell in ("gevent-dev--echo", "asgi-uvicorn--echo"):
        info = cell_status(run, cell)
        assert info["status"] == "ok" and info["mode"] in ("gevent", "asgi")
        assert info["started_ns"] < info["load_started_ns"] < info["load_ended_ns"] < info["ended_ns"]
        # The load lasts the run time asked for (a stale gevent clock once cut it short).
        assert info["load_ended_ns"] - info["load_started_ns"] >= 0.95 * 3e9
        assert list((run / cell).glob("samples-*.parquet"))
        assert (run / cell / "server.csv").read_text().count("\n") > 2
        summary = json.loads((run / cell / "summary.json").read_text())
        assert summary["latency"]["echo"]["count"] > 0
        # Every request Locust counted was recorded, and nothing more.
        assert summary["locust"] and all(row["locust_requests"] == row["recorder_count"] for row in summary["locust"])
        assert_complete_cell_report(run / cell / "report.html")
    assert {c["cell"] for c in json.loads((run / "run-index.json").read_text())["cells"]} == {
        "gevent-dev--echo", "asgi-uvicorn--echo"}
    assert (run / "compare.md").is_file() and (run / "compare.html").is_file()
    assert "asgi-uvicorn--echo" in out and "gevent-dev--echo" in out  # the ranked table
    assert leftover_children() == []


def test_target_that_cannot_start_fails_its_cell_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A gunicorn gthread worker with zero threads is refused by the target's settings.
    code = bench.main(["--targets", "threading-gunicorn,gevent-dev", "--scenarios", "echo", "--duration", "2",
                       "--warmup", "0", "--users", "2", "--results", str(tmp_path), "--run-id", "r",
                       "--target-arg=--threads=0", "--no-report"])
    captured = capsys.readouterr()
    assert code == 1
    bad = cell_status(tmp_path / "r", "threading-gunicorn--echo")
    assert bad["status"] == "failed" and "target did not start" in bad["reason"]
    assert "threads must be >= 1" in bad["reason"]
    assert cell_status(tmp_path / "r", "gevent-dev--echo")["status"] == "failed"  # same bad flag: also refused
    assert "2 of 2 cells failed" in captured.err
    assert leftover_children() == []


def kill_target_when_running(stop: threading.Event, cell_dir: Path) -> None:
    """Kill this test's target_app child once the load has flushed its first samples."""
    while not stop.is_set():
        if list(cell_dir.glob("samples-*.parquet")):
            targets = []
            for proc in psutil.Process().children(recursive=True):
                try:
                    if "target_app" in " ".join(proc.cmdline()):
                        targets.append(proc)
                except psutil.Error:
                    continue
            if targets:
                targets[0].kill()
                return
        stop.wait(0.1)


def test_target_dying_mid_run_fails_the_cell_and_keeps_samples(tmp_path: Path) -> None:
    stop = threading.Event()
    cell_dir = tmp_path / "r" / "gevent-dev--echo"
    killer = threading.Thread(target=kill_target_when_running, args=(stop, cell_dir), daemon=True)
    killer.start()
    started = time.monotonic()
    try:
        code = bench.main(["--targets", "gevent-dev", "--scenarios", "echo", "--duration", "20", "--warmup", "0",
                           "--users", "3", "--results", str(tmp_path), "--run-id", "r"])
    finally:
        stop.set()
        killer.join(timeout=5)
    assert code == 1
    # The cell ended when its target died, long before the 20 s run and its deadline.
    assert time.monotonic() - started < 20
    info = cell_status(tmp_path / "r", "gevent-dev--echo")
    assert info["status"] == "failed"
    assert "target exited with code -9 during the run" in info["reason"]
    shards = list(cell_dir.glob("samples-*.parquet"))
    assert shards, "samples measured so far are kept"
    # The report is built from the kept samples and says why the cell failed.
    kept = sum(pq.read_metadata(p).num_rows for p in shards)
    summary = json.loads((cell_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["samples"]["total"] == kept > 0
    assert summary["latency"]["echo"]["ok"] > 0
    assert "target exited with code -9" in (cell_dir / "report.md").read_text()
    assert leftover_children() == []


def test_capacity_search_finds_a_tiny_thread_pool_knee(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # gthread with 4 threads holds 4 websocket clients; the 5th waits for a thread.
    code = capacity.main(["--targets", "threading-gunicorn", "--target-arg=--threads=4", "--scenario", "echo",
                          "--start", "2", "--factor", "1", "--increment", "2", "--max-steps", "5",
                          "--step-duration", "3", "--warmup", "0.5", "--slo-p99-ms", "500",
                          "--results", str(tmp_path), "--run-id", "cap"])
    assert code == 0
    result = json.loads((tmp_path / "cap" / "capacity.json").read_text())["targets"]["threading-gunicorn"]
    assert result["max_users_at_slo"] == 4
    assert [s["users"] for s in result["steps"]] == [2, 4, 6]
    assert "only 4 of 6 users connected" in result["steps"][-1]["why"]
    assert "| threading-gunicorn | 4 |" in (tmp_path / "cap" / "capacity.md").read_text()
    assert leftover_children() == []


def test_capacity_search_names_the_targets_connection_limit(tmp_path: Path) -> None:
    # The target admits 6 sessions: the step of 8 users is refused by name.
    code = capacity.main(["--targets", "gevent-dev", "--target-arg=--max-connections=6", "--scenario", "echo",
                          "--start", "4", "--factor", "1", "--increment", "4", "--max-steps", "3",
                          "--step-duration", "3", "--warmup", "0.5", "--slo-p99-ms", "500",
                          "--results", str(tmp_path), "--run-id", "cap"])
    assert code == 0
    result = json.loads((tmp_path / "cap" / "capacity.json").read_text())["targets"]["gevent-dev"]
    assert result["max_users_at_slo"] == 4
    assert "target at its connection limit" in result["steps"][-1]["why"], result["steps"][-1]
    assert leftover_children() == []
