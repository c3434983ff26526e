"""``sioharness ab --measure instructions``: the server's instructions per operation, A against B, and where they went.

Wall-clock time on a shared machine varies by 15-25 % between identical
runs; the number of instructions a server executes for one operation does
not depend on neighbours, frequency scaling or the scheduler. Each side's
server runs under callgrind (:mod:`sioharness.bench.callgrind`) while a fixed workload
(:mod:`sioharness.bench.instr_workload`) sends its operations one at a time; the
instructions of the measured window, divided by the operations in it, are
that run's figure. Runs alternate A B A B ...

The verdict: ``slower`` when every B run counts more than every A run and
the ratio of medians exceeds 1 + tolerance (default 0.5 %); ``faster`` the
other way round; ``no change`` when every run of both sides lies within the
tolerance of A's median; ``inconclusive`` otherwise.

Where: each side's server runs once more, natively, with a line counter
(``sioharness/bench/line_count_site``): the Python lines each function executes per
operation, A against B, name the functions that do more work; callgrind's
own per-function costs do the same for compiled code (the interpreter, C
extensions).
"""
from __future__ import annotations

import html
import os
import signal
import statistics
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sioharness.bench.callgrind import CALLGRIND_ENV, CallgrindError, callgrind_wrapper, control, dump_total, self_costs
from sioharness.bench.instr_workload import Driver, Workload, WorkloadError
from sioharness.bench.own_app import CommandTarget, launch_command
from sioharness.core.files import write_json, write_text
from sioharness.core.untrusted import UntrustedFileError, read_json
from target_app.process import TargetProcess

DEFAULT_RUNS = 3
DEFAULT_OPERATIONS = 1000
DEFAULT_WARMUP = 300
#: half the smallest change worth catching (1 %), and 25 times the run-to-run spread of a count (0.02 %)
DEFAULT_TOLERANCE = 0.005
#: instrumented operations before the window: Valgrind translates the code paths once, outside the count
INSTRUMENTED_WARMUP = 50
#: seconds a server has to start under Valgrind (instrumentation off: a few times slower than native)
VALGRIND_READY_S = 180.0
LINE_COUNT_SITE = Path(__file__).resolve().parent / "line_count_site"
TOP_FUNCTIONS = 10


class InstructionsError(RuntimeError):
    """A side whose instructions could not be counted; the message says why."""


@dataclass
class InstructionRun:
    side: str
    index: int
    operations: int
    instructions: int
    dump: Path

    @property
    def per_operation(self) -> float:
        return self.instructions / self.operations


@dataclass
class SideCounts:
    """One side's runs and, once counted, its per-function costs per operation."""

    key: str
    label: str
    source: Path
    target: CommandTarget
    runs: list[InstructionRun] = field(default_factory=list)
    python_lines: dict[str, float] = field(default_factory=dict)
    compiled: dict[str, float] = field(default_factory=dict)

    @property
    def values(self) -> list[float]:
        return [run.per_operation for run in self.runs]


@dataclass(frozen=True)
class Verdict:
    verdict: str  # slower, faster, no change, inconclusive
    ratio: float
    a_median: float
    b_median: float
    a_spread: float
    b_spread: float

    def describe(self) -> str:
        change = f"{(self.ratio - 1) * 100:+.2f}%"
        return f"{self.verdict} ({change} instructions per operation)"


def judge(a: Sequence[float], b: Sequence[float], tolerance: float) -> Verdict:
    """The verdict on per-operation counts of two sides (see the module's docstring)."""
    if not a or not b:
        raise ValueError("both sides need at least one run")
    a_med, b_med = statistics.median(a), statistics.median(b)
    ratio = b_med / a_med
    low, high = a_med * (1 - tolerance), a_med * (1 + tolerance)
    if min(b) > max(a) and ratio > 1 + tolerance:
        verdict = "slower"
    elif max(b) < min(a) and ratio < 1 - tolerance:
        verdict = "faster"
    elif all(low <= value <= high for value in (*a, *b)):
        verdict = "no change"
    else:
        verdict = "inconclusive"
    return Verdict(verdict, ratio, a_med, b_med, _spread(a), _spread(b))


def _spread(values: Sequence[float]) -> float:
    """(max - min) / median: how far one side's runs are apart."""
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0


# --- one run -------------------------------------------------------------------


def count_run(side: SideCounts, index: int, workload: Workload, folder: Path, *, operations: int,
              warmup: int) -> InstructionRun:
    """One server start under callgrind: warm-up, then the window of ``operations`` counted."""
    folder.mkdir(parents=True, exist_ok=True)
    target = _launch(side, folder, wrapper=callgrind_wrapper(folder / "callgrind.out.%p"), env=CALLGRIND_ENV)
    pid = target.pid
    try:
        with Driver(workload, target.url) as driver:
            driver.run(warmup)
            control(pid, "-i", "on")
            driver.run(INSTRUMENTED_WARMUP)
            control(pid, "-z")
            driver.run(operations)
            control(pid, "-d", "window")
    except (WorkloadError, CallgrindError) as exc:
        raise InstructionsError(f"side {side.key.upper()} run {index}: {exc}; see {folder / 'target.log'}") \
            from None
    finally:
        target.stop(timeout=30)
    dump = folder / f"callgrind.out.{pid}.1"
    try:
        return InstructionRun(side.key, index, operations, dump_total(dump), dump)
    except CallgrindError as exc:
        raise InstructionsError(f"side {side.key.upper()} run {index}: {exc}") from None


def count_lines(side: SideCounts, workload: Workload, folder: Path, *, operations: int, warmup: int) -> None:
    """One native server start with the line counter: Python lines per operation, by function."""
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / "line-counts.json"
    output.unlink(missing_ok=True)
    env = {"SIO_LINE_COUNTS": str(output), "PYTHONPATH": str(LINE_COUNT_SITE)}
    target = _launch(side, folder, wrapper=(), env=env)
    try:
        with Driver(workload, target.url) as driver:
            driver.run(warmup)
            _signal_and_wait(target, signal.SIGUSR1, Path(str(output) + ".on"), driver)
            before = driver.done
            driver.run(operations)
            _signal_and_wait(target, signal.SIGUSR2, output, driver)
            measured = driver.done - before
    except WorkloadError as exc:
        raise InstructionsError(f"side {side.key.upper()} line count: {exc}") from None
    finally:
        target.stop(timeout=30)
    try:
        document = read_json(output)
    except UntrustedFileError as exc:
        raise InstructionsError(f"side {side.key.upper()} line count: {exc}") from None
    functions = document.get("functions") if isinstance(document, dict) else None
    if not isinstance(functions, list):
        raise InstructionsError(f"side {side.key.upper()} line count: {output.name} holds no function list")
    side.python_lines = _per_function(functions, side.source, measured)


def _signal_and_wait(target: TargetProcess, signum: int, appears: Path, driver: Driver,
                     timeout: float = 30.0) -> None:
    """Signal the server, and keep it busy (its handler runs between Python lines) until ``appears`` does."""
    os.kill(target.pid, signum)
    deadline = time.monotonic() + timeout
    while not appears.exists():
        if time.monotonic() > deadline or not target.alive():
            raise WorkloadError(f"the server did not answer {signal.Signals(signum).name} within {timeout:g} s "
                                "(is it a server started by --app or a Python --target-cmd, one process?)")
        driver.one()


def _per_function(functions: list[Any], source: Path, operations: int) -> dict[str, float]:
    per: dict[str, float] = {}
    for entry in functions:
        if not isinstance(entry, dict) or str(entry.get("file", "")).startswith(str(LINE_COUNT_SITE)):
            continue  # the counter's own signal handlers are not the server's work
        key = f"{short_path(str(entry.get('file')), source)}:{entry.get('name')}"
        per[key] = per.get(key, 0.0) + float(entry.get("lines") or 0) / max(operations, 1)
    return per


def short_path(path: str, source: Path) -> str:
    """A code file as both sides name it: relative to the side's checkout, or to site-packages."""
    for root in (str(source), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"]):
        if root and path.startswith(root.rstrip(os.sep) + os.sep):
            return path[len(root.rstrip(os.sep)) + 1:]
    return path


def _launch(side: SideCounts, folder: Path, *, wrapper: Sequence[str], env: dict[str, str]) -> TargetProcess:
    spec = replace(side.target, ready_timeout_s=max(side.target.ready_timeout_s, VALGRIND_READY_S))
    try:
        return launch_command(spec, log_path=folder / "target.log", wrapper=wrapper, extra_env=env,
                              app_info=folder / "app.json" if spec.describes_app else None)
    except Exception as exc:  # TargetStartError, and a server that exits at once
        raise InstructionsError(f"side {side.key.upper()}: the server did not start ({exc}); "
                                f"see {folder / 'target.log'}") from None


# --- both sides ----------------------------------------------------------------


def run_instructions(a: SideCounts, b: SideCounts, workload: Workload, run_dir: Path, *, runs: int,
                     operations: int, warmup: int, interrupted: threading.Event,
                     say: Callable[[str], None] = print) -> None:
    """``runs`` counted runs a side, alternating A B A B ..., then one line count a side."""
    for index in range(1, runs + 1):
        for side in (a, b) if index % 2 else (b, a):
            if interrupted.is_set():
                return
            started = time.monotonic()
            run = count_run(side, index, workload, run_dir / f"instructions-{side.key}-r{index:02d}",
                            operations=operations, warmup=warmup)
            side.runs.append(run)
            say(f"[{side.key.upper()} {index}] {run.per_operation:,.0f} instructions per {workload.operation} "
                f"({time.monotonic() - started:.0f} s)")
    for side in (a, b):
        if interrupted.is_set():
            return
        say(f"[{side.key.upper()}] counting Python lines per function")
        count_lines(side, workload, run_dir / f"lines-{side.key}", operations=operations, warmup=warmup)
        median_run = sorted(side.runs, key=lambda r: r.per_operation)[len(side.runs) // 2]
        try:
            side.compiled = {name: cost / median_run.operations
                             for name, cost in self_costs(median_run.dump).items()}
        except CallgrindError as exc:
            say(f"[{side.key.upper()}] no per-function costs of compiled code: {exc}")


def top_changes(a: dict[str, float], b: dict[str, float], count: int = TOP_FUNCTIONS) -> list[tuple[str, float, float]]:
    """(function, A per operation, B per operation) of the largest additions, then the largest removals."""
    deltas = [(name, a.get(name, 0.0), b.get(name, 0.0)) for name in set(a) | set(b)]
    deltas = [d for d in deltas if abs(d[2] - d[1]) >= 0.5]  # less than half a line or instruction: noise
    deltas.sort(key=lambda d: d[2] - d[1], reverse=True)
    added = [d for d in deltas if d[2] > d[1]][:count]
    removed = [d for d in reversed(deltas) if d[2] < d[1]][:max(0, count - len(added))]
    return added + removed


def render_markdown(a: SideCounts, b: SideCounts, workload: Workload, verdict: Verdict, tolerance: float) -> str:
    """The verdict table and the per-function diffs, for ab.md and the job summary."""
    op = workload.operation
    lines = [f"### Instructions per {op}: {verdict.describe()}", "",
             "| side | runs | instructions per operation (median) | spread |", "|---|---:|---:|---:|",
             f"| {_side_name(a)} | {len(a.runs)} | {verdict.a_median:,.0f} | {verdict.a_spread:.2%} |",
             f"| {_side_name(b)} | {len(b.runs)} | {verdict.b_median:,.0f} | {verdict.b_spread:.2%} |", "",
             f"Ratio B/A {verdict.ratio:.4f}; tolerance ±{tolerance:.1%}. Counted by callgrind over "
             f"{a.runs[0].operations:,} operations a run, one at a time (blind to waiting, system calls and "
             "cache misses: the wall-clock verdict sees those).", ""]
    for title, unit, a_costs, b_costs in (
            ("Python functions: lines executed per operation", "lines", a.python_lines, b.python_lines),
            ("Compiled functions: own instructions per operation", "instructions", a.compiled, b.compiled)):
        changes = top_changes(a_costs, b_costs)
        lines += [f"#### {title}", ""]
        if not changes:
            lines += [f"No function changed by half a {unit[:-1]} or more per operation.", ""]
            continue
        lines += [f"| function | A {unit} | B {unit} | change |", "|---|---:|---:|---:|"]
        lines += [f"| `{name}` | {av:,.1f} | {bv:,.1f} | {bv - av:+,.1f} |" for name, av, bv in changes]
        lines.append("")
    return "\n".join(lines)


def _side_name(side: SideCounts) -> str:
    key = side.key.upper()
    return key if side.label == key else f"{key} ({side.label})"


def render_html(a: SideCounts, b: SideCounts, workload: Workload, verdict: Verdict) -> str:
    """A self-contained page: the verdict, and each diff as bars (red: more work in B, green: less)."""
    parts = [f"<h1>Instructions per {html.escape(workload.operation)}: {html.escape(verdict.describe())}</h1>",
             f"<p>A {html.escape(a.label)}: {verdict.a_median:,.0f} &middot; B {html.escape(b.label)}: "
             f"{verdict.b_median:,.0f} &middot; ratio {verdict.ratio:.4f}</p>"]
    for title, a_costs, b_costs in (("Python lines per operation, by function", a.python_lines, b.python_lines),
                                    ("Own instructions per operation, by compiled function", a.compiled,
                                     b.compiled)):
        changes = top_changes(a_costs, b_costs, count=25)
        widest = max((abs(bv - av) for _, av, bv in changes), default=1.0) or 1.0
        rows = "".join(
            f"<tr><td class=n>{html.escape(name)}</td><td>{av:,.1f}</td><td>{bv:,.1f}</td><td class=bar>"
            f"<span class={'up' if bv > av else 'down'} style='width:{abs(bv - av) / widest * 100:.1f}%'>"
            f"</span>{bv - av:+,.1f}</td></tr>" for name, av, bv in changes)
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr><th>function</th><th>A</th><th>B</th>"
                     f"<th>change</th></tr>{rows or '<tr><td colspan=4>no change</td></tr>'}</table>")
    style = ("body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;width:100%}"
             "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}td.n{text-align:left;"
             "font-family:monospace;word-break:break-all}td.bar{width:30%;text-align:left}"
             "span{display:inline-block;height:10px;margin-right:6px}.up{background:#c0392b}.down{background:#27ae60}")
    return (f"<!doctype html><meta charset=utf-8><title>Instruction count A/B</title><style>{style}</style>"
            + "".join(parts))


def write_instruction_outputs(run_dir: Path, a: SideCounts, b: SideCounts, workload: Workload, verdict: Verdict,
                              tolerance: float) -> str:
    markdown = render_markdown(a, b, workload, verdict, tolerance)
    write_text(run_dir / "instructions.md", markdown + "\n")
    write_text(run_dir / "instructions.html", render_html(a, b, workload, verdict))
    write_json(run_dir / "instructions.json", {
        "operation": workload.operation, "tolerance": tolerance, "verdict": verdict.verdict,
        "ratio": verdict.ratio,
        "sides": {side.key: {"label": side.label, "per_operation": side.values,
                             "python_lines": side.python_lines, "compiled": side.compiled} for side in (a, b)},
    })
    return markdown

