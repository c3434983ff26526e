"""The target's garbage-collector pauses (``gc.csv``) held against the latency of the samples.

A cell's target writes every collection it runs to ``gc.csv`` (the reference
target with ``--gc-log``, your own app with ``sioharness.core.gc_pauses.record_gc_pauses``;
several instances write ``gc-1.csv``, ``gc-2.csv``, ...). This module reads
those files, counts the pauses of the steady window, and answers one question:
of the samples slower than the p99, what share was in flight while the
server was collecting? A sample overlaps a pause when its interval from
``t_ns`` (sent) to ``t_ns + latency`` (answered) intersects the pause's
``[t_ns, t_ns + duration]``; both clocks are the machine's wall clock. Only
pauses of ``LONG_PAUSE_MS`` or more are held against samples: under load a
server runs a generation-0 collection of some 50 us every few milliseconds,
so nearly every sample of a few milliseconds meets one, and such a pause
cannot explain a tail.

It also bins the main event's latency at a fine resolution (the max per
50 ms, see ``bin_ns``) for the GC timeline plot, so a collector that stalls
every half second shows as a comb of spikes on its pauses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reports import fmt
from sioharness.core.gc_pauses import GC_CSV_COLUMNS, GC_CSV_GLOB
from sioharness.core.run_record import RunRecord

if TYPE_CHECKING:
    from reports.window import Window

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
#: the GC timeline's bucket: fine enough to show a 0.5 s period
GC_BIN_NS = 50 * NS_PER_MS
#: at most this many buckets: a long run gets wider ones
MAX_GC_BINS = 20_000
#: the longest pauses listed in the summary
MAX_LONGEST = 5
#: pauses at least this long are held against the slow samples (and shaded on the plot)
LONG_PAUSE_MS = 1.0


@dataclass
class GcView:
    """What the reports show of a cell's GC pauses: the summary's ``gc`` object and the plot's data."""

    key: str | None
    """The latency key the plot and the overlap figure use (the main event, else connect)."""
    timeline: pd.DataFrame
    """The key's max latency per bucket over the whole load: ``t_s`` (bucket start), ``max_us``."""
    bin_ns: int
    pauses: pd.DataFrame | None
    """Every recorded pause in the load: ``start_s``, ``duration_ms``, ``generation``; None without gc.csv."""
    summary: dict[str, Any] | None
    """``summary.json``'s ``gc`` object; None without gc.csv."""
    warmup_s: float = 0.0


# --- pure logic ------------------------------------------------------------------------

def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of closed intervals ``[starts[i], ends[i]]`` as sorted, disjoint intervals."""
    if len(starts) == 0:
        return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    s = np.asarray(starts, dtype=np.int64)[order]
    e = np.asarray(ends, dtype=np.int64)[order]
    reach = np.maximum.accumulate(e)
    first = np.ones(len(s), dtype=bool)
    first[1:] = s[1:] > reach[:-1]
    heads = np.flatnonzero(first)
    return s[heads], np.maximum.reduceat(e, heads)


def overlapping(begin_ns: np.ndarray, end_ns: np.ndarray, pause_start_ns: np.ndarray,
                pause_end_ns: np.ndarray) -> np.ndarray:
    """Which intervals ``[begin, end]`` intersect at least one pause ``[start, end]`` (closed intervals)."""
    begin = np.asarray(begin_ns, dtype=np.int64)
    end = np.asarray(end_ns, dtype=np.int64)
    out = np.zeros(len(begin), dtype=bool)
    if len(begin) == 0 or len(pause_start_ns) == 0:
        return out
    starts, ends = merge_intervals(np.asarray(pause_start_ns), np.asarray(pause_end_ns))
    # The last pause that starts no later than the interval ends: the only one that can reach back to it.
    last = np.searchsorted(starts, end, side="right") - 1
    some = last >= 0
    out[some] = ends[last[some]] >= begin[some]
    return out


def overlap_share(t_ns: np.ndarray, latency_us: np.ndarray, pause_t_ns: np.ndarray,
                  pause_duration_ns: np.ndarray) -> tuple[int, float | None]:
    """``(samples overlapping a pause, their share)`` of samples sent at ``t_ns`` and answered ``latency_us`` later."""
    t = np.asarray(t_ns, dtype=np.int64)
    if len(t) == 0:
        return 0, None
    answered = t + np.round(np.asarray(latency_us, dtype=np.float64) * 1000).astype(np.int64)
    pause_t = np.asarray(pause_t_ns, dtype=np.int64)
    hits = int(overlapping(t, answered, pause_t, pause_t + np.asarray(pause_duration_ns, dtype=np.int64)).sum())
    return hits, hits / len(t)


def bin_ns(span_ns: int) -> int:
    """The GC timeline's bucket: ``GC_BIN_NS``, wider when the load would need more than ``MAX_GC_BINS``."""
    return max(GC_BIN_NS, math.ceil(max(span_ns, 1) / MAX_GC_BINS / GC_BIN_NS) * GC_BIN_NS)


def max_per_bin(t_ns: np.ndarray, latency_us: np.ndarray, load_start_ns: int, end_ns: int,
                width_ns: int) -> pd.DataFrame:
    """The max latency of the samples sent in each bucket of ``[load_start, end)``; empty buckets left out."""
    t = np.asarray(t_ns, dtype=np.int64)
    inside = (t >= load_start_ns) & (t < end_ns)
    if not inside.any():
        return pd.DataFrame({"t_s": pd.Series(dtype=float), "max_us": pd.Series(dtype=float)})
    bucket = (t[inside] - load_start_ns) // width_ns
    frame = pd.DataFrame({"bucket": bucket, "latency_us": np.asarray(latency_us, dtype=float)[inside]})
    top = frame.groupby("bucket", sort=True)["latency_us"].max()
    return pd.DataFrame({"t_s": top.index.to_numpy() * (width_ns / NS_PER_S), "max_us": top.to_numpy()})


# --- reading ---------------------------------------------------------------------------

def gc_files(cell_dir: Path) -> list[Path]:
    """The cell's GC logs: ``gc.csv`` or one per instance (``gc-1.csv``, ...)."""
    return sorted(p for p in Path(cell_dir).glob(GC_CSV_GLOB) if p.is_file())


def read_gc_csv(path: Path, notes: list[str]) -> pd.DataFrame | None:
    """One GC log, its unusable rows dropped (and counted in ``notes``); None when the file is unusable."""
    try:
        frame = pd.read_csv(path, dtype=str, on_bad_lines="skip", encoding="ascii")
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        notes.append(f"{path.name} not read: {exc}")
        return None
    missing = [c for c in GC_CSV_COLUMNS if c not in frame.columns]
    if missing:
        notes.append(f"{path.name} not read: no column {', '.join(missing)} (columns: {', '.join(GC_CSV_COLUMNS)})")
        return None
    numbers = frame[list(GC_CSV_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    good = np.isfinite(numbers).all(axis=1) & (numbers["duration_ns"] >= 0) & (numbers["t_ns"] > 0)
    if not good.all():
        notes.append(f"{path.name}: {int((~good).sum()):,} unusable row(s) left out")
    return numbers.loc[good].astype("int64")


def read_gc_pauses(cell_dir: Path, notes: list[str]) -> tuple[pd.DataFrame | None, list[str]]:
    """Every pause of the cell's GC logs, sorted by start, and the files read; None when there is no log."""
    files = gc_files(cell_dir)
    frames = [f for f in (read_gc_csv(p, notes) for p in files) if f is not None]
    if not frames:
        return None, [p.name for p in files]
    pauses = pd.concat(frames, ignore_index=True).sort_values("t_ns", kind="stable").reset_index(drop=True)
    return pauses, [p.name for p in files]


# --- figures ---------------------------------------------------------------------------

def timed_key(latency: pd.DataFrame, main_event: str | None) -> str | None:
    """The latency key the GC view holds against the pauses: the main event, else connect."""
    if main_event is not None and main_event in latency.index:
        return main_event
    return "connect" if "connect" in latency.index and latency.at["connect", "ok"] > 0 else None


def _key_samples(samples: pd.DataFrame, latency: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``t_ns`` and ``latency_us`` of the key's successful samples (the whole run)."""
    kind, name = str(latency.at[key, "kind"]), str(latency.at[key, "name"])
    mask = ((samples["kind"] == kind) & (samples["name"] == name) & samples["ok"]).to_numpy()
    return samples["t_ns"].to_numpy()[mask], samples["latency_us"].to_numpy()[mask]


def gc_setting(run: RunRecord | None) -> str | None:
    """The target's ``--gc`` setting as the runner recorded it (run.json ``gc``)."""
    value = run.extra.get("gc") if run is not None else None
    return value if isinstance(value, str) else None


def pause_figures(pauses: pd.DataFrame, window: Window) -> dict[str, Any]:
    """Counts and lengths of the pauses that started in the steady window."""
    t = pauses["t_ns"].to_numpy()
    steady = pauses.loc[(t >= window.start_ns) & (t < window.end_ns)]
    durations_ms = steady["duration_ns"].to_numpy() / NS_PER_MS
    total_ms = float(durations_ms.sum())
    by_generation = {str(g): int(n) for g, n in steady["generation"].value_counts().sort_index().items()}
    longest = steady.assign(ms=durations_ms).nlargest(MAX_LONGEST, "ms")
    return {
        "pauses": len(steady),
        "pauses_per_s": len(steady) / window.duration_s if window.duration_s > 0 else None,
        "by_generation": by_generation,
        "total_ms": total_ms,
        "max_ms": float(durations_ms.max()) if len(steady) else None,
        "mean_ms": float(durations_ms.mean()) if len(steady) else None,
        "share_of_time": total_ms / 1000 / window.duration_s if window.duration_s > 0 else None,
        "collected": int(steady["collected"].sum()),
        "uncollectable": int(steady["uncollectable"].sum()),
        "longest": [{"start_s": (int(r.t_ns) - window.load_start_ns) / NS_PER_S, "ms": float(r.ms),
                     "generation": int(r.generation)} for r in longest.itertuples()],
    }


def tail_overlap(t_ns: np.ndarray, latency_us: np.ndarray, p99_us: float | None, pauses: pd.DataFrame,
                 window: Window) -> dict[str, Any]:
    """Of the steady samples slower than p99, how many overlap a long pause; the same for all (the chance level)."""
    steady = (t_ns >= window.start_ns) & (t_ns < window.end_ns)
    t, lat = t_ns[steady], latency_us[steady]
    long = pauses.loc[pauses["duration_ns"] >= LONG_PAUSE_MS * NS_PER_MS]
    pause_t, pause_d = long["t_ns"].to_numpy(), long["duration_ns"].to_numpy()
    out: dict[str, Any] = {"overlap_min_ms": LONG_PAUSE_MS, "p99_us": p99_us, "above_p99": 0,
                           "above_p99_overlapping": 0, "above_p99_overlap_share": None, "all_overlap_share": None}
    if p99_us is None or not len(t):
        return out
    slow = lat > p99_us
    out["above_p99"] = int(slow.sum())
    out["above_p99_overlapping"], out["above_p99_overlap_share"] = overlap_share(t[slow], lat[slow], pause_t, pause_d)
    out["all_overlap_share"] = overlap_share(t, lat, pause_t, pause_d)[1]
    return out


def pauses_in_load(pauses: pd.DataFrame, window: Window) -> pd.DataFrame:
    """The pauses that start during the load, as the timeline draws them (seconds, ms, generation)."""
    t = pauses["t_ns"].to_numpy()
    in_load = pauses.loc[(t >= window.load_start_ns) & (t < window.end_ns)]
    return pd.DataFrame({
        "start_s": (in_load["t_ns"].to_numpy() - window.load_start_ns) / NS_PER_S,
        "duration_ms": in_load["duration_ns"].to_numpy() / NS_PER_MS,
        "generation": in_load["generation"].to_numpy(),
    })


def key_p99_us(latency: pd.DataFrame, key: Any) -> float | None:
    """The p99 of the latency row ``key``, or None."""
    p99 = latency.at[key, "p99_us"] if key is not None else None
    return float(p99) if p99 is not None and pd.notna(p99) else None


def view_summary(files: list[str], run: RunRecord | None, key: Any, width_ns: int, pauses: pd.DataFrame,
                 window: Window, tail: dict[str, Any]) -> dict[str, Any]:
    """summary.json's ``gc`` object: where the pauses came from, their figures, the slow samples' overlap."""
    return {"files": files, "setting": gc_setting(run), "key": key, "bin_ms": width_ns / NS_PER_MS,
            **pause_figures(pauses, window), **tail}


def gc_view(cell_dir: Path, samples: pd.DataFrame, window: Window, latency: pd.DataFrame,
            main_event: str | None, run: RunRecord | None, notes: list[str]) -> GcView:
    """The GC view of one cell: its pauses, the overlap figure, and the fine latency timeline."""
    key = timed_key(latency, main_event)
    width = bin_ns(window.end_ns - window.load_start_ns)
    t_ns, latency_us = (_key_samples(samples, latency, key) if key is not None
                        else (np.array([], dtype=np.int64), np.array([], dtype=float)))
    timeline = max_per_bin(t_ns, latency_us, window.load_start_ns, window.end_ns, width)
    pauses, files = read_gc_pauses(cell_dir, notes)
    if pauses is None:
        return GcView(key, timeline, width, None, None, window.warmup_s)
    shown = pauses_in_load(pauses, window)
    p99_us = key_p99_us(latency, key)
    summary = view_summary(files, run, key, width, pauses, window,
                           tail_overlap(t_ns, latency_us, p99_us, pauses, window))
    return GcView(key, timeline, width, shown, summary, window.warmup_s)


# --- the report section -----------------------------------------------------------------

TableParts = tuple[list[str], list[list[str]], list[bool]]


def section_parts(gc: dict[str, Any] | None, setting: str | None = None) -> tuple[list[str], list[TableParts]]:
    """The text and tables of a cell report's GC section, from ``summary.json``'s ``gc`` object."""
    if not gc:
        how = f" (GC setting {setting})" if setting else ""
        return ([f"No GC pauses recorded{how}: the cell holds no gc.csv. The reference target writes one with "
                 "--gc-log (the cell runner passes it); in your own app, call "
                 "sioharness.core.gc_pauses.record_gc_pauses()."], [])
    text = [
        f"The target's garbage collector (setting: {gc.get('setting') or 'not recorded'}), from "
        f"{', '.join(gc.get('files') or [])}: {fmt.count(gc['pauses'])} pauses in the steady window, "
        f"{fmt.number(gc['total_ms'])} ms in all ({fmt.ratio(gc['share_of_time'])} of the time), "
        f"longest {fmt.number(gc['max_ms'])} ms."
    ]
    if gc.get("key") and gc.get("p99_us") is not None:
        text.append(
            f"Of the {fmt.count(gc['above_p99'])} {gc['key']} samples slower than its p99 "
            f"({fmt.ms(gc['p99_us'])} ms), {fmt.count(gc['above_p99_overlapping'])} "
            f"({fmt.ratio(gc['above_p99_overlap_share'])}) were in flight during a pause of "
            f"{gc['overlap_min_ms']:g} ms or more; of all its samples, {fmt.ratio(gc['all_overlap_share'])} were "
            "(the share chance alone would give)."
        )
    generations = ", ".join(f"generation {g}: {fmt.count(n)}" for g, n in (gc.get("by_generation") or {}).items())
    tables: list[TableParts] = [(
        ["pauses", "per s", "total ms", "mean ms", "max ms", "share of time", "collected", "uncollectable"],
        [[fmt.count(gc["pauses"]), fmt.rate(gc["pauses_per_s"]), fmt.number(gc["total_ms"]),
          fmt.number(gc["mean_ms"]), fmt.number(gc["max_ms"]), fmt.ratio(gc["share_of_time"]),
          fmt.count(gc["collected"]), fmt.count(gc["uncollectable"])]],
        [True] * 8,
    )]
    if gc.get("longest"):
        tables.append((["longest pauses: from (s since load start)", "ms", "generation"],
                       [[fmt.seconds(p["start_s"], 3), fmt.number(p["ms"]), str(p["generation"])]
                        for p in gc["longest"]],
                       [True, True, True]))
    if generations:
        text.append(f"By generation: {generations}.")
    return text, tables
