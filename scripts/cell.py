"""Run one cell: one target, one scenario, one load shape, into one results folder.

The target and Locust run as subprocesses pinned to different cores where
the machine has two or more. Both are sampled (``server.csv``,
``loadgen.csv``). Every cell has a deadline: a Locust that has not ended by
then is ended, and the cell says so. ``run.json`` is written before the run
(status ``running``) and rewritten at the end, atomically each time.
"""
from __future__ import annotations

import contextlib
import csv
import json
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

from loadtests.harness import LOAD_BOUNDS_FILE
from reports.summary import write_json
from target_app.process import REPO_ROOT, TargetProcess, TargetStartError, launch_target

from .profile import Scenario, TargetSpec
from .runinfo import iso, machine, versions
from .sampler import TreeSampler, stats_connected

LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
STOP_TIMEOUT_S = 5.0
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


@dataclass
class LiveFigures:
    """What the progress line shows, read from Locust's stats CSV as it runs."""

    requests: int = 0
    failures: int = 0
    rps: float = 0.0


@dataclass
class CellPlan:
    run_id: str
    target: TargetSpec
    scenario: Scenario
    run_dir: Path
    target_args: Sequence[str] = ()
    locust_args: Sequence[str] = ()
    pin_cores: bool = True
    extra_run_info: dict[str, Any] = field(default_factory=dict)
    #: folder name; default <mode>-<server>--<scenario>
    name: str | None = None

    @property
    def cell(self) -> str:
        return self.name or f"{self.target.label}--{self.scenario.name}"

    @property
    def cell_dir(self) -> Path:
        return self.run_dir / self.cell

    @property
    def deadline_s(self) -> float:
        return self.scenario.load.duration_s + STOP_TIMEOUT_S + DEADLINE_GRACE_S


def core_split() -> tuple[list[int] | None, list[int] | None]:
    """(target cores, load-generator cores): one each when pinning is possible."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(cores) < 2 or shutil.which("taskset") is None:
        return None, None
    return [cores[0]], [cores[1]]


def locust_argv(plan: CellPlan, url: str) -> list[str]:
    load = plan.scenario.load
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(load.users), "--spawn-rate", str(load.spawn_rate),
        "--run-time", f"{load.duration_s:g}s", "--stop-timeout", f"{STOP_TIMEOUT_S:g}",
        "--host", url, "--csv", str(plan.cell_dir / "locust"), "--only-summary",
        # Final counts: the CSV is rewritten every second and misses the last one.
        "--json-file", str(plan.cell_dir / "locust_stats"),
        "--loglevel", "WARNING",
        "--results-dir", str(plan.cell_dir),
        "--payload-bytes", str(load.payload_bytes), "--emit-rate", f"{load.emit_rate:g}",
        "--room-size", str(load.room_size), "--namespace", load.namespace, "--transport", load.transport,
    ]
    if load.open_model:
        argv.append("--open-model")
    return argv + list(plan.locust_args) + [plan.scenario.user_class]


def read_load_bounds(cell_dir: Path) -> dict[str, int]:
    """``load_started_ns``/``load_ended_ns`` as the Locust harness recorded them (load.json)."""
    try:
        bounds = json.loads((cell_dir / LOAD_BOUNDS_FILE).read_text())
        return {key: int(bounds[key]) for key in ("load_started_ns", "load_ended_ns") if key in bounds}
    except (OSError, ValueError, TypeError):
        return {}


def read_final_figures(stats_json: Path) -> LiveFigures | None:
    """Totals from Locust's --json-file, written at shutdown."""
    try:
        entries = json.loads(stats_json.read_text())
        requests = sum(int(e["num_requests"]) for e in entries)
        failures = sum(int(e["num_failures"]) for e in entries)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return LiveFigures(requests, failures, 0.0)


def read_live_figures(stats_csv: Path) -> LiveFigures | None:
    """The Aggregated row of Locust's stats CSV (rewritten every second), if readable."""
    try:
        with open(stats_csv, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return LiveFigures(int(row["Request Count"]), int(row["Failure Count"]),
                                       float(row["Requests/s"]))
    except (OSError, ValueError, KeyError):
        return None
    return None


def _run_json(plan: CellPlan, *, status: str, reason: str | None, started_ns: int, ended_ns: int | None,
              command: list[str], target_url: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    load = plan.scenario.load
    return {
        "schema": 1,
        "run_id": plan.run_id,
        "cell": plan.cell,
        "status": status,
        "reason": reason,
        "mode": plan.target.mode,
        "server": plan.target.server,
        "scenario": plan.scenario.name,
        "load": {"users": load.users, "spawn_rate": load.spawn_rate, "duration_s": load.duration_s,
                 "emit_rate": load.emit_rate or None, "payload_bytes": load.payload_bytes,
                 "room_size": load.room_size, "warmup_s": load.warmup_s, "open_model": load.open_model,
                 "namespace": load.namespace, "transport": load.transport},
        "command": command,
        "target_url": target_url,
        "versions": versions(),
        "machine": machine(),
        "started_at": iso(started_ns),
        "ended_at": iso(ended_ns) if ended_ns else None,
        "started_ns": started_ns,
        "ended_ns": ended_ns,
    } | plan.extra_run_info | extra


def _end_process_group(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, the process group this module started."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)


def run_cell(plan: CellPlan, *, on_progress: Callable[[float, LiveFigures | None], None] | None = None,
             interrupted: threading.Event | None = None) -> CellResult:
    """Run the cell; never raises for a failure of the target or Locust."""
    cell_dir = plan.cell_dir
    cell_dir.mkdir(parents=True, exist_ok=True)
    interrupted = interrupted or threading.Event()
    target_cores, loadgen_cores = core_split() if plan.pin_cores else (None, None)
    started_ns = time.time_ns()
    t0 = time.monotonic()
    command: list[str] = []
    extra: dict[str, Any] = {"pinned_cores": {"target": target_cores, "loadgen": loadgen_cores}}

    def finish(status: str, reason: str | None, target_url: str | None = None,
               live: LiveFigures | None = None) -> CellResult:
        write_json(cell_dir / "run.json", _run_json(plan, status=status, reason=reason, started_ns=started_ns,
                                                     ended_ns=time.time_ns(), command=command,
                                                     target_url=target_url, extra=extra))
        return CellResult(plan.cell, cell_dir, status, reason,
                          live.requests if live else None, live.failures if live else None,
                          time.monotonic() - t0)

    write_json(cell_dir / "run.json", _run_json(plan, status="running", reason=None, started_ns=started_ns,
                                                 ended_ns=None, command=command, target_url=None, extra=extra))
    try:
        target = launch_target(plan.target.mode, plan.target.server, log_path=cell_dir / "target.log",
                               extra_args=list(plan.target_args), cpu_affinity=target_cores)
    except TargetStartError as exc:
        return finish("failed", f"target did not start: {exc}")

    server_sampler = TreeSampler(target.pid, cell_dir / "server.csv", connected=stats_connected(target.url)).start()
    locust: subprocess.Popen | None = None
    loadgen_sampler: TreeSampler | None = None
    status, reason, live = "ok", None, None
    try:
        command = locust_argv(plan, target.url)
        argv = (["taskset", "--cpu-list", ",".join(map(str, loadgen_cores))] if loadgen_cores else []) + command
        env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
        with open(cell_dir / "locust.log", "ab") as log:
            locust = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        loadgen_sampler = TreeSampler(locust.pid, cell_dir / "loadgen.csv").start()
        status, reason = _watch(plan, target, locust, t0, interrupted, on_progress)
    finally:
        if locust is not None:
            _end_process_group(locust)
        if loadgen_sampler:
            loadgen_sampler.stop()
        server_sampler.stop()
        target_died = not target.alive()
        target.stop()
    live = read_final_figures(cell_dir / "locust_stats.json") or read_live_figures(cell_dir / "locust_stats.csv")
    extra |= read_load_bounds(cell_dir)
    extra |= {"locust_exit_code": locust.returncode if locust else None,
              "loadgen_cpu_s": loadgen_sampler.cpu_s if loadgen_sampler else None,
              "server_cpu_s": server_sampler.cpu_s}
    if target_died and status == "ok":
        status, reason = "failed", f"target exited with code {target.process.returncode} during the run"
    elif status == "ok" and locust is not None and locust.returncode not in (0, 1):
        status, reason = "failed", f"locust exited with code {locust.returncode}; see locust.log"
    elif status == "ok" and (live is None or live.requests == 0):
        status, reason = "failed", "locust recorded no requests; see locust.log"
    return finish(status, reason, target.url, live)


def _watch(plan: CellPlan, target: TargetProcess, locust: subprocess.Popen, t0: float,
           interrupted: threading.Event,
           on_progress: Callable[[float, LiveFigures | None], None] | None) -> tuple[str, str | None]:
    """Wait for Locust to end; end it at the deadline, on interrupt, or when the target dies."""
    deadline = t0 + plan.deadline_s
    stats_csv = plan.cell_dir / "locust_stats.csv"
    while locust.poll() is None:
        now = time.monotonic()
        if interrupted.is_set():
            return "partial", "interrupted"
        if now > deadline:
            return "failed", f"locust still running at the cell deadline ({plan.deadline_s:.0f} s); ended it"
        if not target.alive():
            return "failed", f"target exited with code {target.process.returncode} during the run"
        if on_progress:
            on_progress(now - t0, read_live_figures(stats_csv))
        interrupted.wait(0.5)
    return "ok", None
