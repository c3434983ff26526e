"""``sioharness ab`` (``python -m sioharness.bench.ab``): is B slower than A?

Two revisions (or two configurations), one machine, statistics.

A benchmark baseline from another machine cannot judge a change: runners
differ by more than the regressions worth catching. So both sides run here,
in one job, interleaved A B B A ... (:func:`sioharness.bench.abstats.pair_order`),
target and load generator pinned to separate cores, a warm-up cut from each
run; each metric is then a pair's typical ratio B/A with a distribution-free
95% interval and a verdict that claims no more than the interval shows
(slower, faster, no change, inconclusive). Undecided metrics earn more
pairs, within ``--budget`` seconds (:class:`sioharness.bench.abstats.SequentialJudge`).

Sides:

- two revisions of a git repository (the default): ``--base REF`` (default:
  the merge base of HEAD and ``main``) is checked out in a worktree; ``--head
  REF`` likewise, or by default the working tree as it is. Each side's server
  runs from its own checkout; the load generator is this harness, the same
  for both.
- two configurations of one revision: ``--a-arg``/``--b-arg`` add server
  flags to one side (``--b-arg=--handler-cost-us=20``), with no ``--base``.

The server is the reference target (``--target gevent-dev``) or the user's
own (``--target-cmd "python app.py --port {port}"``, run in each side's
checkout, with ``--locustfile``/``--user``). Exit status: 0 no metric
slower beyond ``--tolerance``, 1 a metric is slower (or inconclusive, with
``--fail-on-inconclusive``; or a side could not run), 2 bad input.

``--measure instructions`` (or ``both``) counts each side's instructions
per operation under callgrind instead of (or after) the timed runs, and
names the functions that changed (:mod:`sioharness.bench.ab_instructions`).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import io
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reports.build import build_cell_report
from reports.errors import ReportInputError
from reports.launch import build_reports
from sioharness.bench.ab_instructions import (
    DEFAULT_OPERATIONS,
    DEFAULT_WARMUP,
    InstructionsError,
    SideCounts,
    judge,
    run_instructions,
    write_instruction_outputs,
)
from sioharness.bench.ab_instructions import DEFAULT_RUNS as DEFAULT_INSTR_RUNS
from sioharness.bench.ab_instructions import DEFAULT_TOLERANCE as DEFAULT_INSTR_TOLERANCE
from sioharness.bench.ab_windows import (
    DEFAULT_CLIENTS,
    DEFAULT_WARMUP_S,
    DEFAULT_WINDOW_S,
    DEFAULT_WINDOWS,
    WindowPlan,
    WindowsError,
    run_window_pair,
)
from sioharness.bench.abstats import (
    Better,
    Comparison,
    SequentialJudge,
    look_schedule,
    pair_order,
    render_markdown,
    spread,
)
from sioharness.bench.callgrind import missing_tools
from sioharness.bench.cell import CellPlan, CellResult, core_split
from sioharness.bench.instr_workload import WORKLOADS, Workload
from sioharness.bench.locustfile_check import LocustfileError, single_user_scenario
from sioharness.bench.matrix import DEFAULT_RESULTS, ProgressLine
from sioharness.bench.own_app import (
    CommandTarget,
    TargetCommandError,
    add_app_arguments,
    app_arguments_error,
    targets_of_app_arguments,
)
from sioharness.bench.profile import Scenario, TargetSpec
from sioharness.bench.signals import interrupt_on_signals
from sioharness.core.cells import CellName
from sioharness.core.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from sioharness.core.figures import judged
from sioharness.core.files import write_json, write_text
from sioharness.core.load_params import LoadShape, add_load_options, given_load_options
from sioharness.core.run_dirs import RunDirError, claim_run_dir
from sioharness.core.scenarios import RANK_CONNECTS, SCENARIO_USERS, spec_of

#: pairs before the first look: 7 is the fewest that can reach 95% at the first look's share
DEFAULT_REPEATS = 7
DEFAULT_BUDGET_S = 300.0
DEFAULT_MAX_PAIRS = 30
DEFAULT_TOLERANCE = 0.05
MAIN_BRANCHES = ("origin/main", "main", "origin/master", "master")
MEASURES = ("clock", "instructions", "both")
METHODS = ("windows", "runs")
#: the reference scenarios whose one operation the windows send: an acknowledged echo, a connect + disconnect
WINDOW_SCENARIOS = ("echo", "churn")

class AbInputError(ValueError):
    """Arguments or a repository the A/B cannot use; the message says which."""


@dataclass
class Side:
    """A or B: where its server's code comes from and how it is started."""

    key: str  # "a" or "b"
    label: str
    source: Path
    target: CommandTarget
    #: the checkout is a worktree this run made (removed at the end)
    worktree: bool = False
    runs: list[CellResult] = field(default_factory=list)
    failure: str | None = None


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AbInputError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def resolve_ref(repo: Path, ref: str) -> str:
    """The commit ``ref`` names; AbInputError naming the ref otherwise."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except AbInputError:
        raise AbInputError(f"--base/--head {ref!r}: no such commit in {repo}") from None


def default_base(repo: Path) -> str:
    """The merge base of HEAD and the main branch (HEAD's parent when HEAD is main)."""
    for branch in MAIN_BRANCHES:
        with contextlib.suppress(AbInputError):
            base = git(repo, "merge-base", "HEAD", branch)
            if base != git(repo, "rev-parse", "HEAD"):
                return base
    with contextlib.suppress(AbInputError):
        return git(repo, "rev-parse", "HEAD~1")
    raise AbInputError("no --base given and none found (no main branch to branch from, no parent commit)")


def dirty(repo: Path) -> bool:
    return bool(git(repo, "status", "--porcelain", "--untracked-files=no"))


def app_of_side(spec: str, repo: Path, src: Path) -> str:
    """``--app`` for one side: a file inside the repository is taken from that side's checkout."""
    where, sep, obj = spec.rpartition(":")
    if not sep:
        where, obj = spec, ""
    if where.endswith(".py") or "/" in where:
        path = Path(where).expanduser()
        path = (Path.cwd() / path) if not path.is_absolute() else path
        with contextlib.suppress(ValueError):
            where = str(src / path.resolve().relative_to(repo))
    return f"{where}:{obj}" if obj else where


def target_command(args: argparse.Namespace, extra: Sequence[str]) -> tuple[str, str, str]:
    """(command, mode, server) of a side: the user's ``--target-cmd``, else the reference target."""
    if args.target_cmd:
        command = " ".join([args.target_cmd, *map(shlex.quote, extra)])
        return command, "app", args.app_name
    spec = TargetSpec.parse(args.target)
    command = shlex.join(["python", "-m", "target_app", "--async-mode", spec.mode, "--server", spec.server,
                          "--host", "{host}", "--port", "{port}", *extra])
    return command, spec.mode, spec.server


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sioharness.bench.ab", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sides = parser.add_argument_group("the two sides")
    sides.add_argument("--repo", type=Path, default=Path.cwd(), help="the git repository (default: here)")
    sides.add_argument("--base", metavar="REF", help="side A's revision (default: merge base with main)")
    sides.add_argument("--head", metavar="REF", help="side B's revision (default: the working tree)")
    sides.add_argument("--a-arg", action="append", default=[], metavar="ARG", help="a server flag for side A only")
    sides.add_argument("--b-arg", action="append", default=[], metavar="ARG", help="a server flag for side B only")
    sides.add_argument("--a-label", help="name of side A in the report (default: the revision or 'A')")
    sides.add_argument("--b-label", help="name of side B in the report (default: the revision or 'B')")
    server = parser.add_argument_group("the server and the load")
    server.add_argument("--target", default="gevent-dev", help="reference target MODE-SERVER (default gevent-dev)")
    server.add_argument("--target-cmd", metavar="COMMAND", help="your server's command, with {port} (see bench)")
    add_app_arguments(server)
    server.add_argument("--app-mode", default="gevent", help="the async mode of --app (default gevent)")
    server.add_argument("--app-name", default="app", help="the server part of cell names with --target-cmd")
    server.add_argument("--locustfile", type=Path, help="your locustfile (default: the harness's scenarios)")
    server.add_argument("--user", help="the user class to run (default: the scenario's, e.g. EchoUser)")
    server.add_argument("--scenario", default="echo", choices=sorted(SCENARIO_USERS),
                        help="reference scenario when no --user is given (default echo)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help="pairs (one run a side) before the first verdict (default 7)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                        help="run more pairs until every metric is decided, within this many seconds "
                             "(default 300; 0: exactly --repeats pairs, judged once)")
    parser.add_argument("--max-pairs", type=int, default=DEFAULT_MAX_PAIRS,
                        help="at most this many pairs, whatever the budget (default 30)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="'no change' needs the whole interval within 1 +/- this (default 0.05)")
    parser.add_argument("--fail-on-inconclusive", action="store_true",
                        help="exit 1 when a metric is inconclusive, as on 'slower'")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results root (default ./results)")
    parser.add_argument("--run-id", help="run folder name (default: <date>-<time>-ab)")
    parser.add_argument("--job-summary", type=Path, default=os.environ.get("GITHUB_STEP_SUMMARY") or None,
                        help="Markdown file to append the verdict table to (default: $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin target and load generator to cores")
    timed = parser.add_argument_group("the timed comparison (--measure clock or both)")
    timed.add_argument("--method", choices=METHODS,
                       help="windows: both servers up, the load switched between them in short windows, a few "
                            "seconds a pair (the default for the reference target's echo and churn); runs: a "
                            "whole Locust run a side, a server start each (the default with --locustfile, --user, "
                            "--app or --target-cmd, and for the other scenarios)")
    timed.add_argument("--windows", type=int, default=DEFAULT_WINDOWS,
                       help=f"windows: load windows a side per pair (default {DEFAULT_WINDOWS})")
    timed.add_argument("--window-s", type=float, default=DEFAULT_WINDOW_S,
                       help=f"windows: seconds a window (default {DEFAULT_WINDOW_S:g})")
    timed.add_argument("--window-clients", type=int, default=DEFAULT_CLIENTS,
                       help=f"windows: connections loading a server, each one operation at a time "
                            f"(default {DEFAULT_CLIENTS})")
    timed.add_argument("--window-warmup", type=float, default=DEFAULT_WARMUP_S,
                       help=f"windows: seconds of load a server gets before its first window (default "
                            f"{DEFAULT_WARMUP_S:g})")
    add_load_options(parser, title="the load of each run, --method runs (default: the table's, "
                                   "docs/load-generator.md#parameters)")
    counted = parser.add_argument_group("the operation of the instruction count and of --method windows")
    counted.add_argument("--measure", choices=MEASURES, default="clock",
                         help="clock: timed runs under load (default); instructions: the server's instructions "
                              "per operation under callgrind, and the functions that changed; both")
    counted.add_argument("--instr-workload", choices=sorted(WORKLOADS),
                         help="one operation: echo (an acknowledged event) or churn (connect + disconnect); "
                              "default: churn for the churn scenario, else echo")
    counted.add_argument("--instr-event", default="echo", help="the event an echo operation sends (default echo)")
    counted.add_argument("--instr-payload", type=Workload.parse_payload, default=None, metavar="JSON",
                         help='its argument, as JSON (default {"payload": "xxx...", 64 characters})')
    counted.add_argument("--instr-auth", type=Workload.parse_payload, default=None, metavar="JSON",
                         help='the CONNECT auth payload, as JSON (e.g. {"token": "let-me-in"})')
    counted.add_argument("--instr-runs", type=int, default=DEFAULT_INSTR_RUNS,
                         help=f"counted runs a side (default {DEFAULT_INSTR_RUNS})")
    counted.add_argument("--instr-operations", type=int, default=DEFAULT_OPERATIONS,
                         help=f"operations counted a run (default {DEFAULT_OPERATIONS})")
    counted.add_argument("--instr-warmup", type=int, default=DEFAULT_WARMUP,
                         help=f"operations before the count starts (default {DEFAULT_WARMUP})")
    counted.add_argument("--instr-tolerance", type=float, default=DEFAULT_INSTR_TOLERANCE,
                         help=f"'slower' needs more than this change (default {DEFAULT_INSTR_TOLERANCE})")
    return parser


@contextlib.contextmanager
def sides_of(args: argparse.Namespace, run_dir: Path) -> Iterator[tuple[Side, Side]]:
    """Check out what the two sides need; the worktrees made here are removed on the way out."""
    repo = args.repo.resolve()
    if (problem := app_arguments_error(args)) is not None:
        raise AbInputError(problem)
    if args.app and (args.a_arg or args.b_arg):
        raise AbInputError("--a-arg and --b-arg are server flags of the reference target or --target-cmd; "
                           "with --app, compare two revisions (--base, --head)")
    comparing_configs = (args.a_arg or args.b_arg) and not args.base and not args.head
    made: list[Path] = []
    try:
        if comparing_configs:
            a_src = b_src = repo
            a_name, b_name = "A", "B"
        else:
            git(repo, "rev-parse", "--git-dir")
            if args.head and dirty(repo):
                raise AbInputError("the working tree has uncommitted changes that --head would not measure: "
                                   "commit them, or leave out --head to measure the working tree as B")
            base = resolve_ref(repo, args.base) if args.base else default_base(repo)
            a_src = run_dir / "src-a"
            git(repo, "worktree", "add", "--detach", str(a_src), base)
            made.append(a_src)
            a_name = args.base or f"base {base[:10]}"
            if args.head:
                head = resolve_ref(repo, args.head)
                b_src = run_dir / "src-b"
                git(repo, "worktree", "add", "--detach", str(b_src), head)
                made.append(b_src)
                b_name = args.head
            else:
                b_src, b_name = repo, "working tree"
        sides = []
        for key, src, name, extra in (("a", a_src, a_name, args.a_arg), ("b", b_src, b_name, args.b_arg)):
            try:
                if args.app:
                    [target] = targets_of_app_arguments(args, [args.app_mode], spec=app_of_side(args.app, repo, src),
                                                        one=True)
                    target = replace(target, cwd=src)
                else:
                    command, mode, server = target_command(args, extra)
                    target = CommandTarget(command, mode=mode, server=server, cwd=src)
            except TargetCommandError as exc:
                raise AbInputError(str(exc)) from None
            label = getattr(args, f"{key}_label") or name
            sides.append(Side(key, label, src, target, worktree=src in made))
        yield sides[0], sides[1]
    finally:
        for path in made:
            with contextlib.suppress(AbInputError):
                git(repo, "worktree", "remove", "--force", str(path))


def scenario_of(args: argparse.Namespace) -> Scenario:
    try:
        load = LoadShape(**given_load_options(args))
    except ValueError as exc:
        raise AbInputError(str(exc)) from None
    try:
        return single_user_scenario(args.locustfile, args.user, args.scenario, load)
    except LocustfileError as exc:
        raise AbInputError(str(exc)) from None


def metric_values(summary: dict[str, Any]) -> dict[str, tuple[str, Better, float]]:
    """label -> (path, better, value) of the metrics this run has (core/figures.py says which the A/B judges)."""
    main = summary.get("main_event") if isinstance(summary.get("main_event"), str) else None
    return {figure.label_for(main): (path, figure.better or "lower", value)
            for figure, path, value in judged(summary, "ab").values()}


def run_side_cell(side: Side, index: int, scenario: Scenario, run_dir: Path, progress: ProgressLine,
                  pin: bool, interrupted: threading.Event) -> CellResult:
    name = str(CellName(side.key, scenario.name, f"r{index:02d}"))
    plan = CellPlan(run_id=run_dir.name, target=side.target, scenario=scenario, run_dir=run_dir, pin_cores=pin,
                    name=name, extra_run_info={"ab_side": side.key, "ab_label": side.label})
    return progress.run(plan, f"[{side.key.upper()} {index}] {name}", interrupted)


@dataclass
class Measured:
    """Every run's value of each metric, by side and pair, and which way each metric is better."""

    #: metric -> side ("a", "b") -> pair index -> value
    values: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    better: dict[str, Better] = field(default_factory=dict)

    def add(self, label: str, side: str, better: Better, value: float, pair: int) -> None:
        self.values.setdefault(label, {"a": {}, "b": {}})[side][pair] = value
        self.better[label] = better

    def triples(self) -> dict[str, tuple[Better, list[float], list[float]]]:
        """metric -> (better, A's values, B's values) over the pairs where both runs have the metric."""
        out = {}
        for label, sides in self.values.items():
            pairs = sorted(sides["a"].keys() & sides["b"].keys())
            out[label] = (self.better[label], [sides["a"][i] for i in pairs], [sides["b"][i] for i in pairs])
        return out


@dataclass
class Stopping:
    """How many pairs ran, and why the runs stopped (said in ab.md)."""

    pairs: int = 0
    looks: int = 0
    reason: str = ""
    elapsed_s: float = 0.0


#: runs pair ``i`` (0-based) of both sides, adding its values to ``measured`` (or a side's failure)
PairRunner = Callable[[int, Measured], None]


def run_ab(a: Side, b: Side, run_pair: PairRunner, *, judge: SequentialJudge, first_look: int,
           budget_s: float, max_pairs: int, clock: Callable[[], float] = time.monotonic,
           interrupted: threading.Event | None = None) -> tuple[Measured, Stopping]:
    """Run pairs (:func:`runs_pair`, :func:`windows_pair`) and judge at the scheduled looks until all is decided.

    With ``budget_s`` 0 exactly ``first_look`` pairs run and are judged once.
    Otherwise pairs continue past the first look until the judge has decided
    every metric, ``max_pairs`` ran, or the next look cannot be reached within
    the budget at the pace so far. When ``interrupted`` is set, the run in
    flight ends (kept, not measured) and what the complete pairs show is
    judged once more, as one more look.
    """
    interrupted = interrupted or threading.Event()
    measured = Measured()
    stopping = Stopping()
    looks = look_schedule(first_look, first_look if budget_s == 0 else max(first_look, max_pairs))
    started = clock()
    for pair in range(looks[-1]):
        run_pair(pair, measured)
        stopping.elapsed_s = clock() - started
        if interrupted.is_set():
            stopping.reason = f"interrupted after {pair} complete pairs"
            if pair >= 2:  # one more look, at a moment the data did not choose
                stopping.looks += 1
                judge.look(measured.triples())
            return measured, stopping
        stopping.pairs = pair + 1
        if a.failure or b.failure:
            stopping.reason = "a side could not run"
            return measured, stopping
        if stopping.pairs not in looks:
            continue
        stopping.looks += 1
        if judge.look(measured.triples()):
            stopping.reason = f"every metric decided after {stopping.pairs} pairs"
            return measured, stopping
        if stopping.pairs == looks[-1]:
            break
        next_look = looks[looks.index(stopping.pairs) + 1]
        pace = stopping.elapsed_s / stopping.pairs
        if stopping.elapsed_s + pace * (next_look - stopping.pairs) > budget_s:
            stopping.reason = (f"the budget ({budget_s:g} s) could not reach the next look at {next_look} pairs "
                               f"({pace:.0f} s a pair); undecided: {', '.join(judge.undecided())}")
            return measured, stopping
    stopping.reason = (f"{stopping.pairs} pairs, as asked (--budget 0)" if budget_s == 0
                       else f"--max-pairs {max_pairs} reached; undecided: {', '.join(judge.undecided())}")
    return measured, stopping


def runs_pair(a: Side, b: Side, scenario: Scenario, run_dir: Path, *, pin: bool, interrupted: threading.Event,
              out: Any = None) -> PairRunner:
    """Pairs of whole runs: each side's server started, loaded by Locust for the scenario, reported, A B then B A."""
    progress = ProgressLine(out or sys.stdout)

    def run_pair(pair: int, measured: Measured) -> None:
        for letter in pair_order(pair):
            if interrupted.is_set():
                return
            run_one_side(a if letter == "A" else b, pair, scenario, run_dir, progress, pin, interrupted, measured)

    return run_pair


def windows_pair(a: Side, b: Side, plan: WindowPlan, run_dir: Path, *, pin: bool,
                 interrupted: threading.Event) -> PairRunner:
    """Pairs of alternating load windows on both servers at once (:mod:`sioharness.bench.ab_windows`)."""
    target_cores, loadgen_cores = core_split() if pin else (None, None)
    sides = {"a": a, "b": b}

    def run_pair(pair: int, measured: Measured) -> None:
        try:
            figures = run_window_pair({"a": a.target, "b": b.target}, plan, run_dir / f"pair-{pair + 1:02d}",
                                      pair=pair, target_cores=target_cores, loadgen_cores=loadgen_cores,
                                      interrupted=interrupted,
                                      say=lambda line: print(f"sioharness.bench.ab: {line}", flush=True))
        except WindowsError as exc:
            sides[exc.side].failure = str(exc)
            return
        if figures is None:
            return  # interrupted: the pair's windows are kept in its folder, not judged
        for side, values in figures.items():
            for label, value in values.items():
                measured.add(label, side, plan.metric_names()[label], value, pair)

    return run_pair


def run_one_side(side: Side, pair: int, scenario: Scenario, run_dir: Path, progress: ProgressLine, pin: bool,
                 interrupted: threading.Event, measured: Measured) -> None:
    """One run of one side; its metrics join ``measured``, or its failure stops that side."""
    if side.failure is not None:
        return  # it could not run: the other side's runs go on, and are kept
    result = run_side_cell(side, len(side.runs) + 1, scenario, run_dir, progress, pin, interrupted)
    side.runs.append(result)
    if result.status == "partial":
        return  # interrupted: the run is kept as it is, its figures are not used
    if result.status != "ok":
        lines = [line.strip() for line in (result.reason or result.status).splitlines() if line.strip()]
        side.failure = f"{side.label}: {' '.join(lines[:1] + lines[1:][-3:])}"  # the reason, its log's end
        return
    try:
        summary = build_cell_report(result.path, html=False).summary
    except ReportInputError as exc:
        side.failure = f"{side.label}: no report: {exc}"
        return
    for label, (_, better, value) in metric_values(summary).items():
        measured.add(label, side.key, better, value, pair)


def strip_plot(comparisons: Sequence[Comparison], a_label: str, b_label: str) -> str:
    """A PNG (base64) with every run's value per metric, A beside B: the spread behind each ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, len(comparisons)), figsize=(3.2 * max(1, len(comparisons)), 3.2))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, c in zip(axes, comparisons, strict=False):
        for x, vals, color in ((0, c.a_values, "C0"), (1, c.b_values, "C3")):
            ax.scatter([x + 0.06 * (i - len(vals) / 2) / max(1, len(vals)) for i in range(len(vals))], vals,
                       color=color, s=18)
            ax.hlines(float(sorted(vals)[len(vals) // 2]), x - 0.2, x + 0.2, color=color)
        ax.set_xticks([0, 1], [a_label[:14], b_label[:14]])
        ax.set_title(f"{c.metric}\n{c.ratio:.2f}x, {c.verdict}", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def stopping_notes(comparisons: Sequence[Comparison], stopping: Stopping) -> str:
    """How many pairs ran and why they stopped; for an undecided metric, the smallest change the runs could see."""
    lines = [f"- **runs:** {stopping.pairs} pairs in {stopping.elapsed_s:.0f} s, judged at {stopping.looks} "
             f"look(s); stopped: {stopping.reason}"]
    for c in comparisons:
        if c.verdict == "inconclusive":
            size = "no change of any size" if not math.isfinite(c.detectable) else f"about +/-{c.detectable:.0%}"
            lines.append(f"- **too noisy for the budget:** {c.metric} (runs vary by {spread(c.a_values):.1%} and "
                         f"{spread(c.b_values):.1%}); {len(c.a_values)} pairs could detect {size}")
    return "\n".join(lines) + "\n"


def write_outputs(run_dir: Path, a: Side, b: Side, comparisons: Sequence[Comparison], tolerance: float,
                  stopping: Stopping) -> str:
    markdown = render_markdown(comparisons, a_label=a.label, b_label=b.label)
    markdown += "\n" + stopping_notes(comparisons, stopping)
    failures = [s.failure for s in (a, b) if s.failure]
    if failures:
        markdown += "\n".join(f"- **could not run**: {f}" for f in failures) + "\n"
    write_text(run_dir / "ab.md", markdown)
    write_json(run_dir / "ab.json", {
        "a": {"label": a.label, "source": str(a.source), "command": a.target.command,
              "runs": [r.cell for r in a.runs], "failure": a.failure},
        "b": {"label": b.label, "source": str(b.source), "command": b.target.command,
              "runs": [r.cell for r in b.runs], "failure": b.failure},
        "tolerance": tolerance,
        "pairs": stopping.pairs, "looks": stopping.looks, "stopped": stopping.reason,
        "elapsed_s": round(stopping.elapsed_s, 3),
        "metrics": [{"metric": c.metric, "better": c.better, "a": list(c.a_values), "b": list(c.b_values),
                     "ratio": c.ratio, "ci_low": c.ci_low, "ci_high": c.ci_high if math.isfinite(c.ci_high) else None,
                     "alpha": c.alpha, "verdict": c.verdict} for c in comparisons],
    })
    if comparisons:
        png = strip_plot(comparisons, a.label, b.label)
        import html as html_lib

        page = (f"<!doctype html><meta charset='utf-8'><title>A/B: {html_lib.escape(b.label)} vs "
                f"{html_lib.escape(a.label)}</title><body style='font-family:sans-serif;max-width:1100px'>"
                f"<h1>A/B: {html_lib.escape(b.label)} vs {html_lib.escape(a.label)}</h1>"
                f"<pre>{html_lib.escape(markdown)}</pre><img style='max-width:100%' alt='every pair, per metric' "
                f"src='data:image/png;base64,{png}'>"
                + ("<p><a href='compare.html'>every run side by side, with the latency percentile curves "
                   "overlaid</a></p>" if a.runs or b.runs else "") + "</body>")
        write_text(run_dir / "ab.html", page)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = bad_numbers(args)
    if problem:
        print(f"sioharness.bench.ab: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        run_dir = claim_run_dir(args.results, args.run_id, "ab")
    except RunDirError as exc:
        print(f"sioharness.bench.ab: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # Signals end the run in flight and still judge, write ab.md and remove the worktrees; a second
    # Ctrl-C while the reports build changes nothing more.
    with interrupt_on_signals("sioharness.bench.ab",
                              "ending the run in flight, then judging the pairs so far") as interrupted:
        comparisons: list[Comparison] = []
        markdown = ""
        counted: str | None = None
        try:
            scenario = scenario_of(args)
            with sides_of(args, run_dir) as (a, b):
                if args.measure in ("clock", "both"):
                    more = "" if args.budget == 0 else \
                        f", more until every metric is decided (budget {args.budget:g} s)"
                    if method_of(args) == "windows":
                        plan = window_plan(args, scenario)
                        run_pair = windows_pair(a, b, plan, run_dir, pin=not args.no_pin, interrupted=interrupted)
                        what = (f"pairs of {plan.windows} alternating {plan.window_s:g} s windows a side "
                                f"({plan.workload.operation}, {plan.clients} connections)")
                    else:
                        run_pair = runs_pair(a, b, scenario, run_dir, pin=not args.no_pin, interrupted=interrupted)
                        what = f"pairs of {scenario.name} runs ({scenario.load.duration_s:g} s), interleaved"
                    print(f"sioharness.bench.ab: A = {a.label}, B = {b.label}; {args.repeats} {what}{more}; results in "
                          f"{run_dir}", flush=True)
                    sequential = SequentialJudge(tolerance=args.tolerance, sequential=args.budget > 0)
                    _, stopping = run_ab(a, b, run_pair, judge=sequential, first_look=args.repeats,
                                         budget_s=args.budget, max_pairs=args.max_pairs, interrupted=interrupted)
                    comparisons = sequential.comparisons()
                    markdown = write_outputs(run_dir, a, b, comparisons, args.tolerance, stopping)
                if args.measure in ("instructions", "both") and not interrupted.is_set():
                    counted, counted_md = count_instructions(args, a, b, scenario, run_dir, interrupted)
                    markdown = "\n".join(filter(None, [markdown, counted_md]))
                    write_text(run_dir / "ab.md", markdown + "\n")
        except AbInputError as exc:
            print(f"sioharness.bench.ab: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return report_and_exit(args, run_dir, a, b, comparisons, markdown, interrupted, counted=counted)


def method_of(args: argparse.Namespace) -> str:
    """``--method``, or its default: windows for the reference target's echo and churn, runs otherwise."""
    if args.method:
        return str(args.method)
    own = args.locustfile or args.user or args.app or args.target_cmd
    return "runs" if own or args.scenario not in WINDOW_SCENARIOS else "windows"


def workload_of(args: argparse.Namespace, scenario: Scenario) -> Workload:
    """The one operation the instruction count and the windows send: ``--instr-workload`` or the scenario's kind."""
    kind = args.instr_workload or ("churn" if spec_of(scenario.name).rank_by == RANK_CONNECTS else "echo")
    return Workload(kind=kind, event=args.instr_event, auth=args.instr_auth,
                    **({"payload": args.instr_payload} if args.instr_payload is not None else {}))


def window_plan(args: argparse.Namespace, scenario: Scenario) -> WindowPlan:
    return WindowPlan(workload_of(args, scenario), clients=args.window_clients, window_s=args.window_s,
                      windows=args.windows, warmup_s=args.window_warmup)


def count_instructions(args: argparse.Namespace, a: Side, b: Side, scenario: Scenario, run_dir: Path,
                       interrupted: threading.Event) -> tuple[str | None, str]:
    """(verdict, Markdown) of the instruction count; the verdict is None when a side could not be counted."""
    workload = workload_of(args, scenario)
    sides = [SideCounts(side.key, side.label, side.source, side.target) for side in (a, b)]
    print(f"sioharness.bench.ab: counting instructions per {workload.operation}: {args.instr_runs} runs a side of "
          f"{args.instr_operations:,} operations under callgrind, A B A B ...", flush=True)
    try:
        run_instructions(sides[0], sides[1], workload, run_dir, runs=args.instr_runs,
                         operations=args.instr_operations, warmup=args.instr_warmup, interrupted=interrupted,
                         say=lambda line: print(f"sioharness.bench.ab: {line}", flush=True))
    except InstructionsError as exc:
        print(f"sioharness.bench.ab: {exc}", file=sys.stderr)
        return None, f"### Instructions per {workload.operation}: not counted\n\n{exc}\n"
    if not (sides[0].runs and sides[1].runs):
        return None, ""
    verdict = judge(sides[0].values, sides[1].values, args.instr_tolerance)
    return verdict.verdict, write_instruction_outputs(run_dir, sides[0], sides[1], workload, verdict,
                                                      args.instr_tolerance)


def report_and_exit(args: argparse.Namespace, run_dir: Path, a: Side, b: Side, comparisons: Sequence[Comparison],
                    markdown: str, interrupted: threading.Event, *, counted: str | None = None) -> int:
    """Every run's report, the verdict table where it is read, and the exit status."""
    if comparisons and (a.runs or b.runs):
        build_reports([run_dir], quiet=True, stdout=io.StringIO(), stderr=io.StringIO())  # ab.md says what counts
    print("\n" + markdown)
    if args.job_summary:
        with contextlib.suppress(OSError), open(args.job_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    for side in (a, b):
        if side.failure:
            print(f"sioharness.bench.ab: side {side.key.upper()} could not run ({side.failure}); "
                  "the other side's results "
                  f"are kept in {run_dir}", file=sys.stderr)
    if interrupted.is_set():
        return EXIT_INTERRUPTED
    clocked = args.measure in ("clock", "both")
    if a.failure or b.failure or (clocked and not comparisons):
        return EXIT_FAILED
    if args.measure != "clock" and counted is None:
        return EXIT_FAILED
    if clocked:
        print(f"sioharness.bench.ab: report {run_dir / 'ab.html'}")
    failing = ("slower", "inconclusive") if args.fail_on_inconclusive else ("slower",)
    verdicts = [c.verdict for c in comparisons] + ([counted] if counted else [])
    return EXIT_FAILED if any(v in failing for v in verdicts) else EXIT_OK


def bad_numbers(args: argparse.Namespace) -> str | None:
    """The first numeric option out of range, named; None when all are usable."""
    if args.repeats < 6:
        return f"--repeats must be >= 6 (fewer pairs cannot reach 95% confidence), got {args.repeats}"
    if not 0 <= args.tolerance < 1:
        return f"--tolerance must be in 0..1, got {args.tolerance}"
    if not (math.isfinite(args.budget) and args.budget >= 0):
        return f"--budget must be a number of seconds >= 0, got {args.budget}"
    if args.max_pairs < args.repeats:
        return f"--max-pairs ({args.max_pairs}) must be at least --repeats ({args.repeats})"
    if args.measure != "instructions" and method_of(args) == "windows":
        if args.locustfile or args.user:
            return ("--method windows sends one operation of its own (--instr-workload, --instr-event); "
                    "a locustfile's users run with --method runs")
        if not (args.instr_workload or args.scenario in WINDOW_SCENARIOS):
            return (f"--method windows sends an echo or a connect + disconnect, not the {args.scenario} scenario: "
                    "use --method runs, or --instr-workload")
        try:
            WindowPlan(Workload(), clients=args.window_clients, window_s=args.window_s, windows=args.windows,
                       warmup_s=args.window_warmup)
        except ValueError as exc:
            return str(exc)
    if args.measure != "clock":
        if (missing := missing_tools()) is not None:
            return f"--measure {args.measure}: {missing}"
        for name in ("instr_runs", "instr_operations"):
            if getattr(args, name) < 1:
                return f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}"
        if args.instr_warmup < 0:
            return f"--instr-warmup must be >= 0, got {args.instr_warmup}"
        if not 0 <= args.instr_tolerance < 1:
            return f"--instr-tolerance must be in 0..1, got {args.instr_tolerance}"
        if "gunicorn" in (args.target or "") and not (args.app or args.target_cmd) or \
                "gunicorn" in (args.app_server or ""):
            return "--measure instructions counts one server process: use a dev server (--target gevent-dev, " \
                   "--app-server dev)"
    return None


if __name__ == "__main__":
    sys.exit(main())
