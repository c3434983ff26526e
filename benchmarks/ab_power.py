"""How well does the A/B check (``python -m bench.ab``) see a regression? A power study on this machine.

One pool of runs is measured, interleaved: the reference target (gevent-dev,
echo) as is (A), and with ``--handler-cost-us`` set to add 5% and 10% of
its measured server CPU per ack (B5, B10). Trials are then drawn from the
pool: ``--trials`` times, ``--per-side`` runs of A against as many of B
(without replacement), each judged by :func:`bench.abstats.compare` exactly
as ``bench.ab`` judges a pull request. A vs A (two disjoint draws of A) gives
the false-alarm rate. Drawing trials from one measured pool, instead of
running every trial afresh, is what keeps this to minutes.

    .venv/bin/python -m benchmarks.ab_power --pool 16 --per-side 5 --trials 10
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
from pathlib import Path

from bench.abstats import compare
from bench.cell import CellPlan, run_cell
from bench.matrix import DEFAULT_RESULTS
from bench.profile import LoadShape, Scenario, TargetSpec
from core.runinfo import new_run_id
from reports.build import build_cell_report

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


def detection(pool_a: list[float], pool_b: list[float], *, per_side: int, trials: int, better: str,
              tolerance: float, seed: int, same_pool: bool = False) -> tuple[int, int]:
    """(trials judged slower, trials judged faster) of ``trials`` draws."""
    rng = random.Random(seed)
    slower = faster = 0
    for trial in range(trials):
        if same_pool:
            drawn = rng.sample(pool_a, 2 * per_side)
            a, b = drawn[:per_side], drawn[per_side:]
        else:
            a, b = rng.sample(pool_a, per_side), rng.sample(pool_b, per_side)
        verdict = compare("m", a, b, better=better, tolerance=tolerance, seed=trial).verdict  # type: ignore[arg-type]
        slower += verdict == "slower"
        faster += verdict == "faster"
    return slower, faster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab_power", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=16, help="runs measured per level (default 16)")
    parser.add_argument("--per-side", type=int, default=5, help="runs per side in a trial (default 5)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--levels", default="0.05,0.10", help="added server CPU per ack, as shares")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    levels = [float(x) for x in args.levels.split(",")]
    load = LoadShape(users=args.users, spawn_rate=50, duration_s=args.duration, warmup_s=2.0)
    run_dir = args.results / new_run_id("ab-power")
    run_dir.mkdir(parents=True)

    calibration = run_one(run_dir, "calibrate", 0.0, load)
    cpu_per_ack_us = calibration["cpu"] * 1000  # s per 1k acks -> us per ack
    costs = {"A": 0.0} | {f"B{round(level * 100)}": level * cpu_per_ack_us for level in levels}
    print(f"ab_power: server CPU per ack {cpu_per_ack_us:.1f} us; added per event: "
          + ", ".join(f"{k} {v:.1f} us" for k, v in costs.items()), flush=True)
    pools: dict[str, list[dict]] = {key: [] for key in costs}
    order = list(costs)
    for round_no in range(args.pool):
        for key in (order if round_no % 2 == 0 else order[::-1]):  # A B5 B10, then B10 B5 A, ...
            pools[key].append(run_one(run_dir, f"{key.lower()}--echo--r{round_no + 1:02d}", costs[key], load))
        print(f"ab_power: round {round_no + 1}/{args.pool} done", flush=True)

    rows = []
    for key in costs:
        for metric, (path, better) in (("server CPU per 1k acks", CPU_METRIC), ("acks/s", THROUGHPUT_METRIC)):
            field = "cpu" if path == CPU_METRIC[0] else "acks_per_s"
            a = [run[field] for run in pools["A"]]
            b = [run[field] for run in pools[key]]
            slower, faster = detection(a, b, per_side=args.per_side, trials=args.trials, better=better,
                                       tolerance=args.tolerance, seed=7, same_pool=key == "A")
            pooled = compare(metric, a, b if key != "A" else a[::-1], better=better)  # type: ignore[arg-type]
            rows.append({"level": key, "metric": metric, "pool_ratio": pooled.ratio, "slower": slower,
                         "faster": faster, "trials": args.trials})
    write = json.dumps({"cpu_per_ack_us": cpu_per_ack_us, "costs_us": costs, "pools": pools, "rows": rows},
                       indent=1)
    (run_dir / "power.json").write_text(write)
    print(f"\n| change | metric | ratio of pool medians | judged slower | judged faster |  ({args.per_side} vs "
          f"{args.per_side} runs, {args.trials} trials, tolerance {args.tolerance:.0%})")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        change = "none (A vs A)" if row["level"] == "A" else f"+{row['level'][1:]}% server CPU per ack"
        print(f"| {change} | {row['metric']} | {row['pool_ratio']:.3f}x | {row['slower']}/{row['trials']} | "
              f"{row['faster']}/{row['trials']} |")
    print(f"\nab_power: results in {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
