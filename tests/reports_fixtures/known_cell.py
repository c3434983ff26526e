"""A cell folder whose every figure is known by construction.

Load from S to S+12 s (run.json load_started_ns/load_ended_ns), 2 s warm-up: the steady
window is [S+2 s, S+12 s), 10 s.

Warm-up (must not count): 50 echo acks of 1 s each, 5 failed connects.
Steady:
- echo: 1001 ok acks with latencies 100.0, 100.5, ..., 600.0 us (shuffled), plus
  4 failed ("AckTimeout: no ack in 5 s", latency 5e6 us). Linear-interpolation
  percentiles: p50 350.0, p90 550.0, p99 595.0, p99.9 599.5, max 600.0, mean 350.0.
- connect: 200 ok (latency 1000 + i us, i = 0..199: p50 1099.5, max 1199.0) and 10 failed
  (6 "ConnectionRefusedError: [Errno 111] Connection refused", 4 "TimeoutError: timed out").
  20.0 connects/s; failure ratio 10/210.
- disconnect: 150 ok (latency 300 us): 15.0 disconnects/s.
- broadcast: 100 ok acks, expected 5 each (500 expected); 490 fanout pushes carrying their
  broadcast's t_ns, latency 2000 + i us (i = 0..489: p50 2244.5). Lost 10, loss ratio 0.02.
- acks/s = (1001 + 100) / 10 = 110.1; pushes/s = 49.0.
- failed operations: 14 of 1001+4+100+210+150 = 1465.
Server: 0.4 user + 0.1 system CPU seconds per second (0.5 cores): 5.0 CPU s in the window,
5.0 / 1101 * 1000 per 1k acks, 25.0 per 1k connects. RSS 50 MiB at the first sample,
150 MiB peak, 100 connected at most: 1 MiB per client. Load generator (loadgen.csv):
0.3 cores, 3.0 CPU s in the window, 15.0 per 1k connects, 80 MiB.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reports.synthetic import BASE_NS, NS_PER_S, samples_frame, write_run_json, write_server_csv, write_shard

S = BASE_NS
RUN_S = 12
WARMUP_S = 2.0
W0 = S + 2 * NS_PER_S
WINDOW_S = 10.0
MIB = 1024 * 1024

ECHO_OK = 1001
REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"
TIMED_OUT = "TimeoutError: timed out"
ACK_TIMEOUT = "AckTimeout: no ack in 5 s"


def _spread(n: int, start: int = W0, span_s: float = WINDOW_S) -> np.ndarray:
    """n timestamps evenly inside [start, start + span)."""
    return start + (np.arange(n) * (span_s * NS_PER_S / n)).astype(np.int64)


def known_samples(*, latency_scale: float = 1.0, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = [
        # Warm-up: slow acks and failed connects that must not count.
        samples_frame(_spread(50, S, 2.0), "ack", "echo", 1e6),
        samples_frame(_spread(5, S, 2.0), "connect", "connect", 3e6, ok=False, error="warm-up failure"),
        # Steady echo: exact percentiles by construction.
        samples_frame(_spread(ECHO_OK), "ack", "echo", rng.permutation(100 + 0.5 * np.arange(ECHO_OK)) * latency_scale,
                      bytes=64),
        samples_frame(_spread(4), "ack", "echo", 5e6, ok=False, error=ACK_TIMEOUT),
        samples_frame(_spread(200), "connect", "connect", (1000.0 + np.arange(200)) * latency_scale,
                      user=np.arange(200)),
        samples_frame(_spread(6), "connect", "connect", 2e6, ok=False, error=REFUSED),
        samples_frame(_spread(4), "connect", "connect", 5e6, ok=False, error=TIMED_OUT),
        samples_frame(_spread(150) + NS_PER_S // 100, "disconnect", "disconnect", 300.0),
    ]
    t_bcast = _spread(100)
    frames.append(samples_frame(t_bcast, "ack", "broadcast", 1500.0, expected=5, bytes=64))
    pushes_t = np.repeat(t_bcast, 5)[:490]
    frames.append(samples_frame(pushes_t, "push", "fanout", 2000.0 + rng.permutation(490), bytes=64))
    return pd.concat(frames, ignore_index=True)


def write_known_server(cell: Path) -> None:
    t = np.arange(S - NS_PER_S, S + (RUN_S + 1) * NS_PER_S + 1, NS_PER_S // 2)
    elapsed = (t - t[0]) / NS_PER_S
    rss = np.full(len(t), 150 * MIB)
    rss[0] = 50 * MIB
    rss[1:4] = 100 * MIB
    connected = np.minimum(100, np.arange(len(t)) * 10)
    write_server_csv(cell, t, 0.4 * elapsed, 0.1 * elapsed, rss, threads=6, fds=120, connected=connected)
    # The load generator: 0.3 cores, 80 MiB; same columns, written as loadgen.csv.
    write_server_csv(cell, t, 0.25 * elapsed, 0.05 * elapsed, 80 * MIB, threads=3, fds=30)
    (cell / "server.csv").rename(cell / "loadgen.csv")
    write_server_csv(cell, t, 0.4 * elapsed, 0.1 * elapsed, rss, threads=6, fds=120, connected=connected)


def write_known_cell(cell: Path, *, latency_scale: float = 1.0, shards: int = 2, mode: str = "gevent",
                     server: str = "dev", scenario: str = "echo", **run_overrides) -> Path:
    """Write the known cell into ``cell`` (its samples split across ``shards`` shards)."""
    samples = known_samples(latency_scale=latency_scale)
    for i, part in enumerate(np.array_split(np.arange(len(samples)), shards)):
        write_shard(cell, samples.iloc[part], tag=f"w{i}", seq=0)
    # The runner's own stamps straddle the load (target start-up, teardown); the load's
    # bounds are recorded exactly, as Locust's test start and stop.
    run = {"load_started_ns": S, "load_ended_ns": S + RUN_S * NS_PER_S, **run_overrides}
    write_run_json(cell, started_ns=S - 3 * NS_PER_S, ended_ns=S + (RUN_S + 2) * NS_PER_S, warmup_s=WARMUP_S,
                   mode=mode, server=server, scenario=scenario, cell=f"{mode}-{server}--{scenario}", **run)
    write_known_server(cell)
    return cell
