"""How well does the instruction-count A/B (``sioharness.bench.ab --measure instructions``) see a 1 % regression?

One pool of counted runs is measured, interleaved: the reference target
(gevent-dev; echo, or churn with ``--workload churn``) as is (A), and with
``--handler-loop`` set to add ``--levels`` of its instructions per
operation (B). The loop's cost per iteration
is measured first (a run with 1,000 iterations against one without). Trials
are drawn from the pool: ``--trials`` times, ``--runs`` A runs against
``--runs`` B runs (without replacement), judged as ``sioharness.bench.ab`` judges; A vs
A (two disjoint draws of A) gives the false-alarm rate. One line count a
level checks that the per-function diff names the knob's function first.

    .venv/bin/python -m benchmarks.instr_power --pool 8 --trials 10
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from sioharness.bench.ab_instructions import DEFAULT_TOLERANCE, SideCounts, count_lines, count_run, judge, top_changes
from sioharness.bench.callgrind import missing_tools
from sioharness.bench.instr_workload import Workload
from sioharness.bench.matrix import DEFAULT_RESULTS
from sioharness.bench.own_app import CommandTarget
from sioharness.core.runinfo import new_run_id

KNOB_FUNCTION = "target_app/contract.py:handler_loop"


def side(key: str, loop: int) -> SideCounts:
    command = (f"python -m target_app --async-mode gevent --server dev --host {{host}} --port {{port}} "
               f"--handler-loop {loop}")
    return SideCounts(key, key, Path.cwd(), CommandTarget(command, mode="gevent", server="dev"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=8, help="counted runs per level (default 8)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="runs a side in one trial (default 3, as in sioharness ab)")
    parser.add_argument("--levels", default="0.01", help="added instructions per operation, as shares (default 0.01)")
    parser.add_argument("--workload", choices=("echo", "churn"), default="echo")
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    if (missing := missing_tools()) is not None:
        print(f"instr_power: {missing}", file=sys.stderr)
        return 2
    if args.pool < 2 * args.runs:
        print(f"instr_power: --pool must be at least 2 x --runs ({2 * args.runs}) for A against A", file=sys.stderr)
        return 2
    levels = [float(x) for x in args.levels.split(",")]
    run_dir = args.results / new_run_id("instr-power")
    workload = Workload(kind=args.workload)
    started = time.monotonic()

    def count(s: SideCounts, index: int) -> float:
        run = count_run(s, index, workload, run_dir / f"{s.key}-r{index:02d}", operations=args.operations,
                        warmup=args.warmup)
        return run.per_operation

    a_side = side("a", 0)
    base = count(a_side, 0)
    per_iteration = (count(side("cal", 1000), 0) - base) / 1000
    loops = {level: max(1, round(level * base / per_iteration)) for level in levels}
    print(f"instr_power: {base:,.0f} instructions per {workload.operation}; the loop costs "
          f"{per_iteration:,.1f} per iteration; levels "
          f"{', '.join(f'{lv:.1%} = {n} iterations' for lv, n in loops.items())}", flush=True)
    pools: dict[str, list[float]] = {"a": [base]}
    for level in levels:
        pools[f"b{level}"] = []
    for index in range(1, args.pool + 1):
        keys = ["a", *(f"b{lv}" for lv in levels)]
        for key in keys if index % 2 else reversed(keys):
            if key == "a" and len(pools["a"]) >= args.pool:
                continue
            loop = 0 if key == "a" else loops[float(key[1:])]
            pools[key].append(count(side(key, loop), index))
        print(f"instr_power: round {index}/{args.pool} done ({time.monotonic() - started:.0f} s)", flush=True)

    rng = random.Random(2026)
    rows = []
    for name, a_pool, b_pool, same in [("none (A vs A)", pools["a"], pools["a"], True),
                                      *((f"+{lv:.1%}", pools["a"], pools[f"b{lv}"], False) for lv in levels)]:
        verdicts: Counter[str] = Counter()
        for _ in range(args.trials):
            if same:
                drawn = rng.sample(a_pool, 2 * args.runs)
                a, b = drawn[:args.runs], drawn[args.runs:]
            else:
                a, b = rng.sample(a_pool, args.runs), rng.sample(b_pool, args.runs)
            verdicts[judge(a, b, args.tolerance).verdict] += 1
        spread = (max(a_pool) - min(a_pool)) / statistics.median(a_pool)
        ratio = statistics.median(b_pool) / statistics.median(a_pool)
        rows.append((name, ratio, spread, verdicts))

    named = {}
    lines_a = side("lines-a", 0)
    count_lines(lines_a, workload, run_dir / "lines-a", operations=args.operations, warmup=args.warmup)
    for level in levels:
        lines_b = side(f"lines-b{level}", loops[level])
        count_lines(lines_b, workload, run_dir / f"lines-b{level}", operations=args.operations, warmup=args.warmup)
        changes = top_changes(lines_a.python_lines, lines_b.python_lines)
        named[level] = changes[0][0] if changes else None

    print(f"\nA pool of {len(pools['a'])} runs; trials of {args.runs} runs a side; tolerance {args.tolerance:.1%}; "
          f"{time.monotonic() - started:.0f} s in all\n")
    print("| change | ratio of pool medians | A spread | slower | faster | no change | inconclusive |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, ratio, spread, verdicts in rows:
        print(f"| {name} | {ratio:.4f}x | {spread:.3%} | " + " | ".join(
            f"{verdicts[v]}/{args.trials}" for v in ("slower", "faster", "no change", "inconclusive")) + " |")
    for level, function in named.items():
        mark = "the knob's function" if function == KNOB_FUNCTION else "NOT the knob's function"
        print(f"\n+{level:.1%}: the diff's first function is {function} ({mark})")
    (run_dir / "power.json").write_text(json.dumps({"pools": pools, "loops": {str(k): v for k, v in loops.items()},
                                                    "per_iteration": per_iteration, "named": {
                                                        str(k): v for k, v in named.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
