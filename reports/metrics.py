"""Figures of one cell, computed from the raw samples shard by shard.

Pure computations: samples, frames and plain values in, frames and plain
values out; no plots. The samples are never held as one frame: one read
(``reports.scan``; during the first read of the shards when run.json gives
the window) counts what every figure needs and keeps each name's successful
latencies (11 bytes a sample) for the exact percentiles (``reports.latency``)
and the answers' completion times (8 bytes) for the stall check, so a
100-million-sample soak is reported in about 2.5 GB.

Conventions (also in the README):

- Percentiles are exact over the successful samples of the steady window, on
  float microseconds, with linear interpolation between closest ranks
  (``numpy.quantile`` / ``pandas.quantile`` default, Hyndman-Fan type 7): bit
  for bit what pandas (latency table, per-second percentiles) and numpy
  (percentile curves) give on the full column. The mean is a float64 sum, equal
  to pandas' to a unit or two in the last place.
- The load and its steady window: ``reports.window``. Rates are counts in the
  window divided by its length.
- Time series cover the whole load, in one-second buckets counted from the
  load start, so the warm-up shows on the plots; a load longer than
  ``MAX_TIME_BINS`` seconds gets wider buckets, so no timestamp can make a
  series (or its memory) grow without bound.
- A stall is a stretch of the steady window longer than
  ``max(STALL_MIN_S, STALL_GAP_FACTOR x the median gap between completions)``
  in which clients are connected but no ack or push completes (see
  ``find_stalls``).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports.errors import ReportInputError
from reports.gc_pauses import (
    LONG_PAUSE_MS,
    GcView,
    key_p99_us,
    pauses_in_load,
    read_gc_pauses,
    timed_key,
    view_summary,
)
from reports.latency import CURVE_MAX_NINES as CURVE_MAX_NINES  # re-exported
from reports.latency import CURVE_NINES_STEP as CURVE_NINES_STEP  # re-exported
from reports.latency import PERCENTILES as PERCENTILES  # re-exported
from reports.latency import (
    TimedLatency,
    latency_key,
    latency_table,
    latency_timeline,
    percentile_curves,
    timed_latencies,
)
from reports.read_cell import CellData
from reports.scan import (
    LOADGEN_CSV_NAME,
    RATE_SERIES,
    SERVER_CSV_NAME,
    Scan,
    scan_plan,
    scan_samples,
)
from reports.shards import NO_ERROR_MESSAGE as NO_ERROR_MESSAGE  # re-exported: a failure without a text
from reports.shards import SampleSource
from reports.window import DEFAULT_WARMUP_S as DEFAULT_WARMUP_S  # re-exported
from reports.window import MAX_TIME_BINS, Window, bin_seconds, cpu_range, resolve_warmup, steady_window, time_bins
from reports.window import load_bounds as load_bounds  # re-exported
from sioharness.core.cells import CellName
from sioharness.core.run_record import RunRecord
from sioharness.core.scenarios import RANK_CONNECTS, RANK_MEMORY, REFERENCE_FANOUT, ScenarioSpec, spec_of
from sioharness.core.schema import KINDS

NS_PER_S = 1_000_000_000

# Kinds that are operations a client attempted (pushes are deliveries).
OPERATION_KINDS: tuple[str, ...] = ("connect", "disconnect", "ack", "error")
# Distinct error texts kept in a summary (the rest are summed under one key).
MAX_ERRORS = 50
# Rows of the completion times looked at per step of the stall check.
STALL_CHUNK = 1 << 22
# A stall: clients connected, no ack or push completing for longer than
# max(STALL_MIN_S, STALL_GAP_FACTOR x the median gap between completions).
STALL_MIN_S = 1.0
STALL_GAP_FACTOR = 20.0
# Stalls listed one by one in summary.json and in problem lines; the rest are summed.
MAX_STALLS = 50
MAX_STALL_PROBLEMS = 10
# "Memory not returned": RSS after the load exceeds RSS before it by more than
# max(RSS_KEPT_MIN_BYTES, RSS_KEPT_SHARE x before).
RSS_KEPT_MIN_BYTES = 10 * 2**20
RSS_KEPT_SHARE = 0.2
# Fewest server.csv rows in the steady window a least-squares RSS slope is fitted on.
MIN_FIT_ROWS = 3


@dataclass
class CellMetrics:
    """Every figure of one cell; ``summary.build_summary`` turns it into JSON."""

    cell: str
    scenario: str | None
    window: Window
    samples_total: int
    samples_steady: int
    latency: pd.DataFrame
    """One row per measured name, indexed by ``latency_key``."""
    connections: dict[str, Any]
    throughput: dict[str, Any]
    errors: dict[str, int]
    error_breakdown: pd.DataFrame
    """Failures by ``kind``, ``name``, ``error`` (``count``), the ``MAX_ERRORS`` most frequent."""
    error_ratio: float | None
    fanout: dict[str, Any] | None
    server: dict[str, Any] | None
    loadgen: dict[str, Any] | None
    main_event: str | None
    primary: dict[str, Any] | None
    rates: pd.DataFrame
    """Per-second rates over the whole load, indexed by second from the load start."""
    concurrency: pd.DataFrame
    """Per-second connected clients from the samples (``second``, ``connected``, ``peak``)."""
    latency_over_time: pd.DataFrame
    """Per-second p50 and p99 by latency key (``key``, ``second``, ``p50_us``, ``p99_us``)."""
    percentile_curves: pd.DataFrame
    """Exact quantiles on a grid (``key``, ``percentile``, ``nines``, ``latency_us``)."""
    server_timeline: pd.DataFrame | None
    loadgen_timeline: pd.DataFrame | None
    locust_users: pd.DataFrame | None
    locust_check: list[dict[str, Any]] | None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Why figures are incomplete or doubtful (stalls, Locust counts the recorder lacks); like
    ``CellData.problems``, non-empty means partial."""
    lost: list[str] = field(default_factory=list)
    """Problems that mean samples are known to be lost (the summary status becomes ``failed``)."""
    stalls: list[dict[str, float]] = field(default_factory=list)
    """``start_s`` (from the load start) and ``length_s`` of each stall, the first ``MAX_STALLS``."""
    stall_check: dict[str, Any] = field(default_factory=dict)
    """How stalls were looked for: ``threshold_s``, ``median_gap_s``, ``count``, ``total_s``."""
    bin_s: int = 1
    """Width of the time series' buckets, seconds."""
    gc: GcView | None = None
    """The target's GC pauses (gc.csv) against the main event's latency (reports.gc_pauses)."""


def scenario_of(run: RunRecord | None, cell: str) -> str | None:
    """The scenario from run.json, else from the cell name ``mode-server--scenario``."""
    if run is not None and run.scenario:
        return run.scenario
    return CellName.parse(cell).scenario or None


def compute_metrics(data: CellData, *, warmup_s: float | None = None) -> CellMetrics:
    """All figures of one cell. ``warmup_s`` overrides run.json's ``load.warmup_s``."""
    source = data.source
    warmup, warmup_source = resolve_warmup(warmup_s, data.run)
    notes: list[str] = []
    window = steady_window(source, data.run, warmup, warmup_source, data.path, notes)
    prescan, data.prescan = data.prescan, None
    if prescan is not None and prescan.window == window:
        # Counted while the shards were first read (run.json gave this window).
        scan, pauses, gc_files, gc_notes = prescan.scan, prescan.pauses, prescan.gc_files, prescan.gc_notes
    else:
        gc_notes = []
        pauses, gc_files = read_gc_pauses(data.path, gc_notes)
        stats = source.stats
        plan = scan_plan(window, data.server, data.loadgen, pauses, stats.first_ns, stats.last_ns)
        scan = scan_samples(source, plan)
    del prescan
    stats = source.stats
    if scan.steady_total == 0:
        raise ReportInputError(
            data.path,
            f"no samples in the steady window ({warmup:g} s warm-up, {window.duration_s:.3f} s window); "
            f"samples span {(stats.first_ns - window.load_start_ns) / NS_PER_S:.3f} s to "
            f"{(stats.last_ns - window.load_start_ns) / NS_PER_S:.3f} s after the load start",
        )
    duration = window.duration_s
    scenario = scenario_of(data.run, data.cell)
    groups = source.groups

    problems: list[str] = []
    lost: list[str] = []
    # The two memory-heavy steps first, each freeing what it used: the stall check
    # (sorted completion times), then the exact percentiles (each name's latencies).
    concurrency_events = connection_events(np.concatenate(scan.joins), np.concatenate(scan.leaves))
    scan.joins, scan.leaves = [], []
    completions = _joined(scan.completions.release())
    stall_spans, stall_check = find_stalls(completions, scan.answered, concurrency_events, window)
    del completions
    timed = timed_latencies(scan, window, with_overlap=pauses is not None)

    latency = latency_table(groups, scan, timed, duration)
    connections = connection_figures(source, scan, duration, concurrency_events, window, notes)
    connections.update(server_concurrency(data.server, window))
    throughput = throughput_figures(groups, scan, duration)
    errors, breakdown, error_ratio = error_figures(source, scan)
    spec = spec_of(scenario, data.fanout_pairs, data.declared_primary)
    fanout = fanout_figures(groups, scan, latency, notes, dict(spec.fanout))
    server, server_timeline = (None, None)
    if data.server is not None:
        server, server_timeline = server_figures(data.server, window, _cpu_counts(groups, scan, SERVER_CSV_NAME),
                                                 peak_clients_from_samples(concurrency_events), notes)
        server.update(memory_figures(data.server, window, scan.memory, notes))
    loadgen, loadgen_timeline = (None, None)
    if data.loadgen is not None:
        loadgen, loadgen_timeline = loadgen_figures(data.loadgen, window, _cpu_counts(groups, scan, LOADGEN_CSV_NAME),
                                                    notes)
    main_event = main_event_of(latency, spec)
    primary = primary_figure(spec, main_event, latency, connections, server)
    stalls = [{"start_s": (a - window.load_start_ns) / NS_PER_S, "length_s": (b - a) / NS_PER_S}
              for a, b in stall_spans]
    problems.extend(stall_problems(stalls, stall_check))
    locust_check = locust_cross_check(data)
    problems.extend(locust_gap_problems(locust_check, lost))
    problems.extend(target_gap_problems(data, lost))
    bin_s = bin_seconds(window)
    if bin_s > 1:
        notes.append(f"the load spans {(window.end_ns - window.load_start_ns) / NS_PER_S:,.0f} s: time series use "
                     f"{bin_s:,} s buckets (at most {MAX_TIME_BINS:,} buckets)")
    notes.extend(gc_notes)
    return CellMetrics(
        cell=data.cell,
        scenario=scenario,
        window=window,
        samples_total=source.stats.count,
        samples_steady=scan.steady_total,
        latency=latency,
        connections=connections,
        throughput=throughput,
        errors=errors,
        error_breakdown=breakdown,
        error_ratio=error_ratio,
        fanout=fanout,
        server=server,
        loadgen=loadgen,
        main_event=main_event,
        primary=primary,
        rates=rate_timeline(scan, window),
        concurrency=concurrency_timeline(concurrency_events, window),
        latency_over_time=latency_timeline(groups, timed),
        percentile_curves=percentile_curves(groups, timed),
        server_timeline=server_timeline,
        loadgen_timeline=loadgen_timeline,
        locust_users=_locust_users(data, window),
        locust_check=locust_check,
        notes=notes,
        problems=problems,
        lost=lost,
        stalls=stalls[:MAX_STALLS],
        stall_check=stall_check,
        bin_s=bin_s,
        gc=gc_figures(groups, scan, timed, latency, main_event, window, pauses, gc_files, data.run),
    )


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """The pieces as one int64 array; the list is emptied as they are copied, so at most one
    piece is held twice."""
    out = np.empty(sum(len(p) for p in pieces), dtype=np.int64)
    at = 0
    while pieces:
        piece = pieces.pop(0)
        out[at:at + len(piece)] = piece
        at += len(piece)
    return out


def _cpu_counts(groups: list[tuple[str, str]], scan: Scan, name: str) -> list[int]:
    """Successful acks and connects sent in the part of the window a process CSV covers."""
    if name in scan.cpu:
        return scan.cpu[name]
    return [int(sum(scan.steady_ok[gid] for gid, (kind, _) in enumerate(groups) if kind == wanted))
            for wanted in ("ack", "connect")]


def _seconds(t_ns: np.ndarray, window: Window) -> np.ndarray:
    """The bucket of each time (0 = the first after the load start; negative before it)."""
    return (t_ns - window.load_start_ns) // time_bins(window)[1]


# --- connections ---------------------------------------------------------------------

@dataclass(frozen=True)
class ConnectionEvents:
    """Connected-client count as a step function: level after each event time."""

    times_ns: np.ndarray
    levels: np.ndarray


def connection_events(joins: np.ndarray, leaves: np.ndarray) -> ConnectionEvents:
    """+1 when a connect completes (``joins``), -1 when a disconnect completes or a connection is
    found lost (``leaves``: an ``error`` sample named ``connection``: it died between operations,
    the user will connect anew), over the whole run, as sioharness/webui/live.py counts them; times are
    completion times (``reports.scan.completion_ns``).

    The whole run, not the steady window: clients connected during the
    warm-up are still connected in the steady state.
    """
    times = np.concatenate([joins, leaves])
    deltas = np.concatenate([np.ones(len(joins), np.int64), -np.ones(len(leaves), np.int64)])
    # At equal times count the leaving client first, so a peak is never overstated.
    order = np.lexsort((deltas, times))
    return ConnectionEvents(times_ns=times[order], levels=np.cumsum(deltas[order]))


def _level_at(events: ConnectionEvents, t_ns: np.ndarray | int) -> np.ndarray:
    """Connected clients just after ``t_ns`` (0 before the first event)."""
    if not len(events.levels):
        return np.zeros(np.shape(t_ns), np.int64)
    idx = np.searchsorted(events.times_ns, t_ns, side="right") - 1
    return np.where(idx >= 0, events.levels[np.clip(idx, 0, None)], 0)


def peak_clients_from_samples(events: ConnectionEvents) -> int:
    return int(events.levels.max()) if len(events.levels) else 0


def connection_figures(
    source: SampleSource, scan: Scan, duration_s: float, events: ConnectionEvents, window: Window, notes: list[str]
) -> dict[str, Any]:
    """Connect/disconnect counts, rates, failures by error, concurrent clients."""
    out: dict[str, Any] = {}
    for kind, plural in (("connect", "connects"), ("disconnect", "disconnects")):
        of_kind = [gid for gid, (k, _) in enumerate(source.groups) if k == kind]
        attempts = int(scan.steady[of_kind].sum())
        ok = int(scan.steady_ok[of_kind].sum())
        failed = attempts - ok
        out[plural] = ok
        out[f"{kind}_attempts"] = attempts
        out[f"{plural}_per_s"] = ok / duration_s
        out[f"{kind}_attempts_per_s"] = attempts / duration_s
        out[f"{kind}_failures"] = failed
        out[f"{kind}_failure_ratio"] = failed / attempts if attempts else None
        out[f"{kind}_errors"] = _error_counts(_error_texts(source, scan, set(of_kind)))

    # Connected clients inside the window: level carried in, then each change.
    inside = (events.times_ns >= window.start_ns) & (events.times_ns < window.end_ns)
    carried = int(_level_at(events, window.start_ns - 1)) if len(events.times_ns) else 0
    levels_in = events.levels[inside]
    out["peak_concurrent"] = int(max(carried, levels_in.max())) if len(levels_in) else carried
    out["mean_concurrent"] = _time_weighted_mean(events, window, carried)
    if len(events.levels) and events.levels.min() < 0:
        notes.append("more disconnects than successful connects were recorded at some point; "
                     "concurrent-client counts from the samples are low")
    return out


def _time_weighted_mean(events: ConnectionEvents, window: Window, carried: int) -> float:
    inside = (events.times_ns >= window.start_ns) & (events.times_ns < window.end_ns)
    times = np.concatenate([[window.start_ns], events.times_ns[inside], [window.end_ns]])
    levels = np.concatenate([[carried], events.levels[inside]])
    widths = np.diff(times).astype(np.float64)
    return float((levels * widths).sum() / (window.end_ns - window.start_ns))


def concurrency_timeline(events: ConnectionEvents, window: Window) -> pd.DataFrame:
    """Connected clients at each bucket's end, and the peak within each bucket (``second`` = its start)."""
    n, width = time_bins(window)
    buckets = np.arange(n)
    seconds = buckets * (width // NS_PER_S)
    ends = window.load_start_ns + (buckets + 1) * width - 1
    starts = window.load_start_ns + buckets * width - 1
    if not len(events.times_ns):
        zeros = np.zeros(n, np.int64)
        return pd.DataFrame({"second": seconds, "connected": zeros, "peak": zeros})
    at_end = _level_at(events, ends)
    carried = _level_at(events, starts)
    sec = _seconds(events.times_ns, window)
    in_range = (sec >= 0) & (sec < n)
    peaks = pd.Series(events.levels[in_range]).groupby(sec[in_range]).max()
    peak = np.maximum(carried, peaks.reindex(buckets).fillna(-(2**62)).astype(np.int64).to_numpy())
    return pd.DataFrame({"second": seconds, "connected": at_end, "peak": peak})


# --- stalls ------------------------------------------------------------------------------

def find_stalls(completions: np.ndarray, answered: bool, events: ConnectionEvents,
                window: Window) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Stretches of the steady window where clients are connected but nothing is answered.

    A completion is a successful ack or push, at ``t_ns + latency``;
    ``completions`` holds those strictly inside the window (any order; sorted
    here, in place) and ``answered`` says whether the run had any at all. The
    threshold is ``max(STALL_MIN_S, STALL_GAP_FACTOR x the median gap between
    consecutive completions in the steady window)``. Between consecutive
    completions (the window's ends count as completions), each stretch with
    at least one client connected (``connection_events``) longer than the
    threshold is a stall. A run with no ack or push at all (idle) is not
    checked. Returns ``[(start_ns, end_ns), ...]`` and how the check went.
    """
    check: dict[str, Any] = {"checked": False, "threshold_s": None, "median_gap_s": None, "count": 0,
                             "total_s": 0.0, "min_s": STALL_MIN_S, "gap_factor": STALL_GAP_FACTOR}
    if not answered:
        check["reason"] = "no acks or pushes: nothing is expected to answer"
        return [], check
    inside = completions
    inside.sort(kind="stable")  # timsort: the recorder writes samples nearly in completion order
    median_gap = _median_gap(inside)
    threshold = max(STALL_MIN_S * NS_PER_S, STALL_GAP_FACTOR * median_gap)
    check.update(checked=True, threshold_s=threshold / NS_PER_S, median_gap_s=median_gap / NS_PER_S)
    stalls: list[tuple[int, int]] = []
    for a, b in _long_gaps(inside, window.start_ns, window.end_ns, threshold):
        # The level just after a, then after each change inside (a, b).
        lo = int(np.searchsorted(events.times_ns, a, side="right"))
        hi = int(np.searchsorted(events.times_ns, b, side="left"))
        edges = np.concatenate([[a], events.times_ns[lo:hi], [b]])
        levels = np.concatenate([_level_at(events, a).reshape(1), events.levels[lo:hi]])
        connected = levels > 0
        # Runs of connected segments: [start edge, end edge).
        change = np.diff(np.concatenate([[False], connected, [False]]).astype(np.int8))
        for s_i, e_i in zip(np.flatnonzero(change == 1), np.flatnonzero(change == -1), strict=True):
            start, end = int(edges[s_i]), int(edges[e_i])
            if end - start > threshold:
                stalls.append((start, end))
    check["count"] = len(stalls)
    check["total_s"] = sum(b - a for a, b in stalls) / NS_PER_S
    return stalls, check


def _median_gap(done: np.ndarray) -> float:
    """``numpy.median`` of the gaps between consecutive sorted times, without holding the gaps.

    The middle rank(s) are found by a two-level radix select over the gaps held as
    uint32 (16 bits a level: two histograms of 65,536 counts, the gaps computed
    afresh, a chunk at a time, on each level). Gaps longer than 2**32 - 1 ns (4.3 s)
    are clipped there, which cannot move a median below it; a median that reaches it
    is computed again on the full gaps.
    """
    n = len(done) - 1
    if n < 1:
        return 0.0
    cap = np.iinfo(np.uint32).max
    ranks = [n // 2] if n % 2 else [n // 2 - 1, n // 2]

    def gaps() -> Iterator[np.ndarray]:
        for lo in range(0, n, STALL_CHUNK):
            hi = min(n, lo + STALL_CHUNK)
            yield np.minimum(done[lo + 1:hi + 1] - done[lo:hi], cap).astype(np.uint32)

    high = np.zeros(1 << 16, dtype=np.int64)
    for part in gaps():
        high += np.bincount(part >> 16, minlength=1 << 16)
    below = np.cumsum(high)
    where = [(int(np.searchsorted(below, r, side="right")), r) for r in ranks]
    low = {bucket: np.zeros(1 << 16, dtype=np.int64) for bucket, _ in where}
    for part in gaps():
        top = part >> 16
        for bucket, counts in low.items():
            counts += np.bincount(part[top == bucket] & 0xFFFF, minlength=1 << 16)
    middle = []
    for bucket, r in where:
        rank_in_bucket = r - (int(below[bucket - 1]) if bucket else 0)
        middle.append((bucket << 16) | int(np.searchsorted(np.cumsum(low[bucket]), rank_in_bucket, side="right")))
    if max(middle) >= cap:
        return float(np.median(np.diff(done)))
    # np.median's own arithmetic: the mean of the middle value(s), summed as float64.
    return float(np.mean(np.array(middle, dtype=np.uint32)))


def _long_gaps(done: np.ndarray, start: int, end: int, threshold: float) -> list[tuple[int, int]]:
    """Consecutive points of ``[start, *done, end]`` further apart than ``threshold``."""
    if not len(done):
        return [(start, end)] if end - start > threshold else []
    out: list[tuple[int, int]] = []
    if int(done[0]) - start > threshold:
        out.append((start, int(done[0])))
    for lo in range(0, len(done) - 1, STALL_CHUNK):
        hi = min(len(done) - 1, lo + STALL_CHUNK)
        for i in np.flatnonzero(done[lo + 1:hi + 1] - done[lo:hi] > threshold):
            out.append((int(done[lo + i]), int(done[lo + i + 1])))
    if end - int(done[-1]) > threshold:
        out.append((int(done[-1]), end))
    return out


def stall_problems(stalls: list[dict[str, float]], check: dict[str, Any]) -> list[str]:
    """One problem line per stall (the first ``MAX_STALL_PROBLEMS``, then one line for the rest)."""
    lines = [f"stall: no answer for {s['length_s']:,.1f} s from +{s['start_s']:,.1f} s "
             f"(clients connected; threshold {check['threshold_s']:,.1f} s)" for s in stalls[:MAX_STALL_PROBLEMS]]
    if check["count"] > MAX_STALL_PROBLEMS:
        shown = sum(s["length_s"] for s in stalls[:MAX_STALL_PROBLEMS])
        lines.append(f"stall: {check['count'] - MAX_STALL_PROBLEMS:,} more stalls, "
                     f"{check['total_s'] - shown:,.1f} s in all")
    return lines


# --- throughput, errors, fan-out ---------------------------------------------------------

def throughput_figures(groups: list[tuple[str, str]], scan: Scan, duration_s: float) -> dict[str, Any]:
    """Acknowledged events and delivered pushes per second in the steady window."""
    acks = [gid for gid, (k, _) in enumerate(groups) if k == "ack"]
    pushes = [gid for gid, (k, _) in enumerate(groups) if k == "push"]
    acks_ok = int(scan.steady_ok[acks].sum())
    pushes_ok = int(scan.steady_ok[pushes].sum())
    return {
        "acks": acks_ok,
        "acks_per_s": acks_ok / duration_s,
        "ack_failures": int(scan.steady[acks].sum()) - acks_ok,
        "ack_bytes_per_s": float(scan.ok_bytes[acks].sum()) / duration_s,
        "pushes": pushes_ok,
        "pushes_per_s": pushes_ok / duration_s,
        "push_bytes_per_s": float(scan.ok_bytes[pushes].sum()) / duration_s,
    }


def _error_texts(source: SampleSource, scan: Scan, groups: set[int] | None = None) -> Counter[str]:
    """Failed steady samples per error text (of ``groups`` only, when given)."""
    texts: Counter[str] = Counter()
    for (gid, code), count in scan.errors.items():
        if groups is None or gid in groups:
            texts[source.errors.values[code]] += count
    return texts


def _error_counts(counts: Counter[str]) -> dict[str, int]:
    """{error text: count}, most frequent first; past ``MAX_ERRORS`` texts the rest are summed
    under one ``(N other errors)`` key, so messages carrying ids cannot bloat summary.json."""
    ordered = sorted(((str(k), int(v)) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) > MAX_ERRORS:
        rest = ordered[MAX_ERRORS - 1:]
        ordered = ordered[: MAX_ERRORS - 1] + [(f"({len(rest)} other errors)", sum(n for _, n in rest))]
    return dict(ordered)


def error_figures(source: SampleSource, scan: Scan) -> tuple[dict[str, int], pd.DataFrame, float | None]:
    """Failures by error text, by (kind, name, error), and the failed share of operations."""
    errors = _error_counts(_error_texts(source, scan))
    if not scan.errors:
        breakdown = pd.DataFrame(columns=["kind", "name", "error", "count"])
    else:
        keys = list(scan.errors)
        breakdown = (
            pd.DataFrame({"kind": [source.groups[gid][0] for gid, _ in keys],
                          "name": [source.groups[gid][1] for gid, _ in keys],
                          "error": [source.errors.values[code] for _, code in keys],
                          "count": np.array([scan.errors[key] for key in keys], dtype=np.int64)})
            .groupby(["kind", "name", "error"])["count"].sum().rename("count").reset_index()
            .sort_values(["count", "kind", "name"], ascending=[False, True, True], kind="stable")
            .head(MAX_ERRORS)
            .reset_index(drop=True)
        )
    ops = np.array([k in OPERATION_KINDS for k, _ in source.groups], dtype=bool)
    total = int(scan.steady[ops].sum())
    ratio = int((scan.steady - scan.steady_ok)[ops].sum()) / total if total else None
    return errors, breakdown, ratio


def fanout_figures(groups: list[tuple[str, str]], scan: Scan, latency: pd.DataFrame, notes: list[str],
                   pairs: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Deliveries expected (acks' ``expected``) vs pushes received, per event pair.

    Both sides are counted on ``t_ns`` in the same window: a push carries its
    sender's timestamp, so a delivery belongs to the window of its broadcast.
    """
    index = {group: gid for gid, group in enumerate(groups)}

    def steady_ok(kind: str, name: str) -> int:
        gid = index.get((kind, name))
        return int(scan.steady_ok[gid]) if gid is not None else 0

    by_event: dict[str, dict[str, Any]] = {}
    pairs = REFERENCE_FANOUT if pairs is None else pairs
    for ack_name, push_name in pairs.items():
        ack = index.get(("ack", ack_name))
        expected = int(scan.ok_expected[ack]) if ack is not None else 0
        received = steady_ok("push", push_name)
        if not expected and not received:
            continue
        lost = expected - received
        entry: dict[str, Any] = {
            "push": push_name,
            "sends": steady_ok("ack", ack_name),
            "expected": expected,
            "received": received,
            "lost": lost,
            "loss_ratio": lost / expected if expected else None,
        }
        push_key = latency_key("push", push_name)
        for col in ("p50_us", "p99_us", "max_us"):
            entry[f"delivery_{col}"] = _float(latency.at[push_key, col]) if push_key in latency.index else None
        if lost < 0:
            notes.append(f"{ack_name} -> {push_name}: received {-lost} more deliveries than the acks expected "
                         "(duplicates, or pushes from senders that recorded no ack)")
        by_event[ack_name] = entry

    unpaired = sorted({name for gid, (kind, name) in enumerate(groups)
                       if kind == "ack" and scan.ok_expecting[gid] > 0} - set(pairs))
    if unpaired:
        notes.append(f"acks of {', '.join(unpaired)} carry expected deliveries but no known push pairs them; "
                     "not counted in fan-out")
    if not by_event:
        return None
    expected = sum(e["expected"] for e in by_event.values())
    received = sum(e["received"] for e in by_event.values())
    first = by_event.get("broadcast") or next(iter(by_event.values()))
    return {
        "expected": expected,
        "received": received,
        "lost": expected - received,
        "loss_ratio": (expected - received) / expected if expected else None,
        "delivery_p50_us": first["delivery_p50_us"],
        "delivery_p99_us": first["delivery_p99_us"],
        "delivery_max_us": first["delivery_max_us"],
        "by_event": by_event,
    }


# --- server cost -------------------------------------------------------------------------

def cpu_figures(
    frame: pd.DataFrame, window: Window, counted: list[int] | None, notes: list[str], *, source: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """CPU seconds of a process tree in the steady window, per 1,000 acks and connects.

    ``counted``: the successful acks and connects sent inside ``cpu_range``
    (``Scan.cpu``). Returns the figures and a timeline (``t_s``,
    ``cpu_cores``, ``rss_bytes``). Cumulative CPU of a process tree drops
    when a child exits (its time leaves the sum), so the CPU curve is rebuilt
    from its non-negative steps.
    """
    t = frame["t_ns"].to_numpy()
    raw = (frame["cpu_user_s"] + frame["cpu_system_s"]).to_numpy(dtype=np.float64)
    steps = np.diff(raw, prepend=raw[0])
    if (steps < 0).any():
        notes.append(f"{source}: cumulative CPU dropped {int((steps < 0).sum())} time(s) "
                     "(a process of the tree exited); only increases are counted")
    cpu = np.cumsum(steps.clip(min=0))
    x = (t - t[0]).astype(np.float64)

    lo, hi = cpu_range(frame, window)
    figures: dict[str, Any] = {
        "cpu_s": None, "cpu_cores": None, "cpu_s_per_1k_acks": None, "cpu_s_per_1k_connects": None,
        "covered_s": 0.0,
    }
    if hi > lo:
        cpu_s = float(np.interp(hi - t[0], x, cpu) - np.interp(lo - t[0], x, cpu))
        covered = (hi - lo) / NS_PER_S
        acks, connects = counted if counted is not None else (0, 0)
        figures.update(
            cpu_s=cpu_s,
            cpu_cores=cpu_s / covered,
            cpu_s_per_1k_acks=cpu_s / acks * 1000 if acks else None,
            cpu_s_per_1k_connects=cpu_s / connects * 1000 if connects else None,
            covered_s=covered,
        )
        if covered < window.duration_s - 1.0:
            notes.append(f"{source} covers {covered:.1f} s of the {window.duration_s:.1f} s steady window; "
                         "CPU figures use the covered part and the acks and connects inside it")
    else:
        notes.append(f"{source} does not overlap the steady window: no CPU figures from it")

    dt = np.diff(x) / NS_PER_S
    with np.errstate(divide="ignore", invalid="ignore"):
        cores = np.where(dt > 0, np.diff(cpu) / dt, np.nan)
    timeline = pd.DataFrame({
        "t_s": (t - window.load_start_ns) / NS_PER_S,
        "cpu_cores": np.concatenate([[np.nan], cores]),
        "rss_bytes": frame["rss_bytes"].to_numpy(dtype=np.float64),
    })
    return figures, timeline


def server_figures(
    server: pd.DataFrame, window: Window, counted: list[int] | None, peak_clients_samples: int, notes: list[str]
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The target's CPU cost (``cpu_figures``), RSS peak and RSS per connected client."""
    figures, timeline = cpu_figures(server, window, counted, notes, source="server.csv")
    rss = timeline["rss_bytes"].to_numpy()
    connected = server["connected"].to_numpy(dtype=np.float64)
    has_connected = bool(np.isfinite(connected).any())
    peak_clients = int(np.nanmax(connected)) if has_connected else peak_clients_samples
    peak_rss = float(rss.max())
    baseline = float(rss[0])
    figures.update(
        peak_rss_bytes=int(peak_rss),
        baseline_rss_bytes=int(baseline),
        peak_clients=peak_clients,
        peak_clients_source="server.csv connected" if has_connected else "samples",
        rss_per_client_bytes=(peak_rss - baseline) / peak_clients if peak_clients > 0 else None,
        peak_threads=_nanmax_int(server["threads"]),
        peak_fds=_nanmax_int(server["fds"]),
        peak_procs=_nanmax_int(server["procs"]),
    )
    timeline = timeline.assign(
        threads=server["threads"].to_numpy(dtype=np.float64),
        fds=server["fds"].to_numpy(dtype=np.float64),
        connected=connected,
    )
    return figures, timeline


def loadgen_figures(
    loadgen: pd.DataFrame, window: Window, counted: list[int] | None, notes: list[str]
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The load generator's CPU cost and peak RSS: on a small machine it competes with the target."""
    figures, timeline = cpu_figures(loadgen, window, counted, notes, source="loadgen.csv")
    figures["peak_rss_bytes"] = int(timeline["rss_bytes"].max())
    return figures, timeline


def server_concurrency(server: pd.DataFrame | None, window: Window) -> dict[str, Any]:
    """Connected clients as the server counts them (server.csv ``connected``) in the steady window.

    ``server_mean_concurrent`` is the mean of the rows in the window (the
    sampler's rows are evenly spaced); both are None without the column.
    """
    out: dict[str, Any] = {"server_peak_concurrent": None, "server_mean_concurrent": None}
    if server is None:
        return out
    t = server["t_ns"].to_numpy()
    connected = server["connected"].to_numpy(dtype=np.float64)
    inside = (t >= window.start_ns) & (t < window.end_ns) & np.isfinite(connected)
    if inside.any():
        out["server_peak_concurrent"] = int(connected[inside].max())
        out["server_mean_concurrent"] = float(connected[inside].mean())
    return out


def _slope(x: np.ndarray, y: np.ndarray) -> float | None:
    """Least-squares slope of y against x, None when x does not vary."""
    x = x.astype(np.float64)
    dx = x - x.mean()
    var = float((dx * dx).sum())
    if len(x) < MIN_FIT_ROWS or var == 0:
        return None
    return float((dx * (y - y.mean())).sum() / var)


def memory_figures(server: pd.DataFrame, window: Window, completed: dict[str, np.ndarray],
                   notes: list[str]) -> dict[str, Any]:
    """RSS growth over the steady window per 1,000 connects and per 1,000 acks, and RSS
    before the load vs after it.

    Growth: the slope of a least-squares line of RSS against the cumulative count
    of successful connects (acks) completed by each server.csv row of the steady
    window (``completed``: ``Scan.memory``), times 1,000. Each fit is against one
    count alone: where both grow, each figure carries the other's cost too. Before:
    the last row before the load start; after: the last row after the load end
    ("after the load, once clients are gone"), None when the sampler stopped with the load.
    """
    t = server["t_ns"].to_numpy()
    rss = server["rss_bytes"].to_numpy(dtype=np.float64)
    inside = (t >= window.start_ns) & (t < window.end_ns)
    out: dict[str, Any] = {}
    for kind, key in (("connect", "rss_growth_bytes_per_1k_connects"), ("ack", "rss_growth_bytes_per_1k_acks")):
        slope = _slope(completed[kind], rss[inside])
        out[key] = slope * 1000 if slope is not None else None
    before = rss[t < window.load_start_ns]
    after = rss[t >= window.end_ns]
    out["rss_before_bytes"] = int(before[-1]) if len(before) else None
    out["rss_after_bytes"] = int(after[-1]) if len(after) else None
    out["rss_kept_bytes"] = None
    if len(before) and len(after):
        kept = float(after[-1] - before[-1])
        out["rss_kept_bytes"] = int(kept)
        if kept > max(RSS_KEPT_MIN_BYTES, RSS_KEPT_SHARE * before[-1]):
            notes.append(f"memory not returned: RSS after the load is {kept / 2**20:,.1f} MiB above before it "
                         f"({before[-1] / 2**20:,.1f} MiB before, {after[-1] / 2**20:,.1f} MiB after, "
                         "once clients are gone)")
    return out


def _nanmax_int(values: pd.Series) -> int | None:
    arr = values.to_numpy(dtype=np.float64)
    return int(np.nanmax(arr)) if np.isfinite(arr).any() else None


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


# --- time series ---------------------------------------------------------------------------

def rate_timeline(scan: Scan, window: Window) -> pd.DataFrame:
    """Per-second rates in one-second buckets (by ``t_ns``) over the whole load
    (wider buckets past ``MAX_TIME_BINS`` seconds; the index is each bucket's start, s).

    Each bucket's count is divided by the part of it the load covered, so the
    last, partial second shows its true rate instead of a dip.
    """
    n, width = time_bins(window)
    series = scan.rates.reshape(len(RATE_SERIES), n)
    counts = dict(zip(RATE_SERIES, series, strict=True))
    frame = pd.DataFrame({
        "connects": counts["connects"],
        "connect_failures": counts["connect_failures"],
        "disconnects": counts["disconnects"],
        "acks": counts["acks"],
        "ack_failures": counts["ack_failures"],
        "pushes": counts["pushes"],
        "failures": scan.failures,
    }, index=pd.RangeIndex(0, n * (width // NS_PER_S), width // NS_PER_S, name="second"))
    covered = np.minimum(width, window.end_ns - window.load_start_ns - np.arange(n) * width) / NS_PER_S
    return frame.div(covered, axis=0)


def _locust_users(data: CellData, window: Window) -> pd.DataFrame | None:
    if data.locust_users is None:
        return None
    users = data.locust_users
    return pd.DataFrame({"t_s": (users["t_ns"] - window.load_start_ns) / NS_PER_S, "users": users["users"]})


def locust_cross_check(data: CellData) -> list[dict[str, Any]] | None:
    """Locust's request and failure counts beside the recorder's, per name, whole run.

    The recorder's side counts every row read from the shards, before the
    report dropped any (invalid, outside the run's span): what the recorder
    wrote. ``gap`` = Locust's requests - the recorder's rows. Locust's
    Aggregated row is left out: it double-counts some users' calls (see
    DESIGN.md).
    """
    stats = data.locust_stats
    if stats is None:
        return None
    counts = data.read_counts
    if counts is None:  # a CellData built by hand: count the samples kept
        source = data.source
        counts = pd.DataFrame({"kind": [k for k, _ in source.groups], "name": [n for _, n in source.groups],
                               "count": source.stats.group_rows,
                               "failures": source.stats.group_rows - source.stats.group_ok})
    rows: list[dict[str, Any]] = []
    for row in stats.itertuples(index=False):
        if row.name == "Aggregated":
            continue
        mask = counts["name"] == row.name
        if row.type in KINDS:
            mask = mask & (counts["kind"] == row.type)
        recorded = int(counts.loc[mask, "count"].sum())
        requests = int(row.requests)
        rows.append({
            "type": row.type,
            "name": row.name,
            "locust_requests": requests,
            "locust_failures": int(row.failures) if not pd.isna(row.failures) else None,
            "recorder_count": recorded,
            "recorder_failures": int(counts.loc[mask, "failures"].sum()),
            "gap": requests - recorded,
        })
    return rows


def target_gap_problems(data: CellData, lost: list[str]) -> list[str]:
    """The target's own count of each event (run.json ``target_events``, from its ``/stats``) against the samples.

    Every call ends as a sample (answered, failed or unanswered at the stop),
    so a target that handled more calls of an event than there are samples of
    it means samples were lost; more answered acks than the target handled
    means the counts cannot be trusted.
    """
    counts = (data.run.extra.get("target_events") if data.run is not None else None) or {}
    if not isinstance(counts, dict):
        return []
    stats = data.source.stats
    index = {group: gid for gid, group in enumerate(data.source.groups)}
    problems: list[str] = []
    for event, handled in sorted(counts.items()):
        if not isinstance(handled, int):
            continue
        gid = index.get(("ack", event))
        total, answered = (int(stats.group_rows[gid]), int(stats.group_ok[gid])) if gid is not None else (0, 0)
        if handled > total:
            message = (f"the target handled {handled:,} {event} calls but the recorder has {total:,} samples of "
                       f"them: {handled - total:,} samples lost")
            lost.append(message)
            problems.append(message)
        elif answered > handled:
            problems.append(f"the recorder has {answered:,} answered {event} acks but the target counted only "
                            f"{handled:,} {event} calls")
    return problems


def locust_gap_problems(rows: list[dict[str, Any]] | None, lost: list[str]) -> list[str]:
    """A problem per row whose Locust request count differs from the recorder's.

    Locust counting more than the recorder wrote means samples were lost
    (also appended to ``lost``); the recorder holding more means Locust's
    stats were written before the last requests (locust_stats.csv is
    rewritten every second) or rows were duplicated: doubtful, not lost.
    """
    problems: list[str] = []
    for row in rows or []:
        gap = row["gap"]
        label = f"{row['type']} {row['name']}".strip()
        if gap > 0:
            message = (f"Locust counted {row['locust_requests']:,} {label} requests but the recorder wrote "
                       f"{row['recorder_count']:,}: {gap:,} samples lost")
            lost.append(message)
        elif gap < 0:
            message = (f"the recorder wrote {row['recorder_count']:,} {label} samples but Locust counted "
                       f"{row['locust_requests']:,} requests: {-gap:,} more than Locust (stale Locust stats, "
                       "or duplicated rows)")
        else:
            continue
        problems.append(message)
    return problems


# --- ranking figures -----------------------------------------------------------------------

def main_event_of(latency: pd.DataFrame, spec: ScenarioSpec) -> str | None:
    """The scenario's main event (a user class's ``primary``, a reference scenario's own acked event)
    if it was measured, else the acknowledged event with the most successful samples (ties by name)."""
    acks = latency.loc[(latency["kind"] == "ack") & (latency["ok"] > 0)]
    if acks.empty:
        return None
    if spec.main_event in acks.index:
        return spec.main_event
    return str(acks.sort_values(["ok", "name"], ascending=[False, True], kind="stable").index[0])


def primary_figure(
    spec: ScenarioSpec,
    main_event: str | None,
    latency: pd.DataFrame,
    connections: dict[str, Any],
    server: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The one figure cells of a scenario are ranked by, with its direction (the spec's ``rank_by``).

    Connection scenarios (churn, or a user class declaring ``primary =
    "connects/s"``) rank by connects per second, higher is better; idle by
    RSS per client; others by the p99 of the main acknowledged event, lower
    is better. Without an acked event: the p99 of the busiest push, then
    connects per second, then RSS per client.
    """
    def figure(path: list[str], label: str, value: Any, better: str) -> dict[str, Any]:
        return {"key": ".".join(path), "path": path, "label": label, "value": value, "better": better}

    rss_per_client = server.get("rss_per_client_bytes") if server else None
    if spec.rank_by == RANK_CONNECTS:
        return figure(["connections", "connects_per_s"], "connect rate", connections["connects_per_s"], "higher")
    if spec.rank_by == RANK_MEMORY and rss_per_client is not None:
        return figure(["server", "rss_per_client_bytes"], "RSS per client", rss_per_client, "lower")
    if main_event is not None:
        return figure(["latency", main_event, "p99_us"], f"{main_event} p99",
                      _float(latency.at[main_event, "p99_us"]), "lower")
    pushes = latency.loc[(latency["kind"] == "push") & (latency["ok"] > 0)]
    if not pushes.empty:
        key = str(pushes.sort_values("ok", ascending=False, kind="stable").index[0])
        return figure(["latency", key, "p99_us"], f"{key} p99", _float(latency.at[key, "p99_us"]), "lower")
    if connections["connects"] > 0:
        return figure(["connections", "connects_per_s"], "connect rate", connections["connects_per_s"], "higher")
    if rss_per_client is not None:
        return figure(["server", "rss_per_client_bytes"], "RSS per client", rss_per_client, "lower")
    return None


# --- GC pauses -------------------------------------------------------------------------------

def gc_figures(groups: list[tuple[str, str]], scan: Scan, timed: dict[int, TimedLatency], latency: pd.DataFrame,
               main_event: str | None, window: Window, pauses: pd.DataFrame | None, files: list[str],
               run: RunRecord | None) -> GcView:
    """The GC view of one cell (``reports.gc_pauses.gc_view``'s figures, from the scan's counts):
    its pauses, the share of the slow samples in flight during one, and the fine latency timeline."""
    plan = scan.plan
    key = timed_key(latency, main_event)
    width = plan.gc_bin_ns
    gid = None
    if key is not None:
        gid = groups.index((str(latency.at[key, "kind"]), str(latency.at[key, "name"])))
    timeline = pd.DataFrame({"t_s": pd.Series(dtype=float), "max_us": pd.Series(dtype=float)})
    if gid is not None:
        present = np.flatnonzero(scan.gc_rows[gid])
        if len(present):
            top = scan.gc_max[gid][present]
            timeline = pd.DataFrame({"t_s": present.astype(np.int64) * (width / NS_PER_S), "max_us": top})
    if pauses is None:
        return GcView(key, timeline, width, None, None, window.warmup_s)
    shown = pauses_in_load(pauses, window)
    p99_us = key_p99_us(latency, key)
    tail: dict[str, Any] = {"overlap_min_ms": LONG_PAUSE_MS, "p99_us": p99_us, "above_p99": 0,
                            "above_p99_overlapping": 0, "above_p99_overlap_share": None, "all_overlap_share": None}
    steady = int(scan.steady_ok[gid]) if gid is not None else 0
    if p99_us is not None and steady and gid is not None:
        figures = timed[gid]
        slow, hits = figures.above_p99, figures.above_p99_overlapping
        tail.update(above_p99=slow, above_p99_overlapping=hits, above_p99_overlap_share=hits / slow if slow else None,
                    all_overlap_share=int(scan.overlap[gid]) / steady)
    return GcView(key, timeline, width, shown, view_summary(files, run, key, width, pauses, window, tail),
                  window.warmup_s)
