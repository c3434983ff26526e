"""Samples that travel to the Locust master (``--samples-via-master``), for real.

A Locust master and two worker processes, each started in its own temporary
working folder with its own results folder (no path shared), load a
reference target. The master's folder must hold every sample: as many as
Locust counted across the workers, and a report over that folder alone
(``build_cell_report``) with the same counts, nothing lost and, for
broadcasts, fan-out loss 0. The workers' own folders hold no shard: every
one came through the master.

Fault: one worker killed (SIGKILL, by its PID) mid-run. The other's samples
all arrive, the run still ends, and the report names the killed worker and
its unflushed interval.

Separate hosts (root only, else skipped with the reason): the master, each
worker and the target each in its own network namespace with its own
address, joined by veth pairs to a bridge (``tests/netns.py``); the master
may load the target's address only (``--own-hosts``); every namespace and
link is removed at the end.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reports.build import build_cell_report
from sioharness.core.schema import RELAY_FILE_GLOB, SHARD_GLOB
from target_app.process import TargetProcess, free_port, launch_server, target_argv

from .conftest import running_target
from .netns import NetnsLab, NetnsUnavailable, net_namespace

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "locustfile.py"
RUN_TIME = 6
STOP_TIMEOUT = 3
# Start-up (imports, workers connecting) and shutdown on a busy two-core machine.
MARGIN = 60


@pytest.fixture(scope="module")
def target(module_tmp: Path) -> Iterator[TargetProcess]:
    yield from running_target("gevent", "dev", module_tmp)


@dataclass
class Cluster:
    """A master and its workers, each a process with its own folder; stopped by PID at the end."""

    root: Path
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def cell(self) -> Path:
        return self.root / "master" / "results" / "cell"

    def start(self, name: str, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        home = self.folder(name)
        env = os.environ | {"PYTHONPATH": str(REPO), "TMPDIR": str(home)}
        for inherited in ("LOADTEST_RESULTS_DIR", "LOADTEST_I_OWN_THIS_HOST", "LOADTEST_OWN_HOSTS"):
            env.pop(inherited, None)
        with open(home / "locust.log", "wb") as log:
            proc = subprocess.Popen([*prefix, "nice", "-n", "10", sys.executable, "-m", "locust", "-f",
                                     str(LOCUSTFILE), "--loglevel", "INFO", *args],
                                    cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_master(self, target: TargetProcess, user_class: str, *args: str, workers: int = 2,
                     run_time: int = RUN_TIME, bind: str = "127.0.0.1",
                     prefix: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        cell = self.cell
        return self.start(
            "master", "--master", "--master-bind-host", bind, "--master-bind-port", str(self.port),
            "--expect-workers", str(workers), "--headless", "-u", "20", "-r", "20", "-t", f"{run_time}s",
            "--stop-timeout", str(STOP_TIMEOUT), "--host", target.url, "--results-dir", str(cell),
            "--json-file", str(cell / "locust_stats"), "--csv", str(cell / "locust"),
            "--target-pid", str(target.pid), "--samples-via-master", *args, user_class, prefix=prefix)

    def start_worker(self, name: str, master: str = "127.0.0.1", prefix: tuple[str, ...] = (),
                     results: bool = True) -> subprocess.Popen[bytes]:
        """A worker with a results folder of its own, or none (then a temporary folder in its home)."""
        folder = ["--results-dir", str(self.folder(name) / "results")] if results else []
        return self.start(name, "--worker", "--master-host", master, "--master-port", str(self.port), *folder,
                          prefix=prefix)

    def worker_folder(self, name: str) -> Path:
        """Where a worker kept what it could not send: its --results-dir, or its temporary folder."""
        own = self.root / name / "results"
        return own if own.is_dir() else next((self.root / name).glob("loadtests-samples-*"))

    def log(self, name: str) -> str:
        return (self.root / name / "locust.log").read_text(errors="replace")[-4000:]

    def wait(self, name: str, timeout: float) -> int:
        try:
            return self.procs[name].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} did not exit within {timeout:.0f} s:\n{self.log(name)}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    group = Cluster(tmp_path)
    try:
        yield group
    finally:
        group.stop()


def shard_rows(folder: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in folder.glob(SHARD_GLOB))


def locust_requests(cell: Path) -> int:
    return sum(entry["num_requests"] for entry in json.loads((cell / "locust_stats.json").read_text()))


def relayed(cell: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(cell.glob(RELAY_FILE_GLOB))]


def run_to_end(cluster: Cluster, target: TargetProcess, user_class: str, *args: str) -> None:
    cluster.start_master(target, user_class, *args)
    cluster.start_worker("worker-a")
    cluster.start_worker("worker-b", results=False)  # records only because the master asks for the samples
    assert cluster.wait("master", RUN_TIME + STOP_TIMEOUT + MARGIN) == 0, cluster.log("master")
    for worker in ("worker-a", "worker-b"):
        assert cluster.wait(worker, 30) == 0, cluster.log(worker)


@pytest.mark.parametrize("user_class, args", [("EchoUser", ("--emit-rate", "20")),
                                              ("BroadcastUser", ("--emit-rate", "10"))])
def test_every_sample_reaches_the_master_folder(cluster: Cluster, target: TargetProcess, user_class: str,
                                                args: tuple[str, ...]) -> None:
    run_to_end(cluster, target, user_class, *args)
    check_every_sample_arrived(cluster, user_class)


def check_every_sample_arrived(cluster: Cluster, user_class: str) -> None:
    cell = cluster.cell
    requests = locust_requests(cell)
    assert requests > 200
    assert shard_rows(cell) == requests, "one sample per Locust request, all in the master's folder"
    for worker in ("worker-a", "worker-b"):  # nothing was kept on a worker's own disk
        folder = cluster.worker_folder(worker)
        assert not list(folder.glob(SHARD_GLOB)), cluster.log(worker)
        account = json.loads(next(folder.glob("recorder-*.json")).read_text())
        assert account["taken"] == account["written"] > 0 and account["via_master"]["kept_rows"] == 0
    accounts = relayed(cell)
    assert len(accounts) == 2 and all(a["final"] and a["lost_at_ns"] is None for a in accounts)
    assert sum(a["rows"] for a in accounts) == requests
    assert {a["worker"].rsplit(":", 1)[1] for a in accounts} == {str(cluster.procs[w].pid)
                                                               for w in ("worker-a", "worker-b")}
    # bytes on the wire per sample: compressed Arrow, well under a Parquet-free naive encoding
    assert 5 < sum(a["bytes"] for a in accounts) / requests < 80

    summary = build_cell_report(cell, html=False).summary
    assert summary["samples_lost"] == [], summary["problems"]
    assert summary["samples"]["total"] == requests
    assert all(row["gap"] == 0 for row in summary["locust"]), summary["locust"]
    assert summary["status"] == "ok", summary["problems"]
    assert any("through the Locust master from 2 workers" in note for note in summary["notes"])
    if user_class == "BroadcastUser":
        fanout = summary["fanout"]
        assert fanout["expected"] > 0 and fanout["lost"] == 0, fanout


def test_a_killed_worker_is_named_and_the_other_arrives(cluster: Cluster, target: TargetProcess) -> None:
    run_time = 10
    cluster.start_master(target, "EchoUser", "--emit-rate", "20", run_time=run_time)
    survivor = cluster.start_worker("worker-a")
    victim = cluster.start_worker("worker-b")
    cell = cluster.cell
    deadline = time.monotonic() + MARGIN
    # Kill once both workers' first shards are in the master's folder.
    while time.monotonic() < deadline:
        tags = {p.name.rsplit("-", 1)[0] for p in cell.glob(SHARD_GLOB)} if cell.is_dir() else set()
        if len(tags) == 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no shards from both workers:\n{cluster.log('master')}")
    os.kill(victim.pid, signal.SIGKILL)
    cluster.wait("master", run_time + STOP_TIMEOUT + MARGIN)
    assert cluster.wait("worker-a", 30) == 0, cluster.log("worker-a")

    accounts = {a["worker"].rsplit(":", 1)[1]: a for a in relayed(cell)}
    alive, dead = accounts[str(survivor.pid)], accounts[str(victim.pid)]
    assert alive["final"] and not dead["final"]
    assert dead["lost_at_ns"] is not None and dead["rows"] > 0
    # every sample the survivor took is in the master's folder
    assert alive["rows"] == alive["taken"] > 0
    on_disk = {str(p.name) for p in cell.glob(SHARD_GLOB)}
    assert sum(1 for name in on_disk if name.startswith(f"samples-{alive['tag']}-")) == alive["shards"]

    summary = build_cell_report(cell, html=False).summary
    named = [p for p in summary["samples_lost"] if f":{victim.pid}" in p]
    assert named and "lost without its final flush" in named[0] and "unflushed interval" in named[0], \
        summary["problems"]
    assert not any(f":{survivor.pid}" in p for p in summary["problems"])
    assert summary["status"] == "failed"


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    try:
        made = NetnsLab().__enter__()
    except NetnsUnavailable as exc:
        pytest.skip(f"separate hosts need network namespaces: {exc}")
    try:
        yield made
    finally:
        made.close()  # every namespace and link the test made, even on failure


def test_master_workers_and_target_on_separate_network_namespaces(cluster: Cluster, lab: NetnsLab,
                                                                  tmp_path: Path) -> None:
    """Each host its own namespace and address; the guard opened for the target's address only."""
    ns_target, target_address = lab.host("t")
    ns_master, master_address = lab.host("m")
    ns_a, _ = lab.host("wa")
    ns_b, _ = lab.host("wb")
    argv = [*lab.prefix(ns_target), *target_argv("gevent", "dev", target_address, 5000)]
    target = launch_server(argv, mode="gevent", server="dev", host=target_address, port=5000,
                           log_path=tmp_path / "target.log")
    try:
        cluster.start_master(target, "BroadcastUser", "--emit-rate", "10", "--own-hosts", target_address,
                             bind=master_address, prefix=tuple(lab.prefix(ns_master)))
        for name, ns in (("worker-a", ns_a), ("worker-b", ns_b)):
            cluster.start_worker(name, master=master_address, prefix=tuple(lab.prefix(ns)))
        deadline = time.monotonic() + MARGIN
        while not (cluster.cell.is_dir() and len(list(cluster.cell.glob(RELAY_FILE_GLOB))) == 2):
            if time.monotonic() > deadline or cluster.procs["master"].poll() is not None:
                pytest.fail(f"the workers never reached the master:\n{cluster.log('master')}")
            time.sleep(0.2)
        pids = [target.pid] + [cluster.procs[name].pid for name in ("master", "worker-a", "worker-b")]
        spaces = {net_namespace(pid) for pid in pids}
        assert len(spaces) == 4 and net_namespace(os.getpid()) not in spaces, "four hosts, none on ours"
        assert cluster.wait("master", RUN_TIME + STOP_TIMEOUT + MARGIN) == 0, cluster.log("master")
        for worker in ("worker-a", "worker-b"):
            assert cluster.wait(worker, 30) == 0, cluster.log(worker)
    finally:
        target.stop()
    check_every_sample_arrived(cluster, "BroadcastUser")
