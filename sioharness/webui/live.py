"""Live figures of the test in flight, read from what the harness writes to disk.

The recorder of every load-generating process (the standalone runner, or
each ``--processes`` worker) flushes whole Parquet shards into the test's
cell folder every ``--flush-interval`` seconds, and ``sioharness.bench.ui`` samples
the target into ``ui-server.csv``. :class:`LiveCell` reads only what is new
on each :meth:`~LiveCell.update` (shards it has not seen, server rows past
its file offset), so a poll every two seconds costs what arrived in the
last two seconds, plus the percentiles.

Percentiles are exact, over the raw float microseconds of every successful
sample since the test started (linear interpolation between closest ranks,
as in ``reports``), never Locust's whole-millisecond buckets.

Nothing here needs Locust or a network: tests feed it real shards.
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from sioharness.core.figures import PERCENTILES, latency_key
from sioharness.core.scenarios import REFERENCE_FANOUT
from sioharness.core.schema import SHARD_GLOB

NS_PER_S = 1_000_000_000
#: the columns a live figure needs (``user``, ``bytes`` and ``error`` are left on disk)
READ_COLUMNS = ("t_ns", "kind", "name", "latency_us", "ok", "expected", "worker")
#: seconds of per-second series a snapshot carries at most (the newest ones)
MAX_SERIES_S = 1800
#: seconds before the newest complete data whose fan-out counts are settled
#: (a delivery is recorded by its receiver, possibly one flush after the ack)
FANOUT_SETTLE_S = 1.0
#: server.csv rows kept from before the test start (RSS baseline, CPU rate)
SERVER_LEAD_S = 2.0
_KIND_ORDER = {"connect": 0, "disconnect": 1, "ack": 2, "push": 3, "error": 4}


class _Counts:
    """Per-second counters that grow as later seconds arrive."""

    def __init__(self) -> None:
        self.values = np.zeros(64, dtype=np.int64)
        self.length = 0

    def add(self, seconds: np.ndarray, weights: np.ndarray | None = None) -> None:
        if not len(seconds):
            return
        top = int(seconds.max()) + 1
        if top > len(self.values):
            grown = np.zeros(max(top, 2 * len(self.values)), dtype=np.int64)
            grown[: len(self.values)] = self.values
            self.values = grown
        self.values[:top] += np.bincount(seconds, weights=weights, minlength=top).astype(np.int64)[:top]
        self.length = max(self.length, top)

    def upto(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int64)
        m = min(n, len(self.values))
        out[:m] = self.values[:m]
        return out


@dataclass
class _Event:
    """One (kind, name): counts and the successful latencies in chunks."""

    kind: str
    name: str
    count: int = 0
    failed: int = 0
    chunks: list[np.ndarray] = field(default_factory=list)
    _figures: dict[str, float | None] | None = None
    _stale: bool = False
    _computed_at: float = 0.0

    def add(self, latency_us: np.ndarray, ok: np.ndarray) -> None:
        self.count += len(ok)
        self.failed += int((~ok).sum())
        good = latency_us[ok]
        good = good[np.isfinite(good)]
        if len(good):
            self.chunks.append(good)
            self._stale = True

    def latencies(self) -> np.ndarray:
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0] if self.chunks else np.empty(0)

    def figures(self, *, fresh: bool = True) -> dict[str, float | None]:
        """mean, exact percentiles and max of the successful latencies (µs).

        With ``fresh`` False (a live view), figures computed less than one
        second per million samples ago are reused: exact percentiles of
        millions of samples cost a third of a second of CPU, which a
        single-process run would take from its users every poll.
        """
        if self._figures is not None and not self._stale:
            return self._figures
        if self._figures is not None and not fresh:
            total = sum(len(c) for c in self.chunks)
            if time.monotonic() - self._computed_at < total / 1e6:
                return self._figures
        values = self.latencies()
        if not len(values):
            self._figures = {"mean_us": None, **{k: None for k, _ in PERCENTILES}, "max_us": None}
        else:
            quantiles = np.quantile(values, [q for _, q in PERCENTILES])  # linear, as reports
            self._figures = {"mean_us": float(values.mean()),
                             **{k: float(v) for (k, _), v in zip(PERCENTILES, quantiles, strict=True)},
                             "max_us": float(values.max())}
        self._stale = False
        self._computed_at = time.monotonic()
        return self._figures


@dataclass
class ServerRow:
    t_ns: int
    cpu_s: float
    rss_bytes: int
    connected: int | None


class ServerSeries:
    """Rows of a ``server.csv`` being written, read incrementally by byte offset."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rows: list[ServerRow] = []
        self._offset = 0
        self._header: list[str] | None = None
        self.problems = 0

    def update(self) -> int:
        """Read rows appended since the last call; returns how many."""
        if self.path is None:
            return 0
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return 0
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0  # nothing complete yet: a half-written line waits for its newline
        self._offset += end + 1
        added = 0
        for row in csv.reader(io.StringIO(chunk[: end + 1].decode("utf-8", "replace"))):
            if self._header is None:
                self._header = row
                continue
            parsed = self._parse(row)
            if parsed is None:
                self.problems += 1
            else:
                self.rows.append(parsed)
                added += 1
        return added

    def _parse(self, row: list[str]) -> ServerRow | None:
        values = dict(zip(self._header or [], row, strict=False))  # a line cut short mid-write: KeyError below
        try:
            connected = values.get("connected") or ""
            return ServerRow(int(values["t_ns"]), float(values["cpu_user_s"]) + float(values["cpu_system_s"]),
                             int(values["rss_bytes"]), int(connected) if connected else None)
        except (KeyError, ValueError):
            return None

    def since(self, start_ns: int) -> dict[str, Any] | None:
        """Per-row series from ``SERVER_LEAD_S`` before ``start_ns``; None without rows."""
        rows = [r for r in self.rows if r.t_ns >= start_ns - SERVER_LEAD_S * NS_PER_S]
        if not rows:
            return None
        t: list[float] = []
        cpu: list[float | None] = []
        rss: list[float] = []
        connected: list[int | None] = []
        for prev, row in zip([None, *rows[:-1]], rows, strict=True):
            t.append(round((row.t_ns - start_ns) / NS_PER_S, 2))
            if prev is None or row.t_ns <= prev.t_ns:
                cpu.append(None)
            else:
                # Only increases count: a child that exits takes its CPU out of the sum.
                cpu.append(round(max(0.0, row.cpu_s - prev.cpu_s) / ((row.t_ns - prev.t_ns) / NS_PER_S) * 100, 1))
            rss.append(round(row.rss_bytes / 2**20, 2))
            connected.append(row.connected)
        last = rows[-1]
        recent = [c for c in cpu[-5:] if c is not None]
        return {
            "t": t, "cpu_pct": cpu, "rss_mib": rss, "connected": connected,
            "cpu_pct_now": round(sum(recent) / len(recent), 1) if recent else None,
            "rss_mib_now": round(last.rss_bytes / 2**20, 2),
            "rss_mib_peak": round(max(r.rss_bytes for r in rows) / 2**20, 2),
            "connected_now": last.connected,
        }


class LiveCell:
    """Figures of one test (one cell folder) from its shards, updated incrementally.

    :param cell_dir: the folder the recorders write this test's shards to.
    :param start_ns: the test's start (epoch ns): time zero of the series.
    :param server: the target's sampled process tree, when the harness started it.
    """

    def __init__(self, cell_dir: Path, start_ns: int, *, server: ServerSeries | None = None) -> None:
        self.cell_dir = Path(cell_dir)
        self.start_ns = start_ns
        self.server = server
        #: when the test stopped; rates after the stop are the final ones, not diluted by the wait since
        self.ended_ns: int | None = None
        self.shards_read: set[str] = set()
        self.shards_failed: dict[str, str] = {}
        self.samples = 0
        #: shard tag (one per recording process) -> mtime (ns) of its newest shard
        self.writers: dict[str, int] = {}
        self.workers: set[str] = set()
        self.events: dict[tuple[str, str], _Event] = {}
        self.series: defaultdict[str, _Counts] = defaultdict(_Counts)
        self.connects_ok = 0
        self.connect_failures = 0
        self.disconnects = 0
        self.lost_connections = 0
        self.fanout_expected = _Counts()
        self.fanout_received = _Counts()
        self.fanout_totals = {"expected": 0, "received": 0}

    # --- reading ------------------------------------------------------------

    def update(self) -> int:
        """Read shards not seen yet (and new server rows); returns the samples added."""
        added = 0
        try:
            names = sorted(p.name for p in self.cell_dir.glob(SHARD_GLOB))
        except OSError:
            names = []
        for name in names:
            if name in self.shards_read or name in self.shards_failed:
                continue
            path = self.cell_dir / name
            try:
                table = pq.read_table(path, columns=list(READ_COLUMNS))
                mtime = os.stat(path).st_mtime_ns
            except Exception as exc:  # a corrupt shard is skipped and named, never fatal
                self.shards_failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            self.shards_read.add(name)
            tag = name[len("samples-"):].rsplit("-", 1)[0]
            self.writers[tag] = max(self.writers.get(tag, 0), mtime)
            added += self._add(table)
        if self.server is not None:
            self.server.update()
        return added

    def _add(self, table: Any) -> int:
        n = table.num_rows
        if not n:
            return 0
        t_ns = table.column("t_ns").to_numpy()
        kind = table.column("kind").to_numpy(zero_copy_only=False).astype(str)
        name = table.column("name").to_numpy(zero_copy_only=False).astype(str)
        latency = table.column("latency_us").to_numpy().astype(np.float64)
        ok = table.column("ok").to_numpy(zero_copy_only=False).astype(bool)
        expected = table.column("expected").to_numpy()
        self.workers.update(table.column("worker").unique().to_pylist())
        self.samples += n

        sec = self._seconds(t_ns)
        done_ns = t_ns + np.round(np.nan_to_num(latency, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0) * 1000
                                  ).astype(np.int64)
        done_sec = self._seconds(done_ns)

        is_connect, is_disconnect = kind == "connect", kind == "disconnect"
        is_lost = (kind == "error") & (name == "connection")
        self.series["connects"].add(sec[is_connect & ok])
        self.series["connect_failures"].add(sec[is_connect & ~ok])
        self.series["disconnects"].add(sec[is_disconnect])
        self.series["acks"].add(sec[(kind == "ack") & ok])
        self.series["pushes"].add(sec[(kind == "push") & ok])
        self.series["failures"].add(sec[~ok])
        # Connected clients: +1 when a connect completes, -1 when a disconnect
        # completes or a connection is found lost (the user will connect anew).
        self.series["level_up"].add(done_sec[is_connect & ok])
        self.series["level_down"].add(done_sec[is_disconnect | is_lost])
        self.connects_ok += int((is_connect & ok).sum())
        self.connect_failures += int((is_connect & ~ok).sum())
        self.disconnects += int(is_disconnect.sum())
        self.lost_connections += int(is_lost.sum())

        for ack_name, push_name in REFERENCE_FANOUT.items():
            sends = (kind == "ack") & (name == ack_name) & ok
            got = (kind == "push") & (name == push_name) & ok
            if sends.any():
                self.fanout_expected.add(sec[sends], expected[sends].astype(np.float64))
                self.fanout_totals["expected"] += int(expected[sends].sum())
            if got.any():
                self.fanout_received.add(sec[got])
                self.fanout_totals["received"] += int(got.sum())

        for k in np.unique(kind):
            of_kind = kind == k
            for nm in np.unique(name[of_kind]):
                mask = of_kind & (name == nm)
                event = self.events.get((str(k), str(nm)))
                if event is None:
                    event = self.events[(str(k), str(nm))] = _Event(str(k), str(nm))
                event.add(latency[mask], ok[mask])
        return n

    def _seconds(self, t_ns: np.ndarray) -> np.ndarray:
        return np.maximum((t_ns - self.start_ns) // NS_PER_S, 0).astype(np.int64)

    # --- figures ------------------------------------------------------------

    def complete_until_ns(self, now_ns: int, *, running: bool) -> int:
        """Time up to which every recording process has flushed its samples.

        While the test runs, a second is complete once each recorder has
        written a shard after it; after the stop, everything is on disk.
        """
        if not running:
            return now_ns
        if not self.writers:
            return self.start_ns
        return min(self.writers.values())

    def snapshot(self, *, now_ns: int, running: bool) -> dict[str, Any]:
        """Everything the Socket.IO page shows, as JSON-ready values."""
        if not running and self.ended_ns is not None:
            now_ns = min(now_ns, self.ended_ns)
        elapsed_s = max(0.0, (now_ns - self.start_ns) / NS_PER_S)
        complete_ns = self.complete_until_ns(now_ns, running=running)
        complete_s = max(0, (complete_ns - self.start_ns) // NS_PER_S)  # whole seconds on disk
        first = max(0, complete_s - MAX_SERIES_S)
        up, down = self.series["level_up"].upto(complete_s), self.series["level_down"].upto(complete_s)
        level = np.cumsum(up - down)
        seconds = list(range(first, complete_s))
        series = {"t": seconds, "concurrent": level[first:].tolist()}
        for key in ("connects", "connect_failures", "disconnects", "acks", "pushes", "failures"):
            series[key] = self.series[key].upto(complete_s)[first:].tolist()

        rate_span = min(5, complete_s)  # connects/s etc. over the last complete seconds
        def recent_rate(key: str) -> float | None:
            if not rate_span:
                return None
            return float(self.series[key].upto(complete_s)[-rate_span:].sum() / rate_span)

        events = []
        duration = max(elapsed_s, 1e-9)
        for (kind, name), event in sorted(self.events.items(),
                                          key=lambda kv: (_KIND_ORDER.get(kv[0][0], 9), -kv[1].count, kv[0][1])):
            if kind == "error":
                continue  # lost connections are counted under connections, not timed
            ok = event.count - event.failed
            events.append({"key": latency_key(kind, name), "kind": kind, "name": name, "count": event.count,
                           "ok": ok, "failed": event.failed, "per_s": ok / duration,
                           **event.figures(fresh=not running)})

        return {
            "start_ns": self.start_ns,
            "elapsed_s": round(elapsed_s, 2),
            "complete_s": int(complete_s),
            "samples": self.samples,
            "shards": len(self.shards_read),
            "shards_failed": dict(self.shards_failed),
            "recorders": len(self.writers),
            "workers": sorted(self.workers),
            "events": events,
            "connections": {
                "concurrent": int(self.connects_ok - self.disconnects - self.lost_connections),
                "peak": int(level.max()) if len(level) else 0,
                "connects": self.connects_ok,
                "connect_failures": self.connect_failures,
                "disconnects": self.disconnects,
                "lost": self.lost_connections,
                "connects_per_s": recent_rate("connects"),
                "disconnects_per_s": recent_rate("disconnects"),
            },
            "fanout": self._fanout(complete_ns, running=running, first=first, complete_s=complete_s),
            "series": series,
            "server": self.server.since(self.start_ns) if self.server is not None else None,
        }

    def _fanout(self, complete_ns: int, *, running: bool, first: int, complete_s: int) -> dict[str, Any] | None:
        expected, received = self.fanout_totals["expected"], self.fanout_totals["received"]
        if not expected and not received:
            return None
        # Settled counts: sends old enough that their deliveries are on disk too.
        settled_s = complete_s if not running else max(0, complete_s - math.ceil(FANOUT_SETTLE_S))
        exp_s = self.fanout_expected.upto(complete_s)
        got_s = self.fanout_received.upto(complete_s)
        settled_expected = int(exp_s[:settled_s].sum())
        settled_received = int(got_s[:settled_s].sum())
        lost = settled_expected - settled_received
        return {
            "expected": expected,
            "received": received,
            "settled_expected": settled_expected,
            "settled_received": settled_received,
            "lost": lost,
            "loss_ratio": lost / settled_expected if settled_expected else None,
            "settled": not running,
            "series_expected": exp_s[first:].tolist(),
            "series_received": got_s[first:].tolist(),
        }
