"""A/B pairs of short alternating load windows: both servers up at once, the load switched between them.

Why: on a shared machine the CPU's speed changes from one second to the
next (here, a fixed loop's CPU time varies by 15-20% between half-second
slices). A pair of whole runs (a server start, a Locust start, a report
each) takes some 25 s, so five minutes hold about 12 pairs, too few to see
a 10% change through that noise. Here one pair is one start of both
servers, side by side on the target's core, and ``windows`` short windows a
side, alternating A B B A ..., the load generator (this process) on its own
core. Windows of half a second cost almost nothing between them, so a pair
takes about ten seconds and the budget holds some 25 pairs, each the
average of several windows.

A pair starts its own servers, so what differs between two starts of the
same code (memory layout, hash seeds) varies from pair to pair and lands
in the interval, rather than being taken for the change under test.

The load is a :class:`sioharness.bench.instr_workload.Workload` (an acknowledged event,
or a connect and a disconnect), sent by ``clients`` connections, each
waiting for an answer before it sends the next. A pair's figures per side:
server CPU per 1,000 operations (the server's process tree, measured over
its windows only), operations per second, and the p50 and p99 latency.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import psutil

from sioharness.bench.abstats import Better
from sioharness.bench.instr_workload import Driver, Workload, WorkloadError
from sioharness.bench.own_app import CommandTarget, launch_command
from sioharness.core.files import write_json
from target_app.process import TargetProcess

DEFAULT_CLIENTS = 8
DEFAULT_WINDOW_S = 0.5
DEFAULT_WINDOWS = 8
DEFAULT_WARMUP_S = 1.0
#: a window's operation that takes longer than this is a server that stopped answering
ANSWER_TIMEOUT_S = 10.0


class WindowsError(RuntimeError):
    """A side's server did not start or stopped answering; the message names the side and why."""

    def __init__(self, side: str, message: str) -> None:
        super().__init__(message)
        self.side = side


@dataclass(frozen=True)
class WindowPlan:
    """How one pair is measured."""

    workload: Workload
    clients: int = DEFAULT_CLIENTS
    window_s: float = DEFAULT_WINDOW_S
    #: windows a side per pair
    windows: int = DEFAULT_WINDOWS
    warmup_s: float = DEFAULT_WARMUP_S

    def __post_init__(self) -> None:
        for flag, value, least in (("--window-clients", self.clients, 1), ("--windows", self.windows, 1),
                                   ("--window-s", self.window_s, 0.05), ("--window-warmup", self.warmup_s, 0.0)):
            if not (math.isfinite(value) and value >= least):
                raise ValueError(f"{flag} must be >= {least:g}, got {value}")

    @property
    def unit(self) -> str:
        """What one operation is called in a metric's name: acks, or connects."""
        return "acks" if self.workload.kind == "echo" else "connects"

    def metric_names(self) -> dict[str, Better]:
        """label -> which way is better, in the order ab.md shows them."""
        op = self.workload.event if self.workload.kind == "echo" else "connect + disconnect"
        return {f"server CPU s per 1k {self.unit}": "lower", f"{self.unit}/s": "higher",
                f"{op} p50 (us)": "lower", f"{op} p99 (us)": "lower"}


@dataclass
class SideTotals:
    """One side's windows of one pair, added up."""

    operations: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    def add(self, operations: int, seconds: float, cpu_s: float, latencies: Sequence[float]) -> None:
        self.operations += operations
        self.seconds += seconds
        self.cpu_s += cpu_s
        self.latencies_s.extend(latencies)

    def figures(self, plan: WindowPlan) -> dict[str, float]:
        """The pair's value of each metric for this side (no metric without an operation)."""
        if self.operations == 0 or self.seconds <= 0:
            return {}
        ordered = sorted(self.latencies_s)
        p50, p99 = (ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e6 for q in (0.5, 0.99))
        values = [self.cpu_s / self.operations * 1000, self.operations / self.seconds, p50, p99]
        return {name: value for name, value in zip(plan.metric_names(), values, strict=True) if value > 0}


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU of a server's process and its children (a pre-fork server's workers)."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


class ServerLoad:
    """One side's running server and the connections that load it."""

    def __init__(self, side: str, target: TargetProcess, plan: WindowPlan) -> None:
        self.side, self.target, self.plan = side, target, plan
        self.process = psutil.Process(target.pid)
        self.drivers: list[Driver] = []
        try:
            for _ in range(plan.clients):
                driver = Driver(plan.workload, target.url, timeout=ANSWER_TIMEOUT_S)
                self.drivers.append(driver.__enter__())
        except WorkloadError as exc:
            self.close()
            raise WindowsError(side, f"side {side.upper()}: {exc}") from None

    def close(self) -> None:
        for driver in self.drivers:
            with contextlib.suppress(Exception):
                driver.__exit__(None, None, None)
        self.drivers.clear()

    def window(self, seconds: float) -> tuple[int, float, float, list[float]]:
        """Load the server for ``seconds``: (operations, elapsed s, server CPU s, latency of each operation)."""
        latencies: list[float] = []
        failures: list[str] = []
        end = time.perf_counter() + seconds

        def loop(driver: Driver) -> None:
            while time.perf_counter() < end:
                began = time.perf_counter()
                try:
                    driver.one()
                except WorkloadError as exc:
                    failures.append(str(exc))
                    return
                latencies.append(time.perf_counter() - began)

        cpu_before, began = cpu_seconds(self.process), time.perf_counter()
        gevent.joinall([gevent.spawn(loop, driver) for driver in self.drivers])
        elapsed, cpu = time.perf_counter() - began, cpu_seconds(self.process) - cpu_before
        if failures:
            hint = (" (the windows need an event the server acknowledges: choose it with --instr-event, or "
                    "compare whole runs with --method runs)" if self.plan.workload.kind == "echo" else "")
            raise WindowsError(self.side, f"side {self.side.upper()}: {failures[0]}{hint}")
        if not self.target.alive():
            raise WindowsError(self.side, f"side {self.side.upper()}: the server exited "
                                          f"(code {self.target.process.returncode})")
        return len(latencies), elapsed, cpu, latencies


def window_order(sides: Sequence[str], windows: int, pair: int = 0) -> list[str]:
    """``windows`` windows a side, forwards then backwards (A B, B A, A B ...; A B C, C B A ...).

    Each side's windows then sit on average at the same moment of the pair,
    so a drift across the pair lands on every side alike.
    """
    rounds = [list(sides) if (w + pair) % 2 == 0 else list(sides)[::-1] for w in range(windows)]
    return [side for one_round in rounds for side in one_round]


@contextlib.contextmanager
def pinned(cores: Sequence[int] | None) -> Iterator[None]:
    """Run this process (the load generator) on ``cores`` for a while, then as before."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cores))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def start_server(side: str, spec: CommandTarget, folder: Path, cores: Sequence[int] | None) -> TargetProcess:
    try:
        return launch_command(spec, log_path=folder / f"target-{side}.log", cpu_affinity=cores,
                              app_info=folder / f"app-{side}.json" if spec.describes_app else None)
    except Exception as exc:  # TargetStartError, and a server that exits at once
        raise WindowsError(side, f"side {side.upper()}: the server did not start ({exc}); "
                                 f"see {folder / f'target-{side}.log'}") from None


def run_window_pair(targets: Mapping[str, CommandTarget], plan: WindowPlan, folder: Path, *, pair: int,
                    target_cores: Sequence[int] | None, loadgen_cores: Sequence[int] | None,
                    interrupted: threading.Event | None = None,
                    say: Callable[[str], None] = lambda line: None) -> dict[str, dict[str, float]] | None:
    """One pair: both servers started, warmed up, then ``plan.windows`` windows a side, alternating.

    ``targets`` are usually A and B; the power study passes more sides.
    Returns side ("a", "b") -> metric -> value, or None when interrupted
    (the windows so far are kept in the pair's windows.json, not judged).
    WindowsError names the side that failed. Both servers are stopped on
    the way out, whatever happened.
    """
    folder.mkdir(parents=True, exist_ok=True)
    interrupted = interrupted or threading.Event()
    servers: dict[str, TargetProcess] = {}
    loads: dict[str, ServerLoad] = {}
    totals = {side: SideTotals() for side in targets}
    log: list[dict[str, object]] = []
    try:
        for side, spec in targets.items():
            servers[side] = start_server(side, spec, folder, target_cores)
        with pinned(loadgen_cores):
            for side, target in servers.items():
                loads[side] = ServerLoad(side, target, plan)
                if plan.warmup_s > 0:
                    loads[side].window(plan.warmup_s)  # caches, the JIT-less warm paths, the pools: not measured
            order = window_order(list(targets), plan.windows, pair)
            for side in order:
                if interrupted.is_set():
                    return None
                operations, seconds, cpu, latencies = loads[side].window(plan.window_s)
                totals[side].add(operations, seconds, cpu, latencies)
                log.append({"side": side, "operations": operations, "seconds": round(seconds, 6),
                            "server_cpu_s": round(cpu, 6)})
        figures = {side: totals[side].figures(plan) for side in targets}
        say(f"pair {pair + 1}: " + "; ".join(
            f"{side.upper()} {totals[side].operations / max(totals[side].seconds, 1e-9):,.0f} {plan.unit}/s, "
            f"{figures[side].get(next(iter(plan.metric_names())), float('nan')):.4f} CPU s per 1k"
            for side in targets))
        return figures
    finally:
        for load in loads.values():
            load.close()
        for target in servers.values():
            target.stop(timeout=10)
        with contextlib.suppress(OSError):
            write_json(folder / "windows.json", {"pair": pair + 1, "windows": log})
