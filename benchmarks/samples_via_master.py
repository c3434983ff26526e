"""Benchmark: samples through the Locust master (``--samples-via-master``).

    .venv/bin/python -m benchmarks.samples_via_master [--window S] [--quick]

Real Locust processes (a master and workers on loopback, each with its own
results folder) run ``benchmarks/relay_locustfile.py``: users that make
samples flat out and touch no network, so the samples' own cost is what is
measured. Three runs:

- ``local``: one worker writing its own shards (today's default);
- ``via master``: one worker sending its shards to the master;
- ``via master x2``: two workers sending to one master.

For each, over a steady window: samples made per second (the ``t_ns`` of the
samples recorded inside the window), and the CPU (psutil, user + system) of
the master and of each worker per sample. The difference between ``local``
and ``via master`` is what the transport costs each side; the master's CPU
per sample says how many samples per second one master core can absorb.
Also: bytes per sample on the wire (``relayed-*.json``), and whether any
shard had to be kept on a worker's disk (the master falling behind).

It is a benchmark, not a test: it prints figures and exits 0 whatever they are.
On two cores the master and the workers share the machine: the x2 run is
bound by the cores, not by the master.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "benchmarks" / "relay_locustfile.py"
sys.path.insert(0, str(ROOT))

from sioharness.core.schema import RELAY_FILE_GLOB, SHARD_GLOB  # noqa: E402
from target_app.process import free_port  # noqa: E402

#: the lean EchoUser's client CPU per acknowledged echo (DESIGN.md, 2026-11-28): the share is quoted against it
LOADGEN_US_PER_ACK = 40.0


@dataclass
class Result:
    name: str
    samples_per_s: float
    master_us: float
    worker_us: float
    wire_bytes_per_sample: float | None
    kept_on_workers: int


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run(name: str, *, workers: int, via_master: bool, window: float, warmup: float, users: int) -> Result:
    root = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    cell = root / "master" / "cell"
    port = free_port()
    run_time = warmup + window + 3
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    env.pop("LOADTEST_RESULTS_DIR", None)
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    procs: list[subprocess.Popen[bytes]] = []

    def start(home: Path, *args: str) -> subprocess.Popen[bytes]:
        home.mkdir(parents=True, exist_ok=True)
        with open(home / "locust.log", "wb") as log:
            proc = subprocess.Popen([*base, *args], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    try:
        master = start(root / "master", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                       str(port), "--expect-workers", str(workers), "--headless", "-u", str(users * workers),
                       "-r", "1000", "-t", f"{run_time:g}s", "--stop-timeout", "2", "--host", "http://127.0.0.1:9",
                       "--results-dir", str(cell), *(["--samples-via-master"] if via_master else []))
        folders = [root / f"worker-{i}" / "results" for i in range(workers)]
        pids = [start(folder.parent, "--worker", "--master-port", str(port), "--results-dir", str(folder)).pid
                for folder in folders]
        where = [cell] if via_master else folders
        deadline = time.monotonic() + 60
        while not any(any(f.glob(SHARD_GLOB)) for f in where if f.is_dir()):  # the first flush: the load runs
            if time.monotonic() > deadline or master.poll() is not None:
                raise RuntimeError(f"{name}: no samples within 60 s; see {root}")
            time.sleep(0.1)
        time.sleep(max(0.0, warmup - 2.0))
        t0, master0, workers0 = time.time_ns(), cpu_s(master.pid), [cpu_s(p) for p in pids]
        time.sleep(window)
        t1, master1, workers1 = time.time_ns(), cpu_s(master.pid), [cpu_s(p) for p in pids]
        for proc in procs:
            proc.wait(timeout=run_time + 60)
        made = 0
        for folder in where:
            for shard in folder.glob(SHARD_GLOB):
                t_ns = pq.read_table(shard, columns=["t_ns"])["t_ns"]
                made += int(pc.sum(pc.and_(pc.greater_equal(t_ns, t0), pc.less(t_ns, t1))).as_py() or 0)
        accounts = [json.loads(p.read_text()) for p in cell.glob(RELAY_FILE_GLOB)]
        rows, wire = sum(a["rows"] for a in accounts), sum(a["bytes"] for a in accounts)
        kept = sum(a["kept_rows"] for a in accounts)
        seconds = (t1 - t0) / 1e9
        return Result(name, made / seconds, (master1 - master0) / made * 1e6,
                      sum(b - a for a, b in zip(workers0, workers1, strict=True)) / made * 1e6,
                      wire / rows if rows else None, kept)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=10.0, help="steady seconds measured per run (default 10)")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds before the window (default 4)")
    parser.add_argument("--users", type=int, default=4, help="sample-making users per worker (default 4)")
    parser.add_argument("--quick", action="store_true", help="4 s windows (a smoke check)")
    args = parser.parse_args(argv)
    window = 4.0 if args.quick else args.window
    results = [run("local", workers=1, via_master=False, window=window, warmup=args.warmup, users=args.users),
               run("via master", workers=1, via_master=True, window=window, warmup=args.warmup, users=args.users),
               run("via master x2", workers=2, via_master=True, window=window, warmup=args.warmup,
                   users=args.users)]
    print(f"{'run':<15} {'samples/s':>10} {'master us/sample':>17} {'worker us/sample':>17} "
          f"{'wire B/sample':>14} {'kept on workers':>16}")
    for r in results:
        wire = f"{r.wire_bytes_per_sample:.1f}" if r.wire_bytes_per_sample is not None else "-"
        print(f"{r.name:<15} {r.samples_per_s:>10,.0f} {r.master_us:>17.3f} {r.worker_us:>17.2f} "
              f"{wire:>14} {r.kept_on_workers:>16,}")
    local, relay = results[0], results[1]
    master_extra = relay.master_us - local.master_us
    worker_extra = relay.worker_us - local.worker_us
    print(f"\nvia the master, per sample: master +{master_extra:.2f} us, worker {worker_extra:+.2f} us "
          f"(vs its own Parquet shards); as a share of the lean client's ~{LOADGEN_US_PER_ACK:.0f} us of CPU per "
          f"ack: master {master_extra / LOADGEN_US_PER_ACK:.1%}, worker {worker_extra / LOADGEN_US_PER_ACK:+.1%}")
    if master_extra > 0:
        print(f"one master core absorbs about {1e6 / relay.master_us:,.0f} samples/s "
              f"(all its work per sample, {relay.master_us:.2f} us); the transport alone, "
              f"{1e6 / master_extra:,.0f} samples/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
