"""Run one cell: one target, one scenario, one load shape, into one results folder.

The target and Locust run as subprocesses pinned to different cores where
the machine has two or more. Both are sampled (``server.csv``,
``loadgen.csv``). Every cell has a deadline: a Locust that has not ended by
then is ended, and the cell says so. ``run.json`` is written before the run
(status ``running``) and rewritten at the end, atomically each time.

The target may be several instances sharing a private Redis
(``gevent-dev-x3``, :mod:`sioharness.bench.target_group`): users spread over them
(``--target-urls``), ``server.csv`` sums every instance and Redis, and an
instance or Redis that dies mid-run fails the cell with the reason while the
rest keep serving until the run's end. With ``processes`` > 1 Locust runs
that many worker processes; each writes its own sample shards.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil

from sioharness.bench.cell_status import (
    CellEnding,
    LiveFigures,
    cell_status,
    final_figures,
    read_live_figures,
    read_load_bounds,
    read_lost_workers,
)
from sioharness.bench.locust_command import STOP_TIMEOUT_S, headless_args, local_master_args
from sioharness.bench.own_app import CommandTarget
from sioharness.bench.profile import Scenario, Target
from sioharness.bench.target_group import (
    ExternalTarget,
    TargetGroup,
    TargetStartError,
    command_group,
    external_group,
    launch_group,
)
from sioharness.core.cells import CellName
from sioharness.core.children import dies_with_parent
from sioharness.core.paths import HARNESS_LOCUSTFILE, IMPORT_ROOT
from sioharness.core.run_record import RUNNING, RecordedLoad, RunRecord
from sioharness.core.runinfo import machine, versions
from sioharness.core.sampler import TreeSampler, stats_connected
from sioharness.core.stats_client import probe_stats
from target_app.gc_setting import GcSetting

# Beyond duration + stop timeout: Locust start-up, the recorder's last flush.
DEADLINE_GRACE_S = 25.0


@dataclass
class CellResult:
    cell: str
    path: Path
    status: str  # ok, failed, partial (interrupted)
    reason: str | None = None
    requests: int | None = None
    failures: int | None = None
    elapsed_s: float = 0.0

    @property
    def measured_nothing(self) -> bool:
        """Locust counted requests and every one failed: no connect, or no call, was answered."""
        return bool(self.requests) and self.failures == self.requests


@dataclass
class CellPlan:
    run_id: str
    #: what to start, or servers already running (``--target-url``)
    target: Target
    scenario: Scenario
    run_dir: Path
    target_args: Sequence[str] = ()
    locust_args: Sequence[str] = ()
    pin_cores: bool = True
    extra_run_info: dict[str, Any] = field(default_factory=dict)
    #: folder name; default <mode>-<server>--<scenario>
    name: str | None = None
    #: the user owns the (non-loopback) hosts of an external target
    i_own_this_host: bool = False
    #: the reference target's ``--gc`` setting; any other names the cell's variant (``--gc-freeze``)
    gc: str = "default"

    @property
    def cell(self) -> str:
        return self.name or str(CellName(self.target.label, self.scenario.name, GcSetting.parse(self.gc).variant))

    @property
    def cell_dir(self) -> Path:
        return self.run_dir / self.cell

    @property
    def deadline_s(self) -> float:
        return self.scenario.load.duration_s + STOP_TIMEOUT_S + DEADLINE_GRACE_S


def core_split(instances: int = 1, processes: int = 1) -> tuple[list[int] | None, list[int] | None]:
    """(target cores, load-generator cores), disjoint, when pinning is possible.

    The targets get one core per instance and Locust one per process, as far
    as the machine goes: two cores give one each, whatever the counts.
    """
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(cores) < 2 or shutil.which("taskset") is None:
        return None, None
    want_target, want_loadgen = max(1, instances), max(1, processes)
    if want_target + want_loadgen <= len(cores):
        return cores[:want_target], cores[want_target:want_target + want_loadgen]
    # Too few cores: share them in proportion, at least one each.
    split = min(len(cores) - 1, max(1, round(len(cores) * want_target / (want_target + want_loadgen))))
    return cores[:split], cores[split:]


def locust_argv(plan: CellPlan, url: str | Sequence[str]) -> list[str]:
    """The headless Locust command; several URLs spread the users over them."""
    load = plan.scenario.load
    urls = [url] if isinstance(url, str) else list(url)
    url = urls[0]
    locustfile = plan.scenario.locustfile or HARNESS_LOCUSTFILE
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--host", url,
            *headless_args(load, results_dir=str(plan.cell_dir))]
    if len(urls) > 1:
        argv += ["--target-urls", ",".join(urls)]
    if load.processes > 1:
        argv += local_master_args(load.processes)
    if plan.i_own_this_host:
        argv.append("--i-own-this-host")
    return argv + list(plan.locust_args) + [plan.scenario.user_class]


def target_event_counts(urls: Sequence[str]) -> dict[str, int] | None:
    """Contract events handled, summed over the targets' ``/stats``; None when one cannot say."""
    totals: dict[str, int] = {}
    for url in urls:
        events = (probe_stats(url, timeout=3.0) or {}).get("events")
        if not isinstance(events, dict):
            return None
        for name, count in events.items():
            if isinstance(count, int) and name not in ("unknown", "handler_error"):
                totals[str(name)] = totals.get(str(name), 0) + count
    return totals


def _run_record(plan: CellPlan, *, status: str, reason: str | None, started_ns: int, ended_ns: int | None,
                command: list[str], target_url: str | None, extra: dict[str, Any]) -> RunRecord:
    load = plan.scenario.load
    record = RunRecord(
        run_id=plan.run_id, cell=plan.cell, status=status, reason=reason,
        mode=plan.target.mode, server=plan.target.server, scenario=plan.scenario.name,
        load=RecordedLoad.of(load),
        command=command, target_url=target_url, versions=versions(), machine=machine(),
        started_ns=started_ns, ended_ns=ended_ns,
    )
    # Later facts win: what the target reported (mode, server) and Locust's load bounds.
    return record.updated(plan.extra_run_info | extra)


def _group_members(pgid: int) -> list[psutil.Process]:
    """The living (not zombie) processes of process group ``pgid``."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _end_process_group(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process left in the group this module started (Locust and its workers).

    The group is signalled whether or not its leader is still there: Locust's
    worker processes outlive a master that was killed, and would go on
    writing shards into a cell already reported. A stopped worker is
    continued, so that it can act on the SIGTERM.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None and not _group_members(process.pid):
            return  # all ended by themselves; the group's id may not be ours any more
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
            if sig == signal.SIGTERM:
                os.killpg(process.pid, signal.SIGCONT)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)  # reap the leader
        while _group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _group_members(process.pid):
            return


def remove_partial_files(cell_dir: Path) -> list[str]:
    """Delete temporary files a killed writer left (``.name.tmp``); every kept file is whole."""
    removed = []
    for leftover in cell_dir.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed.append(leftover.name)
    return sorted(removed)


def _start_group(plan: CellPlan, cores: list[int] | None) -> TargetGroup:
    if isinstance(plan.target, ExternalTarget):
        return external_group(plan.target.urls, extra_pids=plan.target.pids)
    if isinstance(plan.target, CommandTarget):
        return command_group(plan.target, plan.cell_dir, cpu_affinity=cores)
    gc_args = [] if plan.gc == "default" else ["--gc", plan.gc]
    return launch_group(plan.target, plan.cell_dir, extra_args=[*plan.target_args, *gc_args], cpu_affinity=cores)


def _fault_reason(group: TargetGroup) -> str:
    return "; ".join(f.reason for f in group.faults)


def run_cell(plan: CellPlan, *, on_progress: Callable[[float, LiveFigures | None], None] | None = None,
             interrupted: threading.Event | None = None) -> CellResult:
    """Run the cell; never raises for a failure of the target or Locust."""
    cell_dir = plan.cell_dir
    cell_dir.mkdir(parents=True, exist_ok=True)
    interrupted = interrupted or threading.Event()
    load = plan.scenario.load
    target_cores, loadgen_cores = (core_split(plan.target.instances, load.processes) if plan.pin_cores
                                   else (None, None))
    if isinstance(plan.target, ExternalTarget):
        target_cores = None  # not ours to pin
    started_ns = time.time_ns()
    t0 = time.monotonic()
    command: list[str] = []
    extra: dict[str, Any] = {"pinned_cores": {"target": target_cores, "loadgen": loadgen_cores}}
    if not isinstance(plan.target, (ExternalTarget, CommandTarget)):
        extra["gc"] = str(GcSetting.parse(plan.gc))  # the reference target's collector setting

    def finish(status: str, reason: str | None, target_url: str | None = None,
               live: LiveFigures | None = None) -> CellResult:
        if removed := remove_partial_files(cell_dir):
            extra["removed_partial_files"] = removed
        record = _run_record(plan, status=status, reason=reason, started_ns=started_ns, ended_ns=time.time_ns(),
                             command=command, target_url=target_url, extra=extra)
        try:
            record.write(cell_dir)
        except OSError as exc:  # a full disk: the cell fails, the run goes on and says so
            status, reason = "failed", f"cannot write {cell_dir / 'run.json'}: {exc.strerror or exc}"
            print(f"bench: {reason}", file=sys.stderr)
        return CellResult(plan.cell, cell_dir, status, reason,
                          live.requests if live else None, live.failures if live else None,
                          time.monotonic() - t0)

    try:
        _run_record(plan, status=RUNNING, reason=None, started_ns=started_ns, ended_ns=None, command=command,
                    target_url=None, extra=extra).write(cell_dir)
    except OSError as exc:
        return finish("failed", f"cannot write {cell_dir / 'run.json'}: {exc.strerror or exc}")
    try:
        group = _start_group(plan, target_cores)
    except TargetStartError as exc:
        return finish("failed", f"target did not start: {exc}")
    extra |= {"mode": group.spec.mode, "server": group.spec.server, "target_urls": group.urls}

    server_sampler = (TreeSampler(group.pids, cell_dir / "server.csv", connected=stats_connected(group.urls)).start()
                      if group.pids else None)
    locust: subprocess.Popen | None = None
    loadgen_sampler: TreeSampler | None = None
    status, reason, live = "ok", None, None
    try:
        command = locust_argv(plan, group.urls)
        argv = (["taskset", "--cpu-list", ",".join(map(str, loadgen_cores))] if loadgen_cores else []) + command
        env = os.environ | {"PYTHONPATH": str(IMPORT_ROOT)}
        with open(cell_dir / "locust.log", "ab") as log:
            locust = subprocess.Popen(dies_with_parent(argv), cwd=IMPORT_ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        loadgen_sampler = TreeSampler(locust.pid, cell_dir / "loadgen.csv").start()
        status, reason = _watch(plan, group, locust, t0, interrupted, on_progress)
    finally:
        if locust is not None:
            _end_process_group(locust)
        if loadgen_sampler:
            loadgen_sampler.stop()
        if server_sampler:
            server_sampler.stop()
        group.check()  # a death in the run's last moments still counts
        extra |= {"instances": group.describe(), "message_queue": group.describe_queue(),
                  "faults": [f.reason for f in group.faults]}
        if group.instances and not isinstance(plan.target, CommandTarget):
            # The events the targets this cell started handled (their /stats): the reports hold the
            # recorder's samples against them. A server started before the cell counted more than this run.
            extra["target_events"] = target_event_counts(group.urls)
        group.stop()
        group.merge_logs(cell_dir)
    live = final_figures(cell_dir)
    extra |= read_load_bounds(cell_dir)
    lost_workers = read_lost_workers(cell_dir)
    if lost_workers:
        extra["locust_workers_lost"] = lost_workers
    extra |= {"locust_exit_code": locust.returncode if locust else None,
              "loadgen_cpu_s": loadgen_sampler.cpu_s if loadgen_sampler else None,
              "server_cpu_s": server_sampler.cpu_s if server_sampler else None}
    ending = CellEnding(status, reason, exit_codes=[locust.returncode] if locust is not None else [],
                        target_fault=_fault_reason(group) if group.faults else None, processes=load.processes,
                        lost_workers=lost_workers)
    status, reason = cell_status(cell_dir, ending, live)
    return finish(status, reason, group.url, live)


def _watch(plan: CellPlan, group: TargetGroup, locust: subprocess.Popen, t0: float,
           interrupted: threading.Event,
           on_progress: Callable[[float, LiveFigures | None], None] | None) -> tuple[str, str | None]:
    """Wait for Locust to end; end it at the deadline, on interrupt, or when no instance is left.

    An instance or the message queue dying while others still serve does not
    end the run: the clients of the others keep going, and the cell fails at
    the end with what was lost.
    """
    deadline = t0 + plan.deadline_s
    stats_csv = plan.cell_dir / "locust_stats.csv"
    while locust.poll() is None:
        now = time.monotonic()
        if interrupted.is_set():
            return "partial", "interrupted"
        if now > deadline:
            return "failed", f"locust still running at the cell deadline ({plan.deadline_s:.0f} s); ended it"
        group.check()
        if group.all_down():
            return "failed", _fault_reason(group)
        if on_progress:
            on_progress(now - t0, read_live_figures(stats_csv))
        interrupted.wait(0.5)
    return "ok", None
