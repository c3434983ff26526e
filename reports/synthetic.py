"""Synthetic results folders with known contents, for tests and the benchmark.

The writers produce exactly what the runner and the recorder write (the same
file names, schema and columns), so a folder made here goes through the same
code as a real one.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.cells import cell_name
from core.run_record import RecordedLoad, RunRecord
from core.schema import SAMPLE_COLUMNS, SAMPLE_SCHEMA

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


def generate_cell(
    cell_dir: Path, *, n_samples: int = 1_000_000, duration_s: float = 60.0, warmup_s: float = 5.0,
    users: int = 200, shards: int = 8, seed: int = 1, mode: str = "gevent", server: str = "dev",
    scenario: str = "broadcast", start_ns: int = BASE_NS,
) -> dict[str, Any]:
    """A realistic mixed cell of about ``n_samples`` samples: connects, echo and broadcast acks,
    fan-out pushes, some churn and failures, server.csv, Locust CSVs and logs.

    Returns the run.json written.
    """
    rng = np.random.default_rng(seed)
    end_ns = start_ns + round(duration_s * NS_PER_S)
    span = end_ns - start_ns
    workers = [f"synthetic:{1000 + i}" for i in range(shards)]

    n_conn = max(users, n_samples // 100)
    n_bcast = n_samples // 200
    fan = 20  # recipients per broadcast
    n_push = n_bcast * fan
    n_echo = max(0, n_samples - 2 * n_conn - n_bcast - n_push)

    def times(n: int) -> np.ndarray:
        return start_ns + np.sort(rng.integers(0, span, n))

    # The error column: None where a sample succeeded (a 0-d object array: np.where's stubs take no bare None).
    no_error = np.array(None, dtype=object)
    frames = []
    t_conn = times(n_conn)
    conn_ok = rng.random(n_conn) > 0.002
    frames.append(samples_frame(
        t_conn, "connect", "connect", rng.lognormal(np.log(2500), 0.5, n_conn), ok=conn_ok,
        user=rng.integers(0, users, n_conn),
        error=np.where(conn_ok, no_error, "TimeoutError: connect timed out"),
    ))
    frames.append(samples_frame(
        t_conn + rng.integers(NS_PER_S // 10, 2 * NS_PER_S, n_conn), "disconnect", "disconnect",
        rng.lognormal(np.log(800), 0.4, n_conn), user=rng.integers(0, users, n_conn),
    ))
    echo_ok = rng.random(n_echo) > 0.0005
    frames.append(samples_frame(
        times(n_echo), "ack", "echo", rng.lognormal(np.log(900), 0.6, n_echo), ok=echo_ok, bytes=64,
        user=rng.integers(0, users, n_echo), error=np.where(echo_ok, no_error, "AckTimeout: no ack within 5 s"),
    ))
    t_bcast = times(n_bcast)
    frames.append(samples_frame(
        t_bcast, "ack", "broadcast", rng.lognormal(np.log(1500), 0.5, n_bcast), bytes=64,
        expected=fan, user=rng.integers(0, users, n_bcast),
    ))
    received = np.repeat(t_bcast, fan)[: n_push - n_push // 1000]  # 0.1% lost
    frames.append(samples_frame(
        received, "push", "fanout", rng.lognormal(np.log(1800), 0.5, len(received)), bytes=64,
        user=rng.integers(0, users, len(received)),
    ))
    samples = pd.concat(frames, ignore_index=True)
    samples["worker"] = np.asarray(workers, dtype=object)[rng.integers(0, shards, len(samples))]
    for i, worker in enumerate(workers):
        write_shard(cell_dir, samples.loc[samples["worker"] == worker], tag=f"w{i}", seq=0)

    run = write_run_json(cell_dir, started_ns=start_ns, ended_ns=end_ns, scenario=scenario, mode=mode,
                         server=server, warmup_s=warmup_s, users=users,
                         cell=cell_name(mode, server, scenario))
    t_srv = np.arange(start_ns - NS_PER_S, end_ns + NS_PER_S, NS_PER_S // 2)
    elapsed = (t_srv - t_srv[0]) / NS_PER_S
    write_server_csv(
        cell_dir, t_srv, 0.6 * elapsed, 0.1 * elapsed,
        60e6 + 40e6 * np.minimum(1.0, elapsed / 5.0), threads=8, fds=users + 12,
        connected=np.minimum(users, np.round(users * elapsed / 5.0)).astype(int),
    )
    counts = samples.groupby(["kind", "name"]).agg(n=("ok", "size"), failed=("ok", lambda s: int((~s).sum())))
    with (cell_dir / "locust_stats.csv").open("w") as fh:
        fh.write("Type,Name,Request Count,Failure Count,Median Response Time\n")
        for (kind, name), row in counts.iterrows():
            fh.write(f"{kind},{name},{row['n']},{row['failed']},1\n")
        fh.write(f",Aggregated,{len(samples)},{int((~samples['ok']).sum())},1\n")
    (cell_dir / "target.log").write_text("server started\n" * 10 + "ERROR something went wrong\n")
    (cell_dir / "locust.log").write_text("locust started\n")
    return run
