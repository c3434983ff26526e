"""The runner end to end against real targets and a real Locust."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil
import pytest

from scripts import bench, capacity
from tests.reports_fixtures.html_checks import assert_complete_cell_report

pytestmark = pytest.mark.slow


def leftover_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


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


def kill_target_when_running(stop: threading.Event) -> None:
    """Kill this test's target_app child once Locust has been loading it for 2.5 s."""
    while not stop.is_set():
        children = {}
        for proc in psutil.Process().children(recursive=True):
            try:
                children[proc] = " ".join(proc.cmdline())
            except psutil.Error:
                continue
        locust = [p for p, cmd in children.items() if "locust" in cmd and time.time() - p.create_time() > 2.5]
        targets = [p for p, cmd in children.items() if "target_app" in cmd]
        if locust and targets:
            targets[0].kill()
            return
        stop.wait(0.2)


def test_target_dying_mid_run_fails_the_cell_and_keeps_samples(tmp_path: Path) -> None:
    stop = threading.Event()
    killer = threading.Thread(target=kill_target_when_running, args=(stop,), daemon=True)
    killer.start()
    try:
        code = bench.main(["--targets", "gevent-dev", "--scenarios", "echo", "--duration", "8", "--warmup", "0",
                           "--users", "3", "--results", str(tmp_path), "--run-id", "r", "--no-report"])
    finally:
        stop.set()
        killer.join(timeout=5)
    assert code == 1
    info = cell_status(tmp_path / "r", "gevent-dev--echo")
    assert info["status"] == "failed"
    assert "target exited with code -9 during the run" in info["reason"]
    assert list((tmp_path / "r" / "gevent-dev--echo").glob("samples-*.parquet")), "samples measured so far are kept"
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
