"""Latency figures computed the direct way, with pandas and numpy on one frame of every sample.

The reports compute them shard by shard (``reports.scan``, ``reports.latency``);
these are the whole-column computations they must match bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.metrics import CURVE_MAX_NINES, CURVE_NINES_STEP, PERCENTILES, Window, latency_key


def steady(samples: pd.DataFrame, window: Window) -> pd.DataFrame:
    t = samples["t_ns"].to_numpy()
    return samples.loc[(t >= window.start_ns) & (t < window.end_ns)]


def latency_table(steady: pd.DataFrame) -> pd.DataFrame:
    """Count, successes, min, max, mean and the PERCENTILES (pandas' linear quantile) per (kind, name)."""
    ops = steady.loc[steady["kind"] != "error"]
    grouped = ops.groupby(["kind", "name"], observed=True)
    good = ops.loc[ops["ok"]].groupby(["kind", "name"], observed=True)["latency_us"]
    levels = [q for _, q in PERCENTILES]
    quantiles = good.quantile(levels).unstack().reindex(columns=levels)
    quantiles.columns = [key for key, _ in PERCENTILES]
    table = pd.DataFrame({"count": grouped.size(), "ok": grouped["ok"].sum()})
    table = table.join(good.agg(["mean", "min", "max"]).add_suffix("_us")).join(quantiles).reset_index()
    table.index = [latency_key(str(k), str(n)) for k, n in zip(table["kind"], table["name"], strict=True)]
    return table.drop(columns=["kind", "name"])


def percentile_curves(steady: pd.DataFrame) -> pd.DataFrame:
    """``numpy.quantile`` of each name on the grid of nines, plus the max."""
    rows = []
    good = steady.loc[(steady["kind"] != "error") & steady["ok"]]
    for (kind, name), values in good.groupby(["kind", "name"], observed=True)["latency_us"]:
        arr = values.to_numpy()
        top = min(CURVE_MAX_NINES, math.log10(len(arr))) if len(arr) > 1 else 0.0
        nines = np.arange(0.0, top + 1e-9, CURVE_NINES_STEP)
        q = 1.0 - 10.0 ** -nines
        rows.append(pd.DataFrame({
            "key": latency_key(str(kind), str(name)),
            "percentile": np.append(q * 100, 100.0),
            "nines": np.append(nines, top),
            "latency_us": np.append(np.quantile(arr, q), arr.max()),
        }))
    return pd.concat(rows, ignore_index=True)


def latency_timeline(samples: pd.DataFrame, window: Window, bin_s: int) -> pd.DataFrame:
    """p50 and p99 (pandas' linear quantile) of each name's successful samples per bucket, whole run."""
    good = samples.loc[(samples["kind"] != "error") & samples["ok"], ["t_ns", "kind", "name", "latency_us"]]
    seconds = (good["t_ns"].to_numpy() - window.load_start_ns) // (bin_s * 1_000_000_000) * bin_s
    q = good.assign(second=seconds).groupby(["kind", "name", "second"], observed=True)["latency_us"]
    table = q.quantile([0.5, 0.99]).unstack()
    table.columns = ["p50_us", "p99_us"]
    table = table.reset_index()
    table["key"] = [latency_key(str(k), str(n)) for k, n in zip(table["kind"], table["name"], strict=True)]
    return table[["key", "second", "p50_us", "p99_us"]]


def median_completion_gap_s(samples: pd.DataFrame, window: Window) -> float:
    """The median gap between consecutive answers (successful acks and pushes) completing in the window."""
    rows = samples.loc[samples["kind"].isin(["ack", "push"]) & samples["ok"]]
    done = np.sort(rows["t_ns"].to_numpy() + np.round(rows["latency_us"].to_numpy() * 1000).astype(np.int64))
    inside = done[(done > window.start_ns) & (done < window.end_ns)]
    return float(np.median(np.diff(inside))) / 1e9 if len(inside) > 1 else 0.0
