"""``python -m sioharness.bench.capacity``: the most users a target serves within an SLO.

For each target, run one scenario at a growing number of users (a fresh
target per step) until a step breaks the SLO: p99 of the scenario's main
event above ``--slo-p99-ms``, errors above ``--max-error-ratio``, or fewer
users connected than asked. The highest step that held is the answer: "max
clients at SLO", with the throughput (acks/s, connects/s) it held.
Bounded by ``--max-steps``, ``--max-users`` and ``--time-budget``.
``--gc default,freeze,off`` searches each target once per garbage-collector
setting of the reference target (cells ``gevent-dev--echo--gc-off-u00020``).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from reports.build import build_cell_report
from reports.errors import ReportInputError
from sioharness.bench.cell import CellPlan
from sioharness.bench.locustfile_check import single_user_scenario
from sioharness.bench.matrix import DEFAULT_RESULTS, ProgressLine, split_list
from sioharness.bench.own_app import add_app_arguments, app_arguments_error, targets_of_app_arguments
from sioharness.bench.profile import (
    SCENARIO_USERS,
    ProfileError,
    Scenario,
    Target,
    TargetSpec,
    command_targets,
    gc_settings,
)
from sioharness.core.cells import CellName, capacity_variant
from sioharness.core.figures import lookup
from sioharness.core.files import write_json, write_text
from sioharness.core.load_params import BY_NAME, LoadShape, add_load_options, given_load_options
from sioharness.core.run_dirs import RunDirError, claim_run_dir
from sioharness.core.scenarios import RANK_CONNECTS, spec_of
from target_app.gc_setting import GcSetting

# Scenarios whose users hold one connection each for the whole step.
PERSISTENT = {"echo", "broadcast", "rooms", "idle", "reference"}


@dataclass(frozen=True)
class StepVerdict:
    users: int
    held: bool
    why: str
    p99_ms: float | None
    error_ratio: float | None
    acks_per_s: float | None
    connects_per_s: float | None
    peak_connected: int | None
    cell: str


def judge(summary: dict[str, Any], users: int, scenario: str, slo_p99_ms: float, max_error_ratio: float,
          cell: str) -> StepVerdict:
    """Did this step hold the SLO? Pure: reads a summary.json document."""
    ranked_by_connects = spec_of(scenario).rank_by == RANK_CONNECTS \
        or lookup(summary, "primary.key") == "connections.connects_per_s"
    main = summary.get("main_event") or ("connect" if ranked_by_connects else None)
    p99_us = lookup(summary, f"latency.{main}.p99_us") if main else None
    p99_ms = p99_us / 1000 if isinstance(p99_us, (int, float)) else None
    errors = summary.get("error_ratio")
    peak = lookup(summary, "connections.peak_concurrent")
    reasons = []
    if summary.get("status") != "ok":
        reasons.append(f"cell {summary.get('status')}: {lookup(summary, 'run.reason')}")
    if p99_ms is None:
        reasons.append("no latency measured")
    elif p99_ms > slo_p99_ms:
        reasons.append(f"p99 {p99_ms:.1f} ms > {slo_p99_ms:g} ms")
    if isinstance(errors, (int, float)) and errors > max_error_ratio:
        reasons.append(f"errors {errors:.2%} > {max_error_ratio:.2%}")
    if scenario in PERSISTENT and isinstance(peak, int) and peak < users:
        reasons.append(f"only {peak} of {users} users connected")
    reasons += target_limits_hit(summary.get("errors") or {})
    return StepVerdict(users=users, held=not reasons, why="; ".join(reasons) or "held", p99_ms=p99_ms,
                       error_ratio=errors, acks_per_s=lookup(summary, "throughput.acks_per_s"),
                       connects_per_s=lookup(summary, "connections.connects_per_s"),
                       peak_connected=peak, cell=cell)


#: emits/s per user of a capacity search unless told otherwise: paced clients
PACED_EMIT_RATE = 2.0

#: what the reference target's refusals say when it is full (target_app/admission.py)
TARGET_LIMITS = ("descriptor limit", "connection limit")


def target_limits_hit(errors: dict[str, int]) -> list[str]:
    """"target at its descriptor limit (N refused)", for each limit the step's errors name."""
    found = []
    for limit in TARGET_LIMITS:
        refused = sum(count for text, count in errors.items() if limit in text.lower())
        if refused:
            found.append(f"target at its {limit} ({refused} refused)")
    return found


def next_users(users: int, factor: float, increment: int) -> int:
    return max(users + 1, int(users * factor) + increment)


def search(target: Target, scenario: Scenario, run_dir: Path, *, start: int, factor: float, increment: int,
           max_users: int, max_steps: int, time_budget_s: float, slo_p99_ms: float, max_error_ratio: float,
           target_args: Sequence[str] = (), pin: bool = True, interrupted: threading.Event | None = None,
           out=sys.stdout, gc: str = "default") -> list[StepVerdict]:
    steps: list[StepVerdict] = []
    progress = ProgressLine(out)
    deadline = time.monotonic() + time_budget_s
    users = start
    while len(steps) < max_steps and users <= max_users and not (interrupted and interrupted.is_set()):
        if time.monotonic() + scenario.load.duration_s > deadline:
            print(f"capacity: time budget of {time_budget_s:.0f} s reached", file=out)
            break
        step = replace(scenario,
                       load=replace(scenario.load, users=users, spawn_rate=max(scenario.load.spawn_rate, users)))
        variant = "-".join(filter(None, [GcSetting.parse(gc).variant, capacity_variant(users)]))
        plan_cell = str(CellName(target.label, scenario.name, variant))
        plan = CellPlan(run_id=run_dir.name, target=target, scenario=step, run_dir=run_dir,
                        target_args=target_args, pin_cores=pin, name=plan_cell,
                        extra_run_info={"capacity_step_users": users}, gc=gc)
        result = progress.run(plan, f"[step {len(steps) + 1}] {plan_cell}", interrupted)
        try:
            summary = build_cell_report(result.path, html=False).summary
        except ReportInputError as exc:
            summary = {"status": "failed", "run": {"reason": str(exc)}}
        verdict = judge(summary, users, scenario.name, slo_p99_ms, max_error_ratio, plan_cell)
        print(f"  {'held' if verdict.held else 'broke'}: {verdict.why}", file=out, flush=True)
        steps.append(verdict)
        if not verdict.held:
            break
        users = next_users(users, factor, increment)
    return steps


def capacity_of(steps: Sequence[StepVerdict]) -> StepVerdict | None:
    held = [s for s in steps if s.held]
    return held[-1] if held else None


def render_markdown(results: dict[str, list[StepVerdict]], scenario: str, slo_p99_ms: float,
                    max_error_ratio: float) -> str:
    lines = [f"## Capacity at SLO: {scenario}", "",
             f"SLO: p99 of the main event <= {slo_p99_ms:g} ms, errors <= {max_error_ratio:.1%}, every user connected.",
             "", "| target | max clients at SLO | acks/s there | connects/s there | first broken step | why |",
             "|---|---:|---:|---:|---:|---|"]
    for target, steps in results.items():
        best = capacity_of(steps)
        broken = next((s for s in steps if not s.held), None)
        lines.append(
            f"| {target} | {best.users if best else 'none'} | "
            f"{_num(best.acks_per_s) if best else ''} | {_num(best.connects_per_s) if best else ''} | "
            f"{broken.users if broken else 'not reached'} | {broken.why if broken else 'limit of the search'} |")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sioharness.bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="threading-dev,eventlet-dev,gevent-dev,asgi-uvicorn",
                        help="comma-separated targets (mode-server)")
    parser.add_argument("--scenario", default="echo", choices=sorted(SCENARIO_USERS))
    parser.add_argument("--start", type=int, default=10, help="users at the first step")
    parser.add_argument("--factor", type=float, default=2.0, help="users grow by this factor per step")
    parser.add_argument("--increment", type=int, default=0, help="and by this many users per step")
    parser.add_argument("--max-users", type=int, default=2000)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--step-duration", type=float, default=8.0, help="seconds per step")
    parser.add_argument("--slo-p99-ms", type=float, default=50.0)
    parser.add_argument("--max-error-ratio", type=float, default=0.01)
    parser.add_argument("--time-budget", type=float, default=600.0, help="seconds for the whole search")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--run-id")
    parser.add_argument("--target-arg", action="append", default=[], metavar="ARG")
    parser.add_argument("--gc", default="default", metavar="SETTING[,SETTING]",
                        help="search each target once per garbage-collector setting "
                             "(default, freeze, off, thresholds:A,B,C)")
    parser.add_argument("--no-pin", action="store_true")
    # Paced by default: "max clients" means clients at a realistic pace; flat-out
    # users (--emit-rate 0) measure the server's throughput, and cap at a few dozen clients.
    add_load_options(parser, skip=("users", "duration_s"),
                     title=f"each step's load (default: the table's, docs/load-generator.md#parameters; but "
                           f"--emit-rate {PACED_EMIT_RATE:g}, and --start and --step-duration set users and duration)")
    own = parser.add_argument_group("your own app (docs/own-app.md)")
    own.add_argument("--locustfile", type=Path, help="search with a user class of this locustfile")
    own.add_argument("--user", help="the user class (default: the locustfile's only one)")
    add_app_arguments(own)
    own.add_argument("--target-cmd", metavar="COMMAND", help="start your server per step: a command with {port}")
    own.add_argument("--modes", metavar="MODE[,MODE]",
                     help="one search per mode: --app's (default threading,eventlet,gevent) or --target-cmd's {mode}")
    own.add_argument("--app-name", default="app", help="the server part of the cells' names")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if (problem := app_arguments_error(args)) is not None:
            raise ValueError(problem)
        targets: list[Target]
        if args.app:
            targets = list(targets_of_app_arguments(args, split_list(args.modes)))
        elif args.target_cmd:
            targets = list(command_targets(args.target_cmd, split_list(args.modes), args.app_name))
        else:
            targets = [TargetSpec.parse(t.strip()) for t in args.targets.split(",") if t.strip()]
        given = {"emit_rate": PACED_EMIT_RATE} | given_load_options(args)
        load = LoadShape(**({"spawn_rate": max(BY_NAME["spawn_rate"].default, args.start)} | given),
                         users=args.start, duration_s=args.step_duration)
        if args.start < 1 or args.factor < 1 or args.increment < 0 or args.max_steps < 1:
            raise ValueError("--start and --max-steps must be >= 1, --factor >= 1, --increment >= 0")
        if args.factor == 1 and args.increment == 0:
            raise ValueError("--factor 1 with --increment 0 would never grow")
        scenario = single_user_scenario(args.locustfile, args.user, args.scenario, load)
        gcs = gc_settings(split_list(args.gc) or [], "--gc")
        if gcs != ("default",) and (args.target_cmd or args.app):
            raise ProfileError("--gc applies to the reference targets, not to your app (it sets its own)")
    except ValueError as exc:  # ProfileError, LocustfileError and TargetCommandError are ValueErrors
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    try:
        run_dir = claim_run_dir(args.results, args.run_id, f"capacity-{scenario.name}")
    except RunDirError as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    interrupted = threading.Event()
    results: dict[str, list[StepVerdict]] = {}
    started = time.monotonic()
    for target in targets:
        for gc in gcs:
            label = " ".join(filter(None, [target.label, GcSetting.parse(gc).variant]))
            budget = args.time_budget - (time.monotonic() - started)
            print(f"capacity: {label}, {scenario.name}, from {args.start} users", flush=True)
            results[label] = search(
                target, scenario, run_dir, start=args.start, factor=args.factor, increment=args.increment,
                max_users=args.max_users, max_steps=args.max_steps, time_budget_s=budget,
                slo_p99_ms=args.slo_p99_ms, max_error_ratio=args.max_error_ratio,
                target_args=args.target_arg, pin=not args.no_pin, interrupted=interrupted, gc=gc)
    markdown = render_markdown(results, scenario.name, args.slo_p99_ms, args.max_error_ratio)
    write_text(run_dir / "capacity.md", markdown)
    write_json(run_dir / "capacity.json", {
        "scenario": scenario.name, "slo_p99_ms": args.slo_p99_ms, "max_error_ratio": args.max_error_ratio,
        "targets": {t: {"max_users_at_slo": (best.users if (best := capacity_of(s)) else None),
                        "steps": [asdict(v) for v in s]} for t, s in results.items()},
    })
    print("\n" + markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
