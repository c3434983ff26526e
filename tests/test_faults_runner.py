"""Faults mid-run, through the real runner (``python -m sioharness.bench`` as a subprocess).

Each test starts a short cell, waits until the load has flushed its first
samples, kills one piece (a target instance, Redis, a Locust worker) with
SIGKILL, and checks that the run still ends by itself, names what was lost,
keeps and reports the samples, and leaves no process behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import psutil
import pytest

from reports.build import build_cell_report
from sioharness.bench.redis_server import redis_binary

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# Locust start-up, the run, its stop timeout, Redis and targets, reports: a
# generous bound that only a hang would pass.
BENCH_TIMEOUT_S = 120
needs_redis = pytest.mark.skipif(redis_binary() is None,
                                 reason="redis-server is not installed (apt-get install redis-server)")


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


@dataclass
class Killer:
    """Kills the process ``pick`` chooses among the runner's descendants, once samples exist."""

    runner_pid: int
    cell_dir: Path
    pick: Callable[[list[psutil.Process]], psutil.Process | None]
    #: distinct recording processes whose shards must exist before the kill
    writers: int = 1
    killed_ns: int | None = None
    victim: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    #: SIGKILL, or SIGSTOP for a process that hangs
    sig: signal.Signals = signal.SIGKILL

    def run(self) -> None:
        while not self.stop.is_set():
            shards = self.cell_dir.glob("samples-*.parquet")
            if len({shard.name.rsplit("-", 1)[0] for shard in shards}) >= self.writers:
                victim = self.pick(descendants(self.runner_pid))
                if victim is not None:
                    self.victim = cmdline(victim)
                    self.killed_ns = time.time_ns()
                    victim.send_signal(self.sig)
                    return
            self.stop.wait(0.1)


@dataclass
class BenchRun:
    returncode: int
    out: str
    run_dir: Path
    cell: str
    killer: Killer

    @property
    def cell_dir(self) -> Path:
        return self.run_dir / self.cell

    def info(self) -> dict:
        return json.loads((self.cell_dir / "run.json").read_text())

    def summary(self) -> dict:
        return json.loads((self.cell_dir / "summary.json").read_text())

    def samples(self) -> pd.DataFrame:
        return pd.concat([pd.read_parquet(p) for p in sorted(self.cell_dir.glob("samples-*.parquet"))])

    def user_targets(self) -> dict[tuple[str, int], str]:
        """(worker, user) -> the URL that user loaded, from targets-*.json."""
        mapping = {}
        for path in self.cell_dir.glob("targets-*.json"):
            doc = json.loads(path.read_text())
            mapping |= {(doc["worker"], int(user)): url for user, url in doc["users"].items()}
        return mapping


def run_bench(tmp_path: Path, target: str, scenario: str, pick: Callable[[list[psutil.Process]], psutil.Process | None],
              *args: str, users: int = 6, duration: float = 5, writers: int = 1,
              sig: signal.Signals = signal.SIGKILL) -> BenchRun:
    run_dir = tmp_path / "r"
    cell = f"{target}--{scenario}"
    argv = ["nice", "-n", "10", sys.executable, "-m", "sioharness.bench", "--profile", "scaleout",
            "--targets", target, "--scenarios", scenario, "--users", str(users), "--duration", f"{duration:g}",
            "--warmup", "0", "--results", str(tmp_path), "--run-id", "r", "--no-report", *args]
    proc = subprocess.Popen(argv, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    killer = Killer(proc.pid, run_dir / cell, pick, writers=writers, sig=sig)
    thread = threading.Thread(target=killer.run, daemon=True)
    thread.start()
    try:
        out, _ = proc.communicate(timeout=BENCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        for child in descendants(proc.pid):
            child.kill()
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the runner did not end within {BENCH_TIMEOUT_S} s (a hang):\n{out[-3000:]}")
    finally:
        killer.stop.set()
        thread.join(timeout=5)
    assert descendants(proc.pid) == [] and not [p for p in psutil.Process().children(recursive=True)
                                               if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        "processes left behind"
    assert killer.killed_ns is not None, f"nothing was killed; the runner said:\n{out[-3000:]}"
    # The report from the kept samples (summary.json, report.md; no HTML, to stay quick).
    build_cell_report(run_dir / cell, html=False)
    return BenchRun(proc.returncode, out, run_dir, cell, killer)


def second_instance(procs: list[psutil.Process]) -> psutil.Process | None:
    targets = sorted((p for p in procs if "target_app" in cmdline(p)), key=lambda p: p.create_time())
    return targets[1] if len(targets) == 2 else None


def port_of(cmd: str) -> str:
    parts = cmd.split()
    return parts[parts.index("--port") + 1]


@needs_redis
def test_killing_one_of_two_instances_leaves_the_other_serving(tmp_path: Path) -> None:
    run = run_bench(tmp_path, "gevent-dev-x2", "echo", second_instance, "--emit-rate", "20")
    lost = f"127.0.0.1:{port_of(run.killer.victim)}"
    info = run.info()
    assert run.returncode == 1, run.out[-3000:]
    assert info["status"] == "failed"
    assert f"instance 2/2 (http://{lost}) exited with code -9 during the run" in info["reason"]
    assert "the other instances kept serving" in info["reason"]
    assert [row["exit_code"] for row in info["instances"]] == [None, -9]

    samples, users = run.samples(), run.user_targets()
    samples["url"] = [users.get((w, u)) for w, u in zip(samples.worker, samples.user, strict=True)]
    survivor = info["instances"][0]["url"]
    after = samples[samples.t_ns > run.killer.killed_ns + 1_000_000_000]  # past the moment of the kill
    kept = after[(after.url == survivor) & (after.kind == "ack")]
    assert len(kept) > 10 and kept.ok.all(), "clients of the surviving instance kept echoing"
    failed = samples[~samples.ok]
    assert len(failed) > 0 and failed.error.str.endswith(f"[instance 2/2 {lost}]").all(), \
        failed.error.value_counts().head().to_string()
    assert set(failed.url) == {f"http://{lost}"}

    # The report is built from the kept samples and shows where the failures were.
    summary = run.summary()
    assert summary["status"] == "failed" and summary["samples"]["total"] == len(samples)
    assert any(f"[instance 2/2 {lost}]" in error for error in summary["errors"])
    assert f"instance 2/2 {lost}" in (run.cell_dir / "report.md").read_text()
    assert "==> instance 1/2" in (run.cell_dir / "target.log").read_text()


@needs_redis
def test_killing_redis_mid_run_refuses_broadcasts_with_a_clear_error(tmp_path: Path) -> None:
    def redis(procs: list[psutil.Process]) -> psutil.Process | None:
        return next((p for p in procs if "redis-server" in cmdline(p)), None)

    started = time.monotonic()
    run = run_bench(tmp_path, "gevent-dev-x2", "broadcast", redis, users=8, duration=4)
    assert time.monotonic() - started < BENCH_TIMEOUT_S
    info = run.info()
    assert run.returncode == 1, run.out[-3000:]
    assert info["status"] == "failed"
    assert "message queue redis-server" in info["reason"] and "exited with code -9" in info["reason"]
    assert info["message_queue"]["exit_code"] == -9

    samples = run.samples()
    broadcasts = samples[(samples.kind == "ack") & (samples.name == "broadcast")]
    before = broadcasts[broadcasts.t_ns < run.killer.killed_ns]
    refused = broadcasts[~broadcasts.ok]
    assert before.ok.any(), "broadcasts went through while Redis lived"
    assert len(refused) > 0 and refused.error.str.contains("message queue unavailable, nothing delivered").all()
    # Nothing was delivered for a refused broadcast: no push carries its timestamp.
    pushes = samples[(samples.kind == "push") & samples.t_ns.isin(refused.t_ns)]
    assert pushes.empty
    summary = run.summary()
    assert any("message queue unavailable" in error for error in summary["errors"])
    assert "publish failed" in (run.cell_dir / "target.log").read_text()


def locust_master_and_workers(procs: list[psutil.Process]) -> tuple[psutil.Process | None, list[psutil.Process]]:
    # Locust itself, not any process whose arguments name a path with "locust" in it
    # (the target's --gc-log lies in the test's folder, test_losing_a_locust_worker...).
    locusts = [p for p in procs if " -m locust " in f" {cmdline(p)} "]
    masters = [p for p in locusts if not any(q.pid == p.ppid() for q in locusts)]
    master = masters[0] if masters else None
    return master, [p for p in locusts if master is not None and p.ppid() == master.pid]


def living(procs: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(cmdline(proc))
    return alive


def test_a_killed_locust_master_takes_its_workers_along(tmp_path: Path) -> None:
    """Orphaned workers would write shards into a cell already reported; they end with the cell."""
    workers_seen: list[psutil.Process] = []

    def master(procs: list[psutil.Process]) -> psutil.Process | None:
        leader, workers = locust_master_and_workers(procs)
        if leader is None or len(workers) != 2:
            return None
        workers_seen.extend(workers)
        return leader

    run = run_bench(tmp_path, "gevent-dev", "echo", master, "--processes", "2", "--emit-rate", "20", users=4,
                    writers=2)
    assert run.info()["status"] == "failed", run.out[-3000:]
    assert len(workers_seen) == 2 and living(workers_seen) == [], "workers outlived the cell"


def test_a_stopped_locust_worker_is_ended_with_the_cell(tmp_path: Path) -> None:
    """A worker that hangs (SIGSTOP) holds its memory forever unless the cell ends it."""
    stopped: list[psutil.Process] = []

    def worker(procs: list[psutil.Process]) -> psutil.Process | None:
        _, workers = locust_master_and_workers(procs)
        if len(workers) != 2:
            return None
        stopped.append(workers[-1])
        return workers[-1]

    run_bench(tmp_path, "gevent-dev", "echo", worker, "--processes", "2", "--emit-rate", "20", users=4, writers=2,
              sig=signal.SIGSTOP)
    assert len(stopped) == 1 and living(stopped) == [], "the stopped worker outlived the cell"


def test_losing_a_locust_worker_still_ends_and_reports(tmp_path: Path) -> None:
    def worker(procs: list[psutil.Process]) -> psutil.Process | None:
        _, workers = locust_master_and_workers(procs)
        return workers[-1] if len(workers) == 2 else None

    # Killed once both workers have flushed, so the lost one's samples exist to be kept.
    run = run_bench(tmp_path, "gevent-dev", "echo", worker, "--processes", "2", "--emit-rate", "20", users=4,
                    writers=2)
    info = run.info()
    assert run.returncode == 1, run.out[-3000:]
    assert info["status"] == "failed"
    assert "1 of 2 Locust worker processes lost during the run" in info["reason"]
    assert len(info["locust_workers_lost"]) == 1
    samples = run.samples()
    assert samples.worker.nunique() == 2, "the lost worker's flushed samples are kept"
    survivor = samples[samples.t_ns > run.killer.killed_ns + 1_000_000_000]
    assert survivor.worker.nunique() == 1 and survivor.ok.all(), "the other worker ran on"
    summary = run.summary()
    assert summary["samples"]["total"] == len(samples) and summary["latency"]["echo"]["ok"] > 0
