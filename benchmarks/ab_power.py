"""How well does the A/B check (``python -m sioharness.bench.ab``) see a regression? A power study on this machine.

One pool of measurements is made, interleaved: the reference target
(gevent-dev, echo) as is (A), and with ``--handler-cost-us`` set to add 5%
and 10% of its measured server CPU per ack (B5, B10). Trials are then drawn
from the pool: ``--trials`` times, a sequence of A against a sequence of B
(without replacement), judged exactly as ``sioharness.bench.ab`` judges a pull request
with a budget: the first look after ``--first`` pairs, more pairs until the
verdict is decided, at most as many pairs as the budget holds at the pace
measured (``--budget``). Drawing trials from one measured pool, instead of
running every trial afresh, is what keeps this to minutes.

``--method windows`` (the default, as ``sioharness.bench.ab``'s): a round starts one
server per level, and a second A (A2), and gives each ``--windows`` load
windows, alternating (:mod:`sioharness.bench.ab_windows`); a trial's pair is one
round's A and B. A vs A pairs A with A2 of the same round: two servers of
the same code, as a real A/B of an unchanged revision compares.
``--method runs``: a round is one whole Locust run per level; A vs A pairs
runs of two different rounds.

    .venv/bin/python -m benchmarks.ab_power --pool 40 --trials 10
    .venv/bin/python -m tests.busy_core -- .venv/bin/python -m benchmarks.ab_power   # on a busy machine
"""
from __future__ import annotations

import argparse
import json
import random
import shlex
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from reports.build import build_cell_report
from sioharness.bench.ab_windows import DEFAULT_WINDOW_S, DEFAULT_WINDOWS, WindowPlan, WindowsError, run_window_pair
from sioharness.bench.abstats import Better, SequentialJudge, look_schedule, spread
from sioharness.bench.cell import CellPlan, core_split, run_cell
from sioharness.bench.instr_workload import Workload
from sioharness.bench.matrix import DEFAULT_RESULTS
from sioharness.bench.own_app import CommandTarget
from sioharness.bench.profile import LoadShape, Scenario, TargetSpec
from sioharness.core.paths import IMPORT_ROOT
from sioharness.core.runinfo import new_run_id

CPU_METRIC = ("server.cpu_s_per_1k_acks", "lower")
THROUGHPUT_METRIC = ("throughput.acks_per_s", "higher")


def lookup(summary: dict, path: str) -> float | None:
    value: object = summary
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def run_one(run_dir: Path, name: str, cost_us: float, load: LoadShape) -> dict:
    plan = CellPlan(run_id=run_dir.name, target=TargetSpec("gevent", "dev"), scenario=Scenario("echo", load),
                    run_dir=run_dir, name=name, target_args=["--handler-cost-us", f"{cost_us:g}"])
    result = run_cell(plan, interrupted=threading.Event())
    if result.status != "ok":
        raise SystemExit(f"ab_power: {name} failed: {result.reason}")
    summary = build_cell_report(result.path, html=False).summary
    return {"cpu": lookup(summary, CPU_METRIC[0]), "acks_per_s": lookup(summary, THROUGHPUT_METRIC[0])}


def run_windows_round(run_dir: Path, round_no: int, costs: dict[str, float], plan: WindowPlan) -> dict[str, dict]:
    """One round of the windows method: a server per level (and A2), windows alternating between them."""
    targets = {key: CommandTarget(shlex.join(["python", "-m", "target_app", "--async-mode", "gevent", "--server",
                                              "dev", "--host", "{host}", "--port", "{port}", "--handler-cost-us",
                                              f"{cost:g}"]), mode="gevent", server="dev", cwd=IMPORT_ROOT)
               for key, cost in costs.items()}
    target_cores, loadgen_cores = core_split()
    try:
        figures = run_window_pair(targets, plan, run_dir / f"round-{round_no + 1:02d}", pair=round_no,
                                  target_cores=target_cores, loadgen_cores=loadgen_cores)
    except WindowsError as exc:
        raise SystemExit(f"ab_power: round {round_no + 1}: {exc}") from None
    assert figures is not None  # nothing interrupts it
    cpu_label, rate_label = list(plan.metric_names())[:2]
    return {key: {"cpu": values[cpu_label], "acks_per_s": values[rate_label]} for key, values in figures.items()}


def detection(pool_a: list[float], pool_b: list[float], *, first: int, max_pairs: int, trials: int,
              better: Better, tolerance: float, seed: int, same_pool: bool = False) -> tuple[Counter[str], list[int]]:
    """Verdicts of ``trials`` sequential draws of pairs, and the pairs each one took.

    A vs A (``same_pool``) pairs runs of two different rounds: no pair shares
    its moment, so this false-alarm rate is the worse case.
    """
    rng = random.Random(seed)
    verdicts: Counter[str] = Counter()
    pairs_used = []
    rounds = range(len(pool_a))
    for _ in range(trials):
        # A pair is two runs of one measuring round, made side by side as sioharness.bench.ab makes them.
        if same_pool:
            drawn = rng.sample(rounds, 2 * max_pairs)
            a, b = [pool_a[i] for i in drawn[:max_pairs]], [pool_a[i] for i in drawn[max_pairs:]]
        else:
            drawn = rng.sample(rounds, max_pairs)
            a, b = [pool_a[i] for i in drawn], [pool_b[i] for i in drawn]
        judge = SequentialJudge(tolerance=tolerance)
        for pairs in look_schedule(first, max_pairs):
            if judge.look({"m": (better, a[:pairs], b[:pairs])}):
                break
        verdicts[judge.comparisons()[0].verdict] += 1
        pairs_used.append(pairs)
    return verdicts, pairs_used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_power", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=("windows", "runs"), default="windows",
                        help="how a pair is measured, as sioharness.bench.ab's --method (default windows)")
    parser.add_argument("--windows", type=int, default=DEFAULT_WINDOWS, help="windows: windows a level per round")
    parser.add_argument("--window-s", type=float, default=DEFAULT_WINDOW_S, help="windows: seconds a window")
    parser.add_argument("--pool", type=int, default=40, help="rounds measured (default 40)")
    parser.add_argument("--first", type=int, default=7, help="pairs before the first look (default 7)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds a trial may take (default 300)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--levels", default="0.05,0.10", help="added server CPU per ack, as shares")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--from", dest="from_json", type=Path, metavar="POWER_JSON",
                        help="judge the pools of an earlier study's power.json again, measuring nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        measured = json.loads(args.from_json.read_text())
        report(args, args.from_json.parent, measured["cpu_per_ack_us"], measured["costs_us"], measured["pools"],
               measured["pair_s"])
        return 0
    levels = [float(x) for x in args.levels.split(",")]
    load = LoadShape(users=args.users, spawn_rate=50, duration_s=args.duration, warmup_s=2.0)
    plan = WindowPlan(Workload(), windows=args.windows, window_s=args.window_s)
    run_dir = args.results / new_run_id("ab-power")
    run_dir.mkdir(parents=True)

    if args.method == "windows":
        calibration = run_windows_round(run_dir, -1, {"A": 0.0}, plan)["A"]
    else:
        calibration = run_one(run_dir, "calibrate", 0.0, load)
    measuring_started = time.monotonic()
    cpu_per_ack_us = calibration["cpu"] * 1000  # s per 1k acks -> us per ack
    costs = {"A": 0.0} | {f"B{round(level * 100)}": level * cpu_per_ack_us for level in levels}
    print(f"ab_power: server CPU per ack {cpu_per_ack_us:.1f} us; added per event: "
          + ", ".join(f"{k} {v:.1f} us" for k, v in costs.items()), flush=True)
    pools: dict[str, list[dict]] = {key: [] for key in costs}
    order = list(costs)
    if args.method == "windows":
        pools["A2"] = []
        for round_no in range(args.pool):
            measured = run_windows_round(run_dir, round_no, costs | {"A2": 0.0}, plan)
            for key, values in measured.items():
                pools[key].append(values)
            print(f"ab_power: round {round_no + 1}/{args.pool} done", flush=True)
        # A sioharness.bench.ab pair starts and loads two servers where a round here did len(pools).
        pair_s = 2 * (time.monotonic() - measuring_started) / (args.pool * len(pools))
    else:
        for round_no in range(args.pool):
            for key in (order if round_no % 2 == 0 else order[::-1]):  # A B5 B10, then B10 B5 A, ...
                pools[key].append(run_one(run_dir, f"{key.lower()}--echo--r{round_no + 1:02d}", costs[key], load))
            print(f"ab_power: round {round_no + 1}/{args.pool} done", flush=True)
        # A pair of sioharness.bench.ab runs takes what two runs took here (each with its start and report).
        pair_s = 2 * (time.monotonic() - measuring_started) / (args.pool * len(costs))
    report(args, run_dir, cpu_per_ack_us, costs, pools, pair_s)
    return 0


def report(args: argparse.Namespace, run_dir: Path, cpu_per_ack_us: float, costs: dict[str, float],
           pools: dict[str, list[dict]], pair_s: float) -> None:
    """Judge the trials drawn from the pools; power.json and the table."""
    pool_size = len(pools["A"])
    # A vs A of the runs method draws two disjoint sets of rounds; with a second A server per round, one.
    max_pairs = max(args.first, min(int(args.budget // pair_s), pool_size if "A2" in pools else pool_size // 2))
    rows = []
    for key in costs:
        for metric, (path, better) in (("server CPU per 1k acks", CPU_METRIC), ("acks/s", THROUGHPUT_METRIC)):
            field = "cpu" if path == CPU_METRIC[0] else "acks_per_s"
            a = [run[field] for run in pools["A"]]
            # A vs A: A against the second A server of each round where there is one, else other rounds' A.
            twin = key == "A" and "A2" in pools
            b = [run[field] for run in pools["A2" if twin else key]]
            verdicts, pairs_used = detection(a, b, first=args.first, max_pairs=max_pairs, trials=args.trials,
                                             better=better, tolerance=args.tolerance, seed=7,  # type: ignore[arg-type]
                                             same_pool=key == "A" and not twin)
            rows.append({"level": key, "metric": metric, "pool_ratio": statistics.median(b) / statistics.median(a),
                         "spread": spread(a), "verdicts": dict(verdicts), "pairs": sorted(pairs_used),
                         "trials": args.trials})
    write = json.dumps({"cpu_per_ack_us": cpu_per_ack_us, "costs_us": costs, "pair_s": pair_s,
                        "max_pairs": max_pairs, "pools": pools, "rows": rows}, indent=1)
    (run_dir / ("power.json" if not args.from_json else f"power-judged-{new_run_id('again')}.json")).write_text(write)
    print(f"\n{args.trials} trials; first look after {args.first} pairs, at most {max_pairs} pairs "
          f"({args.budget:g} s budget at {pair_s:.1f} s a pair); tolerance {args.tolerance:.0%}\n")
    print("| change | metric | ratio of pool medians | run-to-run spread | slower | faster | no change "
          "| inconclusive | pairs (median) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        change = "none (A vs A)" if row["level"] == "A" else f"+{row['level'][1:]}% server CPU per ack"
        counts = [f"{row['verdicts'].get(v, 0)}/{row['trials']}" for v in ("slower", "faster", "no change",
                                                                           "inconclusive")]
        print(f"| {change} | {row['metric']} | {row['pool_ratio']:.3f}x | {row['spread']:.1%} | "
              + " | ".join(counts) + f" | {statistics.median(row['pairs']):g} |")
    print(f"\nab_power: results in {run_dir}")


if __name__ == "__main__":
    sys.exit(main())
