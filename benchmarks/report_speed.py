"""Benchmark: build the reports of a synthetic 1,000,000-sample results folder.

    .venv/bin/python benchmarks/report_speed.py [--samples N] [--shards N] [--keep DIR]

Generates a cell folder (reports/synthetic.py: connects, echo and broadcast
acks, fan-out pushes, failures, server.csv, Locust CSVs, logs), then runs
``python -m reports`` on it in a child process and prints the wall time and the
child's peak RSS; then, in a second child, the time of each phase. The goal
is under 10 s and under 2 GB for 1,000,000 samples. It is a benchmark, not a
test: it prints figures and exits 0 whatever they are.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reports.synthetic import generate_cell  # noqa: E402

TARGET_S = 10.0
TARGET_BYTES = 2 * 1024**3

# Runs in the second child: times each phase of building one cell's reports.
PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
from reports.read_cell import load_cell
from reports.metrics import compute_metrics
from core.files import write_json
from reports.summary import build_summary
from reports.render_md import render_cell_md
from reports.render_html import render_cell_html
from pathlib import Path
t = {"import": time.perf_counter() - t0}
def step(name, fn):
    s = time.perf_counter(); out = fn(); t[name] = time.perf_counter() - s; return out
data = step("load", lambda: load_cell(sys.argv[1]))
metrics = step("metrics", lambda: compute_metrics(data))
summary = step("summary", lambda: build_summary(data, metrics))
step("report.md", lambda: render_cell_md(summary))
html = step("report.html", lambda: render_cell_html(summary, metrics))
t["samples"] = len(data.samples)
t["html_bytes"] = len(html)
print(json.dumps(t))
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        cell = base / "bench-run" / "gevent-dev--broadcast"
        started = time.perf_counter()
        generate_cell(cell, n_samples=args.samples, shards=args.shards, duration_s=60.0, warmup_s=5.0)
        elapsed = time.perf_counter() - started
        print(f"generated {args.samples:,} samples in {args.shards} shards in {elapsed:.1f} s: {cell}")

        out = base / "bench-out"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "reports", str(cell), "--out", str(out), "--quiet"],
            cwd=ROOT, env=_child_env(), capture_output=True, text=True,
        )
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
        if proc.returncode != 0:
            print(f"python -m reports failed (exit {proc.returncode}):\n{proc.stderr}", file=sys.stderr)
            return 1
        summary = json.loads((out / cell.name / "summary.json").read_text())
        print("python -m reports (whole command, including interpreter start and imports):")
        print(f"  wall time  {wall:6.2f} s   (goal < {TARGET_S:.0f} s)  {'OK' if wall < TARGET_S else 'OVER'}")
        print(f"  peak RSS   {peak / 2**20:6.0f} MiB (goal < {TARGET_BYTES / 2**30:.0f} GiB) "
              f"{'OK' if peak < TARGET_BYTES else 'OVER'}")
        print(f"  samples    {summary['samples']['total']:,} read, {summary['samples']['steady']:,} steady")

        proc = subprocess.run([sys.executable, "-c", PHASES, str(cell)], cwd=ROOT, env=_child_env(),
                              capture_output=True, text=True)
        if proc.returncode == 0:
            phases = json.loads(proc.stdout.strip().splitlines()[-1])
            print("phases (second run, in one process):")
            for name in ("import", "load", "metrics", "summary", "report.md", "report.html"):
                print(f"  {name:<12} {phases[name]:6.2f} s")
            print(f"  report.html is {phases['html_bytes'] / 1024:,.0f} KiB")
        else:
            print(f"phase timing failed:\n{proc.stderr}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
