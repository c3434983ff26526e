"""Plots as inline PNGs (matplotlib's Agg canvas, no pyplot, no display needed).

Every function returns a ``Plot`` whose ``uri`` is a ``data:image/png;base64``
URI, so report.html is one file that opens offline. A plot with nothing to
show still renders, with a "no data" note, so a section never loses its image.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Names come from the server and the load (event names, error texts): "$$" in one must be
# drawn as two dollar signs, not parsed as mathtext, which can fail on it.
matplotlib.rcParams["text.parse_math"] = False

DPI = 100
WIDTH_IN, HEIGHT_IN = 9.0, 3.4
NINES_TICKS = (0, 1, 2, 3, 4, 5)
NINES_LABELS = ("0%", "90%", "99%", "99.9%", "99.99%", "99.999%")
WARMUP_STYLE = {"color": "0.85", "alpha": 0.6, "lw": 0}
STALL_STYLE = {"color": "C3", "alpha": 0.18, "lw": 0}
# At most this many names per latency plot, main event first; the tables list all.
MAX_KEYS = 5
MAX_KEYS_OVER_TIME = 3
#: the longest name a legend shows in full
LABEL_CHARS = 48


@dataclass(frozen=True)
class Plot:
    """One rendered image and the text that stands in for it."""

    title: str
    uri: str
    width: int
    height: int
    has_data: bool


def _figure(height: float = HEIGHT_IN, *, left_in: float = 0.8, right_in: float = 0.25) -> Figure:
    """A figure with fixed margins (in inches): a third faster than a layout engine."""
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left_in / WIDTH_IN, right=1 - right_in / WIDTH_IN,
                        bottom=0.55 / height, top=1 - 0.35 / height, hspace=0.25)
    return fig


def _finish(fig: Figure, title: str, has_data: bool) -> Plot:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    width, height = (int(round(v * DPI)) for v in fig.get_size_inches())
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Plot(title=title, uri=uri, width=width, height=height, has_data=has_data)


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _from_zero(ax, *series) -> None:
    """Y axis from 0 to a little above the highest value, so a flat line never sits on the frame."""
    top = max((float(np.nanmax(s)) for s in series if len(s) and np.isfinite(s).any()), default=0.0)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)


def _bucket_width(x) -> float:
    """Width of evenly spaced buckets (1 s, wider for a long load), from their starts."""
    x = np.asarray(x, dtype=float)
    return float(x[1] - x[0]) if len(x) > 1 and x[1] > x[0] else 1.0


def _step(ax, x, y, **kwargs) -> None:
    """Per-second buckets as steps, the last bucket drawn to its right edge too."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x):
        x, y = np.append(x, x[-1] + _bucket_width(x)), np.append(y, y[-1])
    ax.step(x, y, where="post", **kwargs)


def _warmup(ax, warmup_s: float) -> None:
    if warmup_s > 0:
        ax.axvspan(0, warmup_s, label="warm-up", **WARMUP_STYLE)


def _stalls(ax, stalls: Sequence[dict]) -> None:
    """Shade each stall (``start_s``, ``length_s`` from the load start)."""
    for i, stall in enumerate(stalls):
        ax.axvspan(stall["start_s"], stall["start_s"] + stall["length_s"], label="stall" if i == 0 else None,
                   **STALL_STYLE)


def _curves_plot(curves: Sequence[tuple[str, pd.DataFrame]], title: str, *, lw: float, legend_size: str,
                 empty: str = "no data") -> Plot:
    """Latency (ms) against percentile on a "nines" axis, one line per (label, curve)."""
    fig = _figure(right_in=0.5)
    ax = fig.add_subplot()
    shown = [(label, c) for label, c in curves if not c.empty]
    for label, c in shown:
        ax.plot(c["nines"], c["latency_us"] / 1000, label=label, lw=lw)
    if shown:
        _nines_axis(ax)
        ax.set_ylabel("latency (ms)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=legend_size)
    else:
        _no_data(ax, empty)
    ax.set_title(title)
    return _finish(fig, title, bool(shown))


def _rows_of(frame: pd.DataFrame, keys: Sequence[str], most: int) -> list[tuple[str, pd.DataFrame]]:
    """(key, its rows) for the first ``most`` of ``keys`` that ``frame`` has, in one pass over ``frame``."""
    present = set(frame["key"].unique())
    shown = [k for k in keys if k in present][:most]
    rows = dict(tuple(frame.loc[frame["key"].isin(shown)].groupby("key", sort=False))) if shown else {}
    return [(key, rows[key]) for key in shown]


def short_label(text: str) -> str:
    """A name as a legend shows it: at most LABEL_CHARS characters."""
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "\u2026"


def percentile_curves(curves: pd.DataFrame, keys: Sequence[str], title: str = "Latency by percentile") -> Plot:
    """Latency (ms) against percentile on a "nines" axis: 90, 99, 99.9, ..."""
    return _curves_plot([(short_label(key), rows) for key, rows in _rows_of(curves, keys, MAX_KEYS)], title,
                        lw=1.5, legend_size="small", empty="no successful timed samples")


def _nines_axis(ax) -> None:
    ax.set_xticks(NINES_TICKS, NINES_LABELS)
    ax.set_xlim(0, max(NINES_TICKS))
    ax.set_xlabel("percentile")


def latency_over_time(timeline: pd.DataFrame, keys: Sequence[str], warmup_s: float) -> Plot:
    """Per-second p50 (solid) and p99 (dashed) of each name."""
    title = "Latency over time (p50 solid, p99 dashed)"
    fig = _figure()
    ax = fig.add_subplot()
    shown = _rows_of(timeline, keys, MAX_KEYS_OVER_TIME)
    if shown:
        _warmup(ax, warmup_s)
        for i, (key, t) in enumerate(shown):
            color = f"C{i}"
            ax.plot(t["second"], t["p50_us"] / 1000, color=color, lw=1.3, label=f"{short_label(key)} p50")
            ax.plot(t["second"], t["p99_us"] / 1000, color=color, lw=1.0, ls="--", label=f"{short_label(key)} p99")
        ax.set_xlabel("seconds since load start")
        ax.set_ylabel("latency (ms)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="x-small", ncols=2)
    else:
        _no_data(ax, "no successful timed samples")
    ax.set_title(title)
    return _finish(fig, title, bool(shown))


def throughput_over_time(rates: pd.DataFrame, warmup_s: float, stalls: Sequence[dict] = ()) -> Plot:
    """Acks and pushes delivered per second, and failures; stalls shaded."""
    title = "Event throughput over time"
    fig = _figure()
    ax = fig.add_subplot()
    series = [(col, label)
              for col, label in (("acks", "acks/s"), ("pushes", "pushes/s"), ("ack_failures", "ack failures/s"))
              if rates[col].any()]
    if series:
        _warmup(ax, warmup_s)
        _stalls(ax, stalls)
        for col, label in series:
            _step(ax, rates.index, rates[col], label=label, lw=1.3)
        ax.set_xlabel("seconds since load start")
        ax.set_ylabel("per second")
        _from_zero(ax, *(rates[col].to_numpy() for col, _ in series))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    else:
        _no_data(ax, "no acks or pushes in this run")
    ax.set_title(title)
    return _finish(fig, title, bool(series))


def connections_over_time(
    rates: pd.DataFrame, concurrency: pd.DataFrame, locust_users: pd.DataFrame | None, warmup_s: float
) -> Plot:
    """Connects and disconnects per second (left axis), connected clients (right axis)."""
    title = "Connections over time"
    fig = _figure(right_in=0.8)
    ax = fig.add_subplot()
    has_rates = bool(rates["connects"].any() or rates["disconnects"].any() or rates["connect_failures"].any())
    has_level = bool(concurrency["peak"].any())
    if not (has_rates or has_level):
        _no_data(ax, "no connects or disconnects recorded")
        ax.set_title(title)
        return _finish(fig, title, False)
    _warmup(ax, warmup_s)
    _step(ax, rates.index, rates["connects"], label="connects/s", lw=1.3)
    _step(ax, rates.index, rates["disconnects"], label="disconnects/s", lw=1.0)
    if rates["connect_failures"].any():
        _step(ax, rates.index, rates["connect_failures"], label="connect failures/s", lw=1.0)
    ax.set_xlabel("seconds since load start")
    ax.set_ylabel("per second")
    _from_zero(ax, rates["connects"].to_numpy(), rates["disconnects"].to_numpy(), rates["connect_failures"].to_numpy())
    ax.grid(True, alpha=0.3)
    right = ax.twinx()
    right.plot(concurrency["second"] + _bucket_width(concurrency["second"]), concurrency["connected"], color="k",
               lw=1.2, label="connected clients")
    if locust_users is not None and not locust_users.empty:
        right.plot(locust_users["t_s"], locust_users["users"], color="0.5", lw=1.0, ls=":", label="Locust users")
    right.set_ylabel("clients")
    users = locust_users["users"].to_numpy() if locust_users is not None else np.array([])
    _from_zero(right, concurrency["connected"].to_numpy(), users)
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = right.get_legend_handles_labels()
    ax.legend(handles + h2, labels + l2, loc="upper left", fontsize="small")
    ax.set_title(title)
    return _finish(fig, title, True)


def server_over_time(timeline: pd.DataFrame | None, warmup_s: float,
                     loadgen: pd.DataFrame | None = None) -> Plot:
    """The target's CPU (cores busy) and RSS (MiB) over time, one above the other.

    The load generator's CPU, when sampled, is drawn dashed beside the target's.
    """
    title = "Server CPU and RSS over time"
    fig = _figure(height=4.6)
    if timeline is None or timeline.empty:
        ax = fig.add_subplot()
        _no_data(ax, "no usable server.csv")
        ax.set_title(title)
        return _finish(fig, title, False)
    cpu_ax, rss_ax = fig.subplots(2, 1, sharex=True)
    for ax in (cpu_ax, rss_ax):
        _warmup(ax, warmup_s)
        ax.grid(True, alpha=0.3)
    cpu_ax.plot(timeline["t_s"], timeline["cpu_cores"], lw=1.3, color="C3", label="target")
    cpu_series = [timeline["cpu_cores"].to_numpy()]
    if loadgen is not None and not loadgen.empty:
        cpu_ax.plot(loadgen["t_s"], loadgen["cpu_cores"], lw=1.0, ls="--", color="C7", label="load generator")
        cpu_series.append(loadgen["cpu_cores"].to_numpy())
        cpu_ax.legend(loc="upper right", fontsize="small")
    cpu_ax.set_ylabel("CPU (cores)")
    _from_zero(cpu_ax, *cpu_series)
    cpu_ax.set_title(title)
    rss_ax.plot(timeline["t_s"], timeline["rss_bytes"] / 2**20, lw=1.3, color="C0")
    rss_ax.set_ylabel("RSS (MiB)")
    _from_zero(rss_ax, timeline["rss_bytes"].to_numpy() / 2**20)
    rss_ax.set_xlabel("seconds since load start")
    return _finish(fig, title, True)


# --- several cells ------------------------------------------------------------------

def overlay_curves(curves: Sequence[tuple[str, pd.DataFrame]], title: str) -> Plot:
    """One percentile curve per cell (the frames hold one key each)."""
    return _curves_plot([(short_label(label), c) for label, c in curves], title, lw=1.4, legend_size="x-small")


def overlay_series(series: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str, ylabel: str, *,
                   step: bool = False) -> Plot:
    """One line per cell against seconds since its run start."""
    fig = _figure()
    ax = fig.add_subplot()
    shown = [(short_label(label), x, y) for label, x, y in series if len(x)]
    for label, x, y in shown:
        if step:
            _step(ax, x, y, label=label, lw=1.2)
        else:
            ax.plot(x, y, label=label, lw=1.2)
    if shown:
        ax.set_xlabel("seconds since load start")
        ax.set_ylabel(ylabel)
        _from_zero(ax, *(np.asarray(y, dtype=float) for _, _, y in shown))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="x-small")
    else:
        _no_data(ax)
    ax.set_title(title)
    return _finish(fig, title, bool(shown))


def ranking_bars(labels: Sequence[str], values: Sequence[float | None], title: str, xlabel: str) -> Plot:
    """Horizontal bars of one figure per cell, in ranking order (best on top)."""
    labels = [short_label(label) for label in labels]
    longest = max((len(label) for label in labels), default=10)
    fig = _figure(height=max(2.0, 0.45 * len(labels) + 1.2), left_in=min(4.0, 0.3 + 0.075 * longest))
    ax = fig.add_subplot()
    vals = np.array([np.nan if v is None else v for v in values], dtype=float)
    if np.isfinite(vals).any():
        y = np.arange(len(labels))[::-1]
        ax.barh(y, np.nan_to_num(vals), color="C0")
        ax.set_yticks(y, labels, fontsize="small")
        ax.set_xlabel(xlabel)
        ax.grid(True, axis="x", alpha=0.3)
    else:
        _no_data(ax)
    ax.set_title(title)
    return _finish(fig, title, bool(np.isfinite(vals).any()))
