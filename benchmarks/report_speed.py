"""Benchmark: build the reports of a synthetic results folder, from a million samples to a soak's hundred million.

    .venv/bin/python benchmarks/report_speed.py [--samples N] [--rate R] [--workers N] [--flush S]
                                                [--keep DIR | --cell DIR] [--no-html] [--no-load-bounds]

Generates a cell folder as a soak leaves it (reports/synthetic.py: connects,
echo and broadcast acks, fan-out pushes, failures, a shard per recording process
every ``--flush`` seconds, server.csv, gc.csv, Locust CSVs, logs, run.json with
the load's bounds as the runner records them), then builds its reports
(summary.json, report.md, report.html) in a child process, as ``python -m
reports`` does, and prints the child's wall time (interpreter start and
imports included), CPU time, peak RSS (``os.wait4``: this child's own), and
the time of each phase. The goal is 100,000,000 samples in under 60 s and
4 GiB. It is a benchmark, not a test: it prints figures and exits 0 whatever
they are (1 only when the report fails).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reports.synthetic import generate_cell  # noqa: E402

GOAL_SAMPLES = 100_000_000
GOAL_S = 60.0
GOAL_BYTES = 4 * 2**30

# Runs in the child: builds one cell's reports phase by phase (what build_cell_report does).
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from reports.build import CellReport, write_cell_report
from reports.metrics import compute_metrics
from reports.read_cell import load_cell
from reports.summary import build_summary
t = {"import": time.perf_counter() - t0}
def step(name, fn):
    s = time.perf_counter(); out = fn(); t[name] = time.perf_counter() - s; return out
cell, out, html = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "html"
data = step("load", lambda: load_cell(cell))
metrics = step("metrics", lambda: compute_metrics(data))
summary = step("summary", lambda: build_summary(data, metrics))
report = CellReport(path=cell, data=data, metrics=metrics, summary=summary)
files = step("write", lambda: write_cell_report(report, out, html=html))
t["samples"] = summary["samples"]["total"]
t["steady"] = summary["samples"]["steady"]
t["html_bytes"] = sum(f.stat().st_size for f in files if f.suffix == ".html")
print(json.dumps(t))
"""
PHASES = ("import", "load", "metrics", "summary", "write")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_child(cell: Path, out: Path, *, html: bool) -> tuple[float, float, int, dict[str, float] | None, str]:
    """Build the reports in a child process: ``(wall s, CPU s, its peak RSS in bytes, phases, stderr)``."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(cell), str(out), "html" if html else "no-html"],
                                cwd=ROOT, env=_child_env(), stdout=stdout, stderr=stderr, text=True)
        # wait4: this child's own rusage (RUSAGE_CHILDREN would give the largest of all children so far).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        text, errors = stdout.read().strip(), stderr.read()
    peak = usage.ru_maxrss * 1024  # Linux reports KiB
    phases = json.loads(text.splitlines()[-1]) if proc.returncode == 0 and text else None
    return wall, usage.ru_utime + usage.ru_stime, peak, phases, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=7000.0,
                        help="samples per second: sets the run's length (default 7000, a soak at 7,000 acks/s)")
    parser.add_argument("--workers", type=int, default=1, help="recording processes (default 1)")
    parser.add_argument("--flush", type=float, default=2.0,
                        help="seconds between a recording process's shards (the recorder's --flush-interval, 2)")
    parser.add_argument("--no-html", action="store_true", help="write summary.json and report.md only")
    parser.add_argument("--no-load-bounds", action="store_true",
                        help="leave the load's bounds out of run.json (a cell not made by the runner: two reads)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (default: a temp dir)")
    where.add_argument("--cell", metavar="DIR", help="report this cell folder instead of generating one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        if args.cell:
            cell = Path(args.cell)
        else:
            base = Path(args.keep) if args.keep else Path(tmp)
            cell = base / "bench-run" / "gevent-dev--echo"
            if cell.exists():
                shutil.rmtree(cell)
            duration = max(60.0, args.samples / args.rate)
            started = time.perf_counter()
            generate_cell(cell, n_samples=args.samples, shards=args.workers, duration_s=duration, warmup_s=5.0,
                          flush_s=args.flush, scenario="echo", gc_pauses=True, load_bounds=not args.no_load_bounds)
            shards = len(list(cell.glob("samples-*.parquet")))
            size = sum(p.stat().st_size for p in cell.glob("samples-*.parquet"))
            print(f"generated {args.samples:,} samples ({duration:,.0f} s at {args.samples / duration:,.0f}/s) in "
                  f"{shards:,} shards, {size / 2**20:,.0f} MiB, in {time.perf_counter() - started:.1f} s: {cell}")

        out = Path(tmp) / "bench-out"
        wall, cpu, peak, phases, stderr = run_child(cell, out, html=not args.no_html)
        if phases is None:
            print(f"the report failed:\n{stderr}", file=sys.stderr)
            return 1
        what = "summary.json, report.md" + ("" if args.no_html else ", report.html")
        print(f"reports ({what}) in a child process, interpreter start and imports included:")
        print(f"  samples    {phases['samples']:,} read, {phases['steady']:,} steady")
        print(f"  wall time  {wall:7.2f} s   ({wall / phases['samples'] * 1e9:,.0f} ns a sample; "
              f"CPU {cpu:.2f} s, the reading threads' included)")
        print(f"  peak RSS   {peak / 2**20:7.0f} MiB ({peak / phases['samples']:,.1f} bytes a sample)")
        scale = phases["samples"] / GOAL_SAMPLES
        print(f"  goal for {GOAL_SAMPLES:,} samples: under {GOAL_S:.0f} s and {GOAL_BYTES / 2**30:.0f} GiB"
              + (f" (this run is {scale:.0%} of that size)" if scale < 0.99 else
                 f": {'met' if wall < GOAL_S and peak < GOAL_BYTES else 'NOT met'}"))
        print("phases:")
        for name in PHASES:
            print(f"  {name:<8} {phases[name]:7.2f} s")
        if phases["html_bytes"]:
            print(f"  report.html is {phases['html_bytes'] / 1024:,.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
