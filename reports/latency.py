"""Exact latency figures of each measured name: the table, the percentile curves, the per-bucket percentiles.

Percentiles are exact over the successful samples, on float microseconds,
linear between closest ranks (Hyndman-Fan type 7), bit for bit what pandas
(the table, the per-bucket p50/p99) and numpy (the curves) give on the full
column. Each name's latencies come from the scan's ``LatencyStore``: grouped
by time bucket (``exact.order_by_bin``), then the order statistics each figure
needs are placed with ``numpy.partition`` (``reports.exact``); nothing is
sorted whole. The mean is a float64 sum, equal to pandas' to a unit or two
in the last place.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports.exact import bin_quantiles, exact_pandas_quantiles, order_by_bin
from reports.scan import OVERLAP, STEADY, LatencyStore, Scan
from reports.window import Window, bin_seconds
from sioharness.core.figures import PERCENTILES as PERCENTILES  # re-exported
from sioharness.core.figures import latency_key as latency_key  # re-exported
from sioharness.core.schema import KINDS

# Percentile-curve grid: "nines" x gives percentile 100 * (1 - 10**-x).
CURVE_NINES_STEP = 0.05
CURVE_MAX_NINES = 5.0


def _kind_order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


@dataclass
class TimedLatency:
    """One name's exact latency figures: the steady window's (successful samples) and per time bucket."""

    steady_ok: int
    mean_us: float = math.nan
    min_us: float = math.nan
    max_us: float = math.nan
    percentiles: list[float] = field(default_factory=lambda: [math.nan] * len(PERCENTILES))
    curve: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    """(``percentile``, ``nines``, ``latency_us``) arrays (``percentile_curves``); None without a steady sample."""
    above_p99: int = 0
    above_p99_overlapping: int = 0
    seconds: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    p50_p99: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))


def timed_latencies(scan: Scan, window: Window, *, with_overlap: bool) -> dict[int, TimedLatency]:
    """Exact latency figures of every stored name (``scan.stores``), each store freed once used."""
    out: dict[int, TimedLatency] = {}
    for gid in sorted(scan.stores):
        store = scan.stores.pop(gid)
        out[gid] = _timed_latency(store, int(scan.steady_ok[gid]), bin_seconds(window), with_overlap)
    return out


def _timed_latency(store: LatencyStore, steady_ok: int, bin_s: int, with_overlap: bool) -> TimedLatency:
    first_bin, n_bins = store.first_bin, store.n_bins
    values, bins, flags = store.release()
    by_bin, flags_by_bin, starts = order_by_bin(values, bins, flags, n_bins)
    del values, bins, flags
    steady = (flags_by_bin & STEADY).astype(bool)
    out = TimedLatency(steady_ok=steady_ok)
    arr = by_bin[steady]
    if len(arr):
        n = len(arr)
        out.percentiles = exact_pandas_quantiles(arr, [q for _, q in PERCENTILES])
        out.min_us, out.max_us = float(arr.min()), float(arr.max())
        out.mean_us = float(arr.sum()) / n
        p99 = out.percentiles[[key for key, _ in PERCENTILES].index("p99_us")]
        out.above_p99 = int(np.count_nonzero(arr > p99))
        if with_overlap:
            out.above_p99_overlapping = int(np.count_nonzero(
                (by_bin > p99) & steady & (flags_by_bin & OVERLAP).astype(bool)))
        # Beyond log10(n) nines there is no sample left to resolve the tail.
        top = min(CURVE_MAX_NINES, math.log10(n)) if n > 1 else 0.0
        nines = np.arange(0.0, top + 1e-9, CURVE_NINES_STEP)
        q = 1.0 - 10.0 ** -nines
        # Arrays, not a frame: a report of 100,000 names builds one frame for all of them.
        out.curve = (np.append(q * 100, 100.0), np.append(nines, top),
                     np.append(np.quantile(arr, q, overwrite_input=True), out.max_us))
    del arr, steady, flags_by_bin
    present, quantiles = bin_quantiles(by_bin, starts, (0.5, 0.99))
    out.seconds = (present + first_bin) * bin_s
    out.p50_p99 = quantiles
    return out


def latency_table(groups: list[tuple[str, str]], scan: Scan, timed: dict[int, TimedLatency],
                  duration_s: float) -> pd.DataFrame:
    """Count, success, rate, mean, exact percentiles and max per (kind, name).

    Percentiles and mean are over successful samples only: a timed-out ack
    has no latency, it has a failure.
    """
    columns = ["kind", "name", "count", "ok", "failed", "per_s", "mean_us", "min_us",
               *(key for key, _ in PERCENTILES), "max_us"]
    rows = [gid for gid, (kind, _) in enumerate(groups) if kind != "error" and scan.steady[gid] > 0]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="key"))
    figures = [timed.get(gid) or TimedLatency(steady_ok=0) for gid in rows]
    table = pd.DataFrame({
        "kind": [groups[gid][0] for gid in rows],
        "name": [groups[gid][1] for gid in rows],
        "count": scan.steady[rows].astype("int64"),
        "ok": scan.steady_ok[rows].astype("int64"),
        "mean_us": [f.mean_us for f in figures],
        "min_us": [f.min_us for f in figures],
        "max_us": [f.max_us for f in figures],
        **{key: [f.percentiles[i] for f in figures] for i, (key, _) in enumerate(PERCENTILES)},
    })
    table["failed"] = table["count"] - table["ok"]
    table["per_s"] = table["ok"] / duration_s
    table["key"] = [latency_key(k, n) for k, n in zip(table["kind"], table["name"], strict=True)]
    table["_order"] = [_kind_order(k) for k in table["kind"]]
    table = table.sort_values(["_order", "count", "name"], ascending=[True, False, True], kind="stable")
    return table.set_index("key")[columns]


def percentile_curves(groups: list[tuple[str, str]], timed: dict[int, TimedLatency]) -> pd.DataFrame:
    """Exact quantiles of each name on a log grid of "nines" (90, 99, 99.9, ...), plus the max."""
    keys: list[str] = []
    columns: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for gid in sorted(timed):
        curve = timed[gid].curve
        if curve is not None:
            keys.extend([latency_key(*groups[gid])] * len(curve[0]))
            for column, values in zip(columns, curve, strict=True):
                column.append(values)
    if not keys:
        return pd.DataFrame(columns=["key", "percentile", "nines", "latency_us"])
    return pd.DataFrame({"key": keys, **{name: np.concatenate(column) for name, column in
                                         zip(("percentile", "nines", "latency_us"), columns, strict=True)}})


def latency_timeline(groups: list[tuple[str, str]], timed: dict[int, TimedLatency]) -> pd.DataFrame:
    """p50 and p99 of each name's successful samples per bucket (``second`` = its start), over the whole run."""
    keys: list[str] = []
    seconds: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for gid in sorted(timed):
        figures = timed[gid]
        keys.extend([latency_key(*groups[gid])] * len(figures.seconds))
        seconds.append(figures.seconds)
        values.append(figures.p50_p99)
    if not keys:
        return pd.DataFrame(columns=["key", "second", "p50_us", "p99_us"])
    both = np.concatenate(values)
    return pd.DataFrame({"key": keys, "second": np.concatenate(seconds).astype(np.int64),
                         "p50_us": both[:, 0], "p99_us": both[:, 1]})
