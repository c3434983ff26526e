"""Synthetic results folders with known contents, for tests and the benchmark.

The writers produce exactly what the runner and the recorder write (the same
file names, schema and columns), so a folder made here goes through the same
code as a real one.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sioharness.core.cells import cell_name
from sioharness.core.run_record import RecordedLoad, RunRecord
from sioharness.core.schema import SAMPLE_COLUMNS, SAMPLE_SCHEMA

# 2025-11-24T16:00:00Z in epoch nanoseconds: any fixed recent instant will do.
BASE_NS = 1_764_000_000_000_000_000
NS_PER_S = 1_000_000_000


def samples_frame(
    t_ns: Any, kind: Any, name: Any, latency_us: Any, *, ok: Any = True, bytes: Any = 0,
    worker: Any = "synthetic:1", user: Any = 0, expected: Any = 0, error: Any = None,
) -> pd.DataFrame:
    """A frame of samples in schema column order; scalars are repeated to the length of ``t_ns``."""
    t = np.asarray(t_ns, dtype=np.int64)
    n = len(t)

    def column(value: Any, dtype: Any) -> Any:
        if np.ndim(value) == 0:
            return pd.Series([value] * n, dtype=dtype) if dtype is object else np.full(n, value, dtype=dtype)
        return pd.Series(list(value), dtype=dtype) if dtype is object else np.asarray(value, dtype=dtype)

    return pd.DataFrame({
        "t_ns": t,
        "kind": column(kind, object),
        "name": column(name, object),
        "latency_us": column(latency_us, np.float64),
        "ok": column(ok, bool),
        "bytes": column(bytes, np.int64),
        "worker": column(worker, object),
        "user": column(user, np.int64),
        "expected": column(expected, np.int64),
        "error": column(error, object),
    })


def write_shard(cell_dir: Path, frame: pd.DataFrame, *, tag: str = "w1", seq: int = 0) -> Path:
    """Write one shard with the recorder's schema and file name."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    path = cell_dir / f"samples-{tag}-{seq:04d}.parquet"
    table = pa.Table.from_pandas(frame[list(SAMPLE_COLUMNS)], schema=SAMPLE_SCHEMA, preserve_index=False)
    pq.write_table(table, path)
    return path


def write_run_json(
    cell_dir: Path, *, started_ns: int, ended_ns: int, cell: str | None = None, scenario: str = "echo",
    mode: str = "gevent", server: str = "dev", warmup_s: float = 0.0, users: int = 10, status: str = "ok",
    reason: str | None = None, **overrides: Any,
) -> dict[str, Any]:
    """Write a run.json as the runner does; ``overrides`` replace or add top-level fields."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    cell = cell or cell_dir.name
    record = RunRecord(
        run_id=cell_dir.parent.name or "synthetic", cell=cell, status=status, reason=reason,
        mode=mode, server=server, scenario=scenario,
        load=RecordedLoad(users=users, spawn_rate=float(users), duration_s=(ended_ns - started_ns) / NS_PER_S,
                       payload_bytes=64, warmup_s=warmup_s),
        command=["synthetic"], target_url="http://127.0.0.1:5000", versions={"python": "3.11"},
        machine={"cores": 2, "memory_bytes": 8 << 30, "platform": "linux", "hostname": "synthetic"},
        started_ns=started_ns, ended_ns=ended_ns,
    )
    # Overrides go in as raw JSON, so tests can write the bad records the reports must refuse.
    run = record.to_json() | overrides
    (cell_dir / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    return run


def write_server_csv(
    cell_dir: Path, t_ns: Any, cpu_user_s: Any, cpu_system_s: Any, rss_bytes: Any, *,
    threads: Any = 4, fds: Any = 20, procs: Any = 1, connected: Any = None,
) -> Path:
    """Write server.csv as the runner's sampler does (``connected`` may be empty)."""
    t = np.asarray(t_ns, dtype=np.int64)
    frame = pd.DataFrame({
        "t_ns": t,
        "cpu_user_s": np.broadcast_to(cpu_user_s, t.shape),
        "cpu_system_s": np.broadcast_to(cpu_system_s, t.shape),
        "rss_bytes": np.broadcast_to(rss_bytes, t.shape).astype(np.int64),
        "threads": np.broadcast_to(threads, t.shape),
        "fds": np.broadcast_to(fds, t.shape),
        "procs": np.broadcast_to(procs, t.shape),
        "connected": [""] * len(t) if connected is None else np.broadcast_to(connected, t.shape),
    })
    cell_dir.mkdir(parents=True, exist_ok=True)
    path = cell_dir / "server.csv"
    frame.to_csv(path, index=False)
    return path


def write_recorder_file(
    cell_dir: Path, *, taken: int, written: int, pending: int = 0, dropped: int = 0,
    errors: list[str] | None = None, tag: str = "w1", worker: str = "synthetic:1",
) -> Path:
    """Write a recording process's accounting (``recorder-<tag>.json``) as the recorder does."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    path = cell_dir / f"recorder-{tag}.json"
    document = {"worker": worker, "taken": taken, "written": written, "pending": pending, "dropped": dropped,
                "errors": list(errors or [])}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def write_locust_stats_json(cell_dir: Path, rows: list[tuple[str, str, int, int]]) -> Path:
    """Write Locust's --json-file: one entry per ``(method, name, requests, failures)``."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    path = cell_dir / "locust_stats.json"
    entries = [{"method": method, "name": name, "num_requests": requests, "num_failures": failures}
               for method, name, requests, failures in rows]
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


# The mix of a generated cell, per sample: connects and disconnects 1 % each, broadcast
# acks 0.5 % with FANOUT pushes each (0.1 % of them lost), echo acks the rest.
FANOUT = 20
KIND_NAMES = ("connect", "disconnect", "ack", "push")
EVENT_NAMES = ("connect", "disconnect", "echo", "broadcast", "fanout")
ERROR_TEXTS = ("TimeoutError: connect timed out", "AckTimeout: no ack within 5 s")


def generate_cell(
    cell_dir: Path, *, n_samples: int = 1_000_000, duration_s: float = 60.0, warmup_s: float = 5.0,
    users: int = 200, shards: int = 8, seed: int = 1, mode: str = "gevent", server: str = "dev",
    scenario: str = "broadcast", start_ns: int = BASE_NS, flush_s: float | None = None,
    gc_pauses: bool = False, load_bounds: bool = False,
) -> dict[str, Any]:
    """A realistic mixed cell of about ``n_samples`` samples: connects, echo and broadcast acks,
    fan-out pushes, some churn and failures, server.csv, Locust CSVs and logs.

    ``shards`` recording processes write the samples, each shard's rows in
    completion order as the recorder writes them. Without ``flush_s`` each
    process writes one shard; with it, one per ``flush_s`` seconds
    (``--flush-interval``), generated a flush at a time, so memory stays bounded
    whatever ``n_samples``: a 100-million-sample, four-hour cell takes about a
    minute. ``gc_pauses`` adds a gc.csv: a 20 ms
    generation-2 pause every 1.1 s and a 50 us generation-0 one every 50 ms.
    ``load_bounds`` records the load's start and end in run.json, as the runner does.

    Returns the run.json written.
    """
    rng = np.random.default_rng(seed)
    end_ns = start_ns + round(duration_s * NS_PER_S)
    periods = max(1, math.ceil(duration_s / flush_s)) if flush_s else 1
    edges = np.linspace(start_ns, end_ns, periods + 1).round().astype(np.int64)
    per_period = np.diff(np.linspace(0, n_samples, periods + 1).round().astype(np.int64))
    totals: Counter[tuple[str, str]] = Counter()
    failures: Counter[tuple[str, str]] = Counter()
    for p in range(periods):
        rows = _generated_rows(rng, int(per_period[p]), int(edges[p]), int(edges[p + 1]), users, shards)
        for tag in range(shards):
            mine = rows["worker"] == tag
            if not mine.any():
                continue
            part = {k: v[mine] for k, v in rows.items()}
            order = np.argsort(part["t_ns"] + np.round(part["latency_us"] * 1000).astype(np.int64), kind="stable")
            table = _rows_table({k: v[order] for k, v in part.items()}, f"synthetic:{1000 + tag}")
            cell_dir.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, cell_dir / f"samples-w{tag}-{p:05d}.parquet")
        pairs = rows["kind"] * len(EVENT_NAMES) + rows["name"]
        for code, count in zip(*np.unique(pairs, return_counts=True), strict=True):
            totals[(KIND_NAMES[code // len(EVENT_NAMES)], EVENT_NAMES[code % len(EVENT_NAMES)])] += int(count)
        for code, count in zip(*np.unique(pairs[~rows["ok"]], return_counts=True), strict=True):
            failures[(KIND_NAMES[code // len(EVENT_NAMES)], EVENT_NAMES[code % len(EVENT_NAMES)])] += int(count)

    bounds: dict[str, Any] = {"load_started_ns": start_ns, "load_ended_ns": end_ns} if load_bounds else {}
    run = write_run_json(cell_dir, started_ns=start_ns, ended_ns=end_ns, scenario=scenario, mode=mode,
                         server=server, warmup_s=warmup_s, users=users,
                         cell=cell_name(mode, server, scenario), **bounds)
    t_srv = np.arange(start_ns - NS_PER_S, end_ns + NS_PER_S, NS_PER_S // 2)
    elapsed = (t_srv - t_srv[0]) / NS_PER_S
    write_server_csv(
        cell_dir, t_srv, 0.6 * elapsed, 0.1 * elapsed,
        60e6 + 40e6 * np.minimum(1.0, elapsed / 5.0), threads=8, fds=users + 12,
        connected=np.minimum(users, np.round(users * elapsed / 5.0)).astype(int),
    )
    if gc_pauses:
        _write_gc_csv(cell_dir, start_ns, end_ns)
    with (cell_dir / "locust_stats.csv").open("w") as fh:
        fh.write("Type,Name,Request Count,Failure Count,Median Response Time\n")
        for (kind, name), n in sorted(totals.items()):
            fh.write(f"{kind},{name},{n},{failures[(kind, name)]},1\n")
        fh.write(f",Aggregated,{sum(totals.values())},{sum(failures.values())},1\n")
    (cell_dir / "target.log").write_text("server started\n" * 10 + "ERROR something went wrong\n")
    (cell_dir / "locust.log").write_text("locust started\n")
    return run


def _generated_rows(rng: np.random.Generator, n: int, lo: int, hi: int, users: int,
                    workers: int) -> dict[str, np.ndarray]:
    """About ``n`` samples sent in ``[lo, hi)`` in the generated cell's mix, as column arrays
    (``kind``, ``name``: codes into KIND_NAMES, EVENT_NAMES; ``error``: into ERROR_TEXTS, -1 for none)."""
    n_conn = n // 100
    n_bcast = n // 200
    n_push = n_bcast * FANOUT
    n_echo = max(0, n - 2 * n_conn - n_bcast - n_push)

    def times(k: int) -> np.ndarray:
        return rng.integers(lo, max(lo + 1, hi), k)

    t_conn = times(n_conn)
    conn_ok = rng.random(n_conn) > 0.002
    echo_ok = rng.random(n_echo) > 0.0005
    t_bcast = times(n_bcast)
    received = np.repeat(t_bcast, FANOUT)
    received = received[rng.random(len(received)) >= 0.001]  # 0.1% lost
    parts = [
        # (t_ns, kind, name, latency_us, ok, error)
        (t_conn, 0, 0, rng.lognormal(np.log(2500), 0.5, n_conn), conn_ok, np.where(conn_ok, -1, 0)),
        (t_conn + rng.integers(NS_PER_S // 10, 2 * NS_PER_S, n_conn), 1, 1, rng.lognormal(np.log(800), 0.4, n_conn),
         np.ones(n_conn, bool), np.full(n_conn, -1)),
        (times(n_echo), 2, 2, rng.lognormal(np.log(900), 0.6, n_echo), echo_ok, np.where(echo_ok, -1, 1)),
        (t_bcast, 2, 3, rng.lognormal(np.log(1500), 0.5, n_bcast), np.ones(n_bcast, bool), np.full(n_bcast, -1)),
        (received, 3, 4, rng.lognormal(np.log(1800), 0.5, len(received)), np.ones(len(received), bool),
         np.full(len(received), -1)),
    ]
    total = sum(len(p[0]) for p in parts)
    return {
        "t_ns": np.concatenate([p[0] for p in parts]).astype(np.int64),
        "kind": np.concatenate([np.full(len(p[0]), p[1], np.int8) for p in parts]),
        "name": np.concatenate([np.full(len(p[0]), p[2], np.int8) for p in parts]),
        "latency_us": np.concatenate([p[3] for p in parts]),
        "ok": np.concatenate([p[4] for p in parts]),
        "error": np.concatenate([p[5] for p in parts]).astype(np.int8),
        "expected": np.concatenate([np.full(len(p[0]), FANOUT if p[2] == 3 else 0, np.int64) for p in parts]),
        "user": rng.integers(0, users, total),
        "worker": rng.integers(0, workers, total),
    }


def _rows_table(rows: dict[str, np.ndarray], worker: str) -> pa.Table:
    """Generated rows as a shard's table (string columns as the recorder writes them)."""
    n = len(rows["t_ns"])

    def strings(codes: np.ndarray, words: tuple[str, ...]) -> pa.Array:
        indices = pa.array(codes.astype(np.int32), mask=codes < 0)
        return pa.DictionaryArray.from_arrays(indices, pa.array(words)).cast(pa.string())

    columns = {
        "t_ns": pa.array(rows["t_ns"]),
        "kind": strings(rows["kind"], KIND_NAMES),
        "name": strings(rows["name"], EVENT_NAMES),
        "latency_us": pa.array(rows["latency_us"]),
        "ok": pa.array(rows["ok"]),
        "bytes": pa.array(np.full(n, 64, np.int64)),
        "worker": pa.array([worker] * n, pa.string()) if n < 1000 else strings(np.zeros(n, np.int8), (worker,)),
        "user": pa.array(rows["user"].astype(np.int64)),
        "expected": pa.array(rows["expected"]),
        "error": strings(rows["error"], ERROR_TEXTS),
    }
    return pa.table(columns, schema=SAMPLE_SCHEMA)


def _write_gc_csv(cell_dir: Path, start_ns: int, end_ns: int) -> None:
    """A gc.csv of a collector pausing 20 ms (generation 2) every 1.1 s and 50 us (generation 0) every 50 ms."""
    long = np.arange(start_ns + NS_PER_S // 2, end_ns, 1_100_000_000)
    short = np.arange(start_ns, end_ns, 50_000_000)
    frame = pd.DataFrame({
        "t_ns": np.concatenate([long, short]),
        "duration_ns": np.concatenate([np.full(len(long), 20_000_000), np.full(len(short), 50_000)]),
        "generation": np.concatenate([np.full(len(long), 2), np.zeros(len(short), np.int64)]),
        "collected": 7,
        "uncollectable": 0,
    }).sort_values("t_ns", kind="stable")
    frame.to_csv(cell_dir / "gc.csv", index=False)
