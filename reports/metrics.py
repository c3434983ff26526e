"""Figures of one cell, computed with pandas from the raw samples.

Pure computations: frames in, frames and plain values out; no files, no plots.

Conventions (also in the README):

- Percentiles are exact over the successful samples of the steady window, on
  float microseconds, with linear interpolation between closest ranks
  (``numpy.quantile`` / ``pandas.quantile`` default, Hyndman-Fan type 7).
- The load runs from the first sample to the last (or between run.json's
  ``load_started_ns`` and ``load_ended_ns`` when the runner records them; see
  ``load_bounds``). The steady window is ``[load start + warm-up, load end)``
  on ``t_ns`` (the time an operation started); rates are counts in it divided
  by its length.
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

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.cells import CellName
from core.run_record import RunRecord
from core.schema import KINDS
from reports.errors import ReportInputError
from reports.gc_pauses import GcView, gc_view
from reports.read_cell import MAX_EPOCH_NS, CellData

NS_PER_S = 1_000_000_000
DEFAULT_WARMUP_S = 0.0

# (summary key, quantile) of the latency percentiles.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_us", 0.5), ("p90_us", 0.9), ("p99_us", 0.99), ("p999_us", 0.999),
)
# Which push each acked event's ``expected`` deliveries arrive as.
FANOUT_PAIRS: dict[str, str] = {"broadcast": "fanout", "room_message": "room_message"}
# Scenarios whose primary figure is the connection rate, not an event's latency.
CONNECTION_SCENARIOS: tuple[str, ...] = ("churn",)
# The acked event a scenario is about, when it has one (else: the busiest acked event).
SCENARIO_EVENTS: dict[str, str] = {"echo": "echo", "broadcast": "broadcast", "rooms": "room_message"}
# Scenarios whose primary figure is memory per connected client.
MEMORY_SCENARIOS: tuple[str, ...] = ("idle",)
# Kinds that are operations a client attempted (pushes are deliveries).
OPERATION_KINDS: tuple[str, ...] = ("connect", "disconnect", "ack", "error")
NO_ERROR_MESSAGE = "(no error message)"
# Distinct error texts kept in a summary (the rest are summed under one key).
MAX_ERRORS = 50
# A gap this long (or this share of the load) between the last sample and the
# planned end means the load stalled, not that Locust's timer ran early.
STALL_GAP_S = 2.0
STALL_GAP_SHARE = 0.1
# Latencies are capped here when turned into completion times (t_ns + latency), so
# that sum stays inside int64 whatever the input (10**15 us: 31 years).
MAX_LATENCY_US = 1e15
# At most this many buckets per time series: past MAX_TIME_BINS seconds of load the
# buckets widen (whole seconds), so memory never depends on a timestamp's value.
MAX_TIME_BINS = 20_000
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
# Percentile-curve grid: "nines" x gives percentile 100 * (1 - 10**-x).
CURVE_NINES_STEP = 0.05
CURVE_MAX_NINES = 5.0


@dataclass(frozen=True)
class Window:
    """The steady-state window; samples with ``start_ns <= t_ns < end_ns`` count."""

    load_start_ns: int
    """When the load started (the first sample, unless recorded): time zero of every plot."""
    start_ns: int
    end_ns: int
    warmup_s: float
    warmup_source: str
    end_source: str

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_S


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


def latency_key(kind: str, name: str) -> str:
    """The stable key of a measured name in ``summary.json``'s ``latency``.

    Acked events use their name (``echo``); ``connect``/``disconnect`` use
    theirs; anything else is ``kind:name`` (``push:fanout``), because a push
    can share its name with an acked event (``room_message``).
    """
    if kind == "ack" or name == kind:
        return name
    return f"{kind}:{name}"


def scenario_of(run: RunRecord | None, cell: str) -> str | None:
    """The scenario from run.json, else from the cell name ``mode-server--scenario``."""
    if run is not None and run.scenario:
        return run.scenario
    return CellName.parse(cell).scenario or None


def resolve_warmup(cli_warmup_s: float | None, run: RunRecord | None) -> tuple[float, str]:
    """The warm-up to cut and where it came from: the command line, run.json, or the default."""
    if cli_warmup_s is not None:
        if not (math.isfinite(cli_warmup_s) and cli_warmup_s >= 0):
            raise ReportInputError("--warmup", f"must be a number of seconds >= 0, got {cli_warmup_s}")
        return float(cli_warmup_s), "--warmup"
    warmup = run.load.warmup_s if run is not None else None
    if warmup is not None:
        return float(warmup), "run.json load.warmup_s"
    return DEFAULT_WARMUP_S, "default"


def load_bounds(samples: pd.DataFrame, run: RunRecord | None, notes: list[str]) -> tuple[int, int, str]:
    """When the load started and ended: ``(start_ns, end_ns, how the end was found)``.

    run.json's ``load_started_ns``/``load_ended_ns`` are used when the runner
    records them (Locust's test start and stop). Otherwise the load is the
    span of the samples: run.json's ``started_ns``/``ended_ns`` include the
    target's start-up and teardown, and Locust's ``-t`` timer starts before
    its first request, so neither bounds the load tightly (measured: 0.5 s of
    a 6 s run). The end is the last sample plus the mean gap between samples
    (the load did not stop exactly at its last sample; for evenly spaced
    samples this is exact), unless that comes suspiciously early (a stalled
    run): then the planned end is used, and a note says so.
    """
    t = samples["t_ns"].to_numpy()
    first, last_t = int(t.min()), int(t.max())
    mean_gap = (last_t - first) // (len(t) - 1) if len(t) > 1 else 0
    last = last_t + max(mean_gap, 1)  # at least +1 ns: the last sample is inside [start, end)
    run = run or RunRecord()
    start = run.load_started_ns if run.load_started_ns is not None else first
    if run.load_ended_ns is not None:
        gap = run.load_ended_ns - last
        # Only where something answers all along: an idle run's last sample is its last connect.
        answers = bool(samples["kind"].isin(("ack", "push")).any())
        if answers and gap > max(STALL_GAP_S * NS_PER_S, STALL_GAP_SHARE * (run.load_ended_ns - start)):
            notes.append(f"no samples in the last {gap / NS_PER_S:,.1f} s before run.json load_ended_ns: "
                         "the load stalled or its samples were lost; the window runs to load_ended_ns")
        return start, run.load_ended_ns, "run.json load_ended_ns"

    planned, planned_source = None, ""
    duration = run.load.duration_s
    if duration is not None and duration > 0:
        # Clamped: an absurd duration must not push any time past int64.
        planned = min(start + round(duration * NS_PER_S), MAX_EPOCH_NS)
        planned_source = "load start + load.duration_s"
    ended = run.ended_ns
    if ended is not None and (planned is None or ended < planned):
        planned, planned_source = int(ended), "run.json ended_ns"
    if planned is None:
        return start, last, "last sample + mean gap"
    if last >= planned:
        return start, planned, planned_source
    gap = planned - last
    if gap > max(STALL_GAP_S * NS_PER_S, STALL_GAP_SHARE * (planned - start)):
        notes.append(f"no samples in the last {gap / NS_PER_S:.1f} s before the planned end ({planned_source}): "
                     "the load stalled or its samples were lost; the window runs to the planned end")
        return start, planned, planned_source + " (samples stop early)"
    return start, last, "last sample + mean gap"


def steady_window(samples: pd.DataFrame, run: RunRecord | None, warmup_s: float, source: str,
                  where: str | Path = "samples", notes: list[str] | None = None) -> Window:
    """The steady window: ``[load start + warm-up, load end)`` (see ``load_bounds``)."""
    load_start, end, end_source = load_bounds(samples, run, notes if notes is not None else [])
    # Compared in seconds first: a warm-up of 1e300 s must be an error, not an overflow.
    too_long = warmup_s >= (end - load_start) / NS_PER_S
    start = end if too_long else load_start + round(warmup_s * NS_PER_S)
    if start >= end:
        raise ReportInputError(
            where,
            f"a warm-up of {warmup_s:g} s ({source}) leaves no steady window: "
            f"the load ran {(end - load_start) / NS_PER_S:.3f} s",
        )
    return Window(load_start_ns=load_start, start_ns=int(start), end_ns=int(end), warmup_s=warmup_s,
                  warmup_source=source, end_source=end_source)


def compute_metrics(data: CellData, *, warmup_s: float | None = None) -> CellMetrics:
    """All figures of one cell. ``warmup_s`` overrides run.json's ``load.warmup_s``."""
    samples = data.samples
    warmup, source = resolve_warmup(warmup_s, data.run)
    notes: list[str] = []
    window = steady_window(samples, data.run, warmup, source, data.path, notes)
    t = samples["t_ns"].to_numpy()
    steady = samples.loc[(t >= window.start_ns) & (t < window.end_ns)]
    if steady.empty:
        raise ReportInputError(
            data.path,
            f"no samples in the steady window ({warmup:g} s warm-up, {window.duration_s:.3f} s window); "
            f"samples span {(t.min() - window.load_start_ns) / NS_PER_S:.3f} s to "
            f"{(t.max() - window.load_start_ns) / NS_PER_S:.3f} s after the load start",
        )
    duration = window.duration_s
    scenario = scenario_of(data.run, data.cell)

    problems: list[str] = []
    lost: list[str] = []
    latency = latency_table(steady, duration)
    concurrency_events = connection_events(samples)
    connections = connection_figures(steady, duration, concurrency_events, window, notes)
    connections.update(server_concurrency(data.server, window))
    throughput = throughput_figures(steady, duration)
    errors, breakdown, error_ratio = error_figures(steady)
    fanout = fanout_figures(steady, latency, notes, FANOUT_PAIRS | data.fanout_pairs)
    server, server_timeline = (None, None)
    if data.server is not None:
        server, server_timeline = server_figures(
            data.server, window, steady, peak_clients_from_samples(concurrency_events), notes
        )
        server.update(memory_figures(data.server, window, samples, notes))
    loadgen, loadgen_timeline = (None, None)
    if data.loadgen is not None:
        loadgen, loadgen_timeline = loadgen_figures(data.loadgen, window, steady, notes)
    main_event = main_event_of(latency, scenario)
    primary = primary_figure(scenario, main_event, latency, connections, server)
    stall_spans, stall_check = find_stalls(samples, concurrency_events, window)
    stalls = [{"start_s": (a - window.load_start_ns) / NS_PER_S, "length_s": (b - a) / NS_PER_S}
              for a, b in stall_spans]
    problems.extend(stall_problems(stalls, stall_check))
    locust_check = locust_cross_check(data)
    problems.extend(locust_gap_problems(locust_check, lost))
    problems.extend(target_gap_problems(data, samples, lost))
    bin_s = bin_seconds(window)
    if bin_s > 1:
        notes.append(f"the load spans {(window.end_ns - window.load_start_ns) / NS_PER_S:,.0f} s: time series use "
                     f"{bin_s:,} s buckets (at most {MAX_TIME_BINS:,} buckets)")
    return CellMetrics(
        cell=data.cell,
        scenario=scenario,
        window=window,
        samples_total=len(samples),
        samples_steady=len(steady),
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
        rates=rate_timeline(samples, window),
        concurrency=concurrency_timeline(concurrency_events, window),
        latency_over_time=latency_timeline(samples, window),
        percentile_curves=percentile_curves(steady),
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
        gc=gc_view(data.path, samples, window, latency, main_event, data.run, notes),
    )


# --- latency -----------------------------------------------------------------------

def _kind_order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def latency_table(steady: pd.DataFrame, duration_s: float) -> pd.DataFrame:
    """Count, success, rate, mean, exact percentiles and max per (kind, name).

    Percentiles and mean are over successful samples only: a timed-out ack
    has no latency, it has a failure.
    """
    columns = ["kind", "name", "count", "ok", "failed", "per_s", "mean_us", "min_us",
               *(key for key, _ in PERCENTILES), "max_us"]
    ops = steady.loc[steady["kind"] != "error"]
    if ops.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="key"))
    keys = ["kind", "name"]
    grouped = ops.groupby(keys, observed=True)
    table = pd.DataFrame({"count": grouped.size(), "ok": grouped["ok"].sum()})
    good = ops.loc[ops["ok"]].groupby(keys, observed=True)["latency_us"]
    stats = good.agg(["mean", "min", "max"]).rename(columns={"mean": "mean_us", "min": "min_us", "max": "max_us"})
    levels = [q for _, q in PERCENTILES]
    # reindex: with no successful sample at all, unstack() has no columns to name.
    quantiles = good.quantile(levels, interpolation="linear").unstack().reindex(columns=levels)
    quantiles.columns = [key for key, _ in PERCENTILES]
    table = table.join(stats).join(quantiles).reset_index()
    table["kind"] = table["kind"].astype(str)
    table["name"] = table["name"].astype(str)
    table["count"] = table["count"].astype("int64")
    table["ok"] = table["ok"].astype("int64")
    table["failed"] = table["count"] - table["ok"]
    table["per_s"] = table["ok"] / duration_s
    table["key"] = [latency_key(k, n) for k, n in zip(table["kind"], table["name"], strict=True)]
    table["_order"] = [_kind_order(k) for k in table["kind"]]
    table = table.sort_values(["_order", "count", "name"], ascending=[True, False, True], kind="stable")
    return table.set_index("key")[columns]


def percentile_curves(steady: pd.DataFrame) -> pd.DataFrame:
    """Exact quantiles of each name on a log grid of "nines" (90, 99, 99.9, ...), plus the max."""
    rows: list[pd.DataFrame] = []
    good = steady.loc[(steady["kind"] != "error") & steady["ok"]]
    for (kind, name), values in good.groupby(["kind", "name"], observed=True)["latency_us"]:
        arr = values.to_numpy()
        # Beyond log10(n) nines there is no sample left to resolve the tail.
        top = min(CURVE_MAX_NINES, math.log10(len(arr))) if len(arr) > 1 else 0.0
        nines = np.arange(0.0, top + 1e-9, CURVE_NINES_STEP)
        q = 1.0 - 10.0 ** -nines
        rows.append(pd.DataFrame({
            "key": latency_key(str(kind), str(name)),
            "percentile": np.append(q * 100, 100.0),
            "nines": np.append(nines, top),
            "latency_us": np.append(np.quantile(arr, q), arr.max()),
        }))
    if not rows:
        return pd.DataFrame(columns=["key", "percentile", "nines", "latency_us"])
    return pd.concat(rows, ignore_index=True)


def _is(frame: pd.DataFrame, kind: str) -> np.ndarray:
    """Boolean mask of rows of one kind (compares category codes, never builds strings)."""
    return (frame["kind"] == kind).to_numpy()


def bin_seconds(window: Window) -> int:
    """Width of a time series' bucket: 1 s, or wider so the load fits in ``MAX_TIME_BINS`` buckets."""
    span_s = math.ceil((window.end_ns - window.load_start_ns) / NS_PER_S)
    return max(1, math.ceil(span_s / MAX_TIME_BINS))


def _bins(window: Window) -> tuple[int, int]:
    """``(number of buckets, bucket width in ns)`` of the time series over the whole load."""
    width = bin_seconds(window) * NS_PER_S
    return max(1, math.ceil((window.end_ns - window.load_start_ns) / width)), width


def _seconds(t_ns: np.ndarray, window: Window) -> np.ndarray:
    """The bucket of each time (0 = the first after the load start; negative before it)."""
    return (t_ns - window.load_start_ns) // _bins(window)[1]


def latency_timeline(samples: pd.DataFrame, window: Window) -> pd.DataFrame:
    """p50 and p99 of each name's successful samples per bucket (``second`` = its start), over the whole run."""
    good = samples.loc[(samples["kind"] != "error") & samples["ok"], ["t_ns", "kind", "name", "latency_us"]]
    if good.empty:
        return pd.DataFrame(columns=["key", "second", "p50_us", "p99_us"])
    good = good.assign(second=_seconds(good["t_ns"].to_numpy(), window) * bin_seconds(window))
    q = good.groupby(["kind", "name", "second"], observed=True)["latency_us"].quantile([0.5, 0.99]).unstack()
    q.columns = ["p50_us", "p99_us"]
    q = q.reset_index()
    q["key"] = [latency_key(str(k), str(n)) for k, n in zip(q["kind"], q["name"], strict=True)]
    return q[["key", "second", "p50_us", "p99_us"]]


# --- connections ---------------------------------------------------------------------

@dataclass(frozen=True)
class ConnectionEvents:
    """Connected-client count as a step function: level after each event time."""

    times_ns: np.ndarray
    levels: np.ndarray


def connection_events(samples: pd.DataFrame) -> ConnectionEvents:
    """+1 when a connect completes, -1 when a disconnect completes or a connection is
    found lost (an ``error`` sample named ``connection``: it died between operations,
    the user will connect anew), over the whole run, as webui/live.py counts them.

    The whole run, not the steady window: clients connected during the
    warm-up are still connected in the steady state.
    """
    kind = samples["kind"]
    conn = samples.loc[(kind == "connect") & samples["ok"], ["t_ns", "latency_us"]]
    disc = samples.loc[(kind == "disconnect") | ((kind == "error") & (samples["name"] == "connection")),
                       ["t_ns", "latency_us"]]

    def done(frame: pd.DataFrame) -> np.ndarray:
        lat = np.nan_to_num(frame["latency_us"].to_numpy(), nan=0.0, posinf=0.0, neginf=0.0).clip(0, MAX_LATENCY_US)
        return frame["t_ns"].to_numpy() + np.round(lat * 1000).astype(np.int64)

    times = np.concatenate([done(conn), done(disc)])
    deltas = np.concatenate([np.ones(len(conn), np.int64), -np.ones(len(disc), np.int64)])
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
    steady: pd.DataFrame, duration_s: float, events: ConnectionEvents, window: Window, notes: list[str]
) -> dict[str, Any]:
    """Connect/disconnect counts, rates, failures by error, concurrent clients."""
    out: dict[str, Any] = {}
    for kind, plural in (("connect", "connects"), ("disconnect", "disconnects")):
        rows = steady.loc[steady["kind"] == kind, ["ok", "error"]]
        attempts = len(rows)
        ok = int(rows["ok"].sum())
        failed = attempts - ok
        out[plural] = ok
        out[f"{kind}_attempts"] = attempts
        out[f"{plural}_per_s"] = ok / duration_s
        out[f"{kind}_attempts_per_s"] = attempts / duration_s
        out[f"{kind}_failures"] = failed
        out[f"{kind}_failure_ratio"] = failed / attempts if attempts else None
        out[f"{kind}_errors"] = _error_counts(rows.loc[~rows["ok"], "error"])

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
    n, width = _bins(window)
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

def find_stalls(samples: pd.DataFrame, events: ConnectionEvents,
                window: Window) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Stretches of the steady window where clients are connected but nothing is answered.

    A completion is a successful ack or push, at ``t_ns + latency``. The
    threshold is ``max(STALL_MIN_S, STALL_GAP_FACTOR x the median gap between
    consecutive completions in the steady window)``. Between consecutive
    completions (the window's ends count as completions), each stretch with
    at least one client connected (``connection_events``) longer than the
    threshold is a stall. A run with no ack or push at all (idle) is not
    checked. Returns ``[(start_ns, end_ns), ...]`` and how the check went.
    """
    done = np.sort(np.concatenate([_completions(samples, "ack"), _completions(samples, "push")]))
    check: dict[str, Any] = {"checked": False, "threshold_s": None, "median_gap_s": None, "count": 0,
                             "total_s": 0.0, "min_s": STALL_MIN_S, "gap_factor": STALL_GAP_FACTOR}
    if not len(done):
        check["reason"] = "no acks or pushes: nothing is expected to answer"
        return [], check
    inside = done[(done > window.start_ns) & (done < window.end_ns)]
    gaps = np.diff(inside)
    median_gap = float(np.median(gaps)) if len(gaps) else 0.0
    threshold = max(STALL_MIN_S * NS_PER_S, STALL_GAP_FACTOR * median_gap)
    check.update(checked=True, threshold_s=threshold / NS_PER_S, median_gap_s=median_gap / NS_PER_S)
    points = np.concatenate([[window.start_ns], inside, [window.end_ns]])
    long_gaps = np.flatnonzero(np.diff(points) > threshold)
    stalls: list[tuple[int, int]] = []
    for i in long_gaps:
        a, b = int(points[i]), int(points[i + 1])
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

def throughput_figures(steady: pd.DataFrame, duration_s: float) -> dict[str, Any]:
    """Acknowledged events and delivered pushes per second in the steady window."""
    kind = steady["kind"]
    acks = steady.loc[kind == "ack", ["ok", "bytes"]]
    pushes = steady.loc[(kind == "push") & steady["ok"], ["bytes"]]
    acks_ok = int(acks["ok"].sum())
    return {
        "acks": acks_ok,
        "acks_per_s": acks_ok / duration_s,
        "ack_failures": len(acks) - acks_ok,
        "ack_bytes_per_s": float(acks.loc[acks["ok"], "bytes"].sum()) / duration_s,
        "pushes": len(pushes),
        "pushes_per_s": len(pushes) / duration_s,
        "push_bytes_per_s": float(pushes["bytes"].sum()) / duration_s,
    }


def _error_counts(errors: pd.Series) -> dict[str, int]:
    """{error text: count}, most frequent first; past ``MAX_ERRORS`` texts the rest are summed
    under one ``(N other errors)`` key, so messages carrying ids cannot bloat summary.json."""
    if errors.empty:
        return {}
    texts = errors.astype(object).where(errors.notna(), NO_ERROR_MESSAGE)
    counts = texts.value_counts(sort=False)
    ordered = sorted(((str(k), int(v)) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) > MAX_ERRORS:
        rest = ordered[MAX_ERRORS - 1:]
        ordered = ordered[: MAX_ERRORS - 1] + [(f"({len(rest)} other errors)", sum(n for _, n in rest))]
    return dict(ordered)


def error_figures(steady: pd.DataFrame) -> tuple[dict[str, int], pd.DataFrame, float | None]:
    """Failures by error text, by (kind, name, error), and the failed share of operations."""
    failed = steady.loc[~steady["ok"], ["kind", "name", "error"]]
    errors = _error_counts(failed["error"])
    if failed.empty:
        breakdown = pd.DataFrame(columns=["kind", "name", "error", "count"])
    else:
        texts = failed["error"].astype(object).where(failed["error"].notna(), NO_ERROR_MESSAGE)
        breakdown = (
            pd.DataFrame({"kind": failed["kind"].astype(str), "name": failed["name"].astype(str),
                          "error": texts.astype(str)})
            .groupby(["kind", "name", "error"]).size().rename("count").reset_index()
            .sort_values(["count", "kind", "name"], ascending=[False, True, True], kind="stable")
            .head(MAX_ERRORS)
            .reset_index(drop=True)
        )
    ops = steady["kind"].isin(OPERATION_KINDS).to_numpy()
    total = int(ops.sum())
    ratio = int((ops & ~steady["ok"].to_numpy()).sum()) / total if total else None
    return errors, breakdown, ratio


def fanout_figures(steady: pd.DataFrame, latency: pd.DataFrame, notes: list[str],
                   pairs: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Deliveries expected (acks' ``expected``) vs pushes received, per event pair.

    Both sides are counted on ``t_ns`` in the same window: a push carries its
    sender's timestamp, so a delivery belongs to the window of its broadcast.
    """
    kind, name = steady["kind"], steady["name"]
    by_event: dict[str, dict[str, Any]] = {}
    pairs = FANOUT_PAIRS if pairs is None else pairs
    for ack_name, push_name in pairs.items():
        acks = steady.loc[(kind == "ack") & (name == ack_name) & steady["ok"], "expected"]
        received = int(((kind == "push") & (name == push_name) & steady["ok"]).sum())
        expected = int(acks.sum())
        if not expected and not received:
            continue
        lost = expected - received
        entry: dict[str, Any] = {
            "push": push_name,
            "sends": len(acks),
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

    unpaired = steady.loc[(kind == "ack") & steady["ok"] & (steady["expected"] > 0), "name"]
    unpaired = sorted(set(unpaired.astype(str)) - set(pairs))
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
    frame: pd.DataFrame, window: Window, steady: pd.DataFrame, notes: list[str], *, source: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """CPU seconds of a process tree in the steady window, per 1,000 acks and connects.

    Returns the figures and a timeline (``t_s``, ``cpu_cores``, ``rss_bytes``).
    Cumulative CPU of a process tree drops when a child exits (its time
    leaves the sum), so the CPU curve is rebuilt from its non-negative steps.
    """
    t = frame["t_ns"].to_numpy()
    raw = (frame["cpu_user_s"] + frame["cpu_system_s"]).to_numpy(dtype=np.float64)
    steps = np.diff(raw, prepend=raw[0])
    if (steps < 0).any():
        notes.append(f"{source}: cumulative CPU dropped {int((steps < 0).sum())} time(s) "
                     "(a process of the tree exited); only increases are counted")
    cpu = np.cumsum(steps.clip(min=0))
    x = (t - t[0]).astype(np.float64)

    lo, hi = max(window.start_ns, int(t[0])), min(window.end_ns, int(t[-1]))
    figures: dict[str, Any] = {
        "cpu_s": None, "cpu_cores": None, "cpu_s_per_1k_acks": None, "cpu_s_per_1k_connects": None,
        "covered_s": 0.0,
    }
    if hi > lo:
        cpu_s = float(np.interp(hi - t[0], x, cpu) - np.interp(lo - t[0], x, cpu))
        covered = (hi - lo) / NS_PER_S
        st = steady["t_ns"].to_numpy()
        inside = (st >= lo) & (st < hi) & steady["ok"].to_numpy()
        acks = int((inside & _is(steady, "ack")).sum())
        connects = int((inside & _is(steady, "connect")).sum())
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
    server: pd.DataFrame, window: Window, steady: pd.DataFrame, peak_clients_samples: int, notes: list[str]
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The target's CPU cost (``cpu_figures``), RSS peak and RSS per connected client."""
    figures, timeline = cpu_figures(server, window, steady, notes, source="server.csv")
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
    loadgen: pd.DataFrame, window: Window, steady: pd.DataFrame, notes: list[str]
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The load generator's CPU cost and peak RSS: on a small machine it competes with the target."""
    figures, timeline = cpu_figures(loadgen, window, steady, notes, source="loadgen.csv")
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


def _completions(samples: pd.DataFrame, kind: str) -> np.ndarray:
    """Sorted completion times (``t_ns + latency``) of the successful samples of one kind."""
    rows = samples.loc[_is(samples, kind) & samples["ok"].to_numpy(), ["t_ns", "latency_us"]]
    lat = np.nan_to_num(rows["latency_us"].to_numpy(), nan=0.0, posinf=0.0, neginf=0.0).clip(0, MAX_LATENCY_US)
    return np.sort(rows["t_ns"].to_numpy() + np.round(lat * 1000).astype(np.int64))


def _slope(x: np.ndarray, y: np.ndarray) -> float | None:
    """Least-squares slope of y against x, None when x does not vary."""
    x = x.astype(np.float64)
    dx = x - x.mean()
    var = float((dx * dx).sum())
    if len(x) < MIN_FIT_ROWS or var == 0:
        return None
    return float((dx * (y - y.mean())).sum() / var)


def memory_figures(server: pd.DataFrame, window: Window, samples: pd.DataFrame,
                   notes: list[str]) -> dict[str, Any]:
    """RSS growth over the steady window per 1,000 connects and per 1,000 acks, and RSS
    before the load vs after it.

    Growth: the slope of a least-squares line of RSS against the cumulative count
    of successful connects (acks) completed by each server.csv row of the steady
    window, times 1,000. Each fit is against one count alone: where both grow,
    each figure carries the other's cost too. Before: the last row before the load
    start; after: the last row after the load end ("after the load, once clients
    are gone"), None when the sampler stopped with the load.
    """
    t = server["t_ns"].to_numpy()
    rss = server["rss_bytes"].to_numpy(dtype=np.float64)
    inside = (t >= window.start_ns) & (t < window.end_ns)
    out: dict[str, Any] = {}
    for kind, key in (("connect", "rss_growth_bytes_per_1k_connects"), ("ack", "rss_growth_bytes_per_1k_acks")):
        done = _completions(samples, kind)
        cumulative = np.searchsorted(done, t[inside], side="right")
        slope = _slope(cumulative, rss[inside])
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

def rate_timeline(samples: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Per-second rates in one-second buckets (by ``t_ns``) over the whole load
    (wider buckets past ``MAX_TIME_BINS`` seconds; the index is each bucket's start, s).

    Each bucket's count is divided by the part of it the load covered, so the
    last, partial second shows its true rate instead of a dip.
    """
    n, width = _bins(window)
    sec = _seconds(samples["t_ns"].to_numpy(), window)
    keep = (sec >= 0) & (sec < n)
    sec = sec[keep]
    ok = samples["ok"].to_numpy()[keep]

    def kind(name: str) -> np.ndarray:
        return _is(samples, name)[keep]

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(sec[mask], minlength=n)[:n]

    connect, ack = kind("connect"), kind("ack")
    frame = pd.DataFrame({
        "connects": count(connect & ok),
        "connect_failures": count(connect & ~ok),
        "disconnects": count(kind("disconnect") & ok),
        "acks": count(ack & ok),
        "ack_failures": count(ack & ~ok),
        "pushes": count(kind("push") & ok),
        "failures": count(~ok),
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
        samples = data.samples
        grouped = samples.groupby(["kind", "name"], observed=True)["ok"]
        table = pd.DataFrame({"count": grouped.size(), "ok": grouped.sum()}).reset_index()
        counts = pd.DataFrame({"kind": table["kind"].astype(str), "name": table["name"].astype(str),
                               "count": table["count"], "failures": table["count"] - table["ok"]})
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


def target_gap_problems(data: CellData, samples: pd.DataFrame, lost: list[str]) -> list[str]:
    """The target's own count of each event (run.json ``target_events``, from its ``/stats``) against the samples.

    Every call ends as a sample (answered, failed or unanswered at the stop),
    so a target that handled more calls of an event than there are samples of
    it means samples were lost; more answered acks than the target handled
    means the counts cannot be trusted.
    """
    counts = (data.run.extra.get("target_events") if data.run is not None else None) or {}
    if not isinstance(counts, dict):
        return []
    acks = samples[samples["kind"] == "ack"]
    problems: list[str] = []
    for event, handled in sorted(counts.items()):
        if not isinstance(handled, int):
            continue
        mine = acks[acks["name"] == event]
        total, answered = len(mine), int(mine["ok"].sum())
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

def main_event_of(latency: pd.DataFrame, scenario: str | None = None) -> str | None:
    """The scenario's own acked event (``SCENARIO_EVENTS``) if it was measured, else the
    acknowledged event with the most successful samples."""
    acks = latency.loc[(latency["kind"] == "ack") & (latency["ok"] > 0)]
    if acks.empty:
        return None
    own = SCENARIO_EVENTS.get(scenario or "")
    if own in acks.index:
        return own
    return str(acks.sort_values(["ok", "name"], ascending=[False, True], kind="stable").index[0])


def primary_figure(
    scenario: str | None,
    main_event: str | None,
    latency: pd.DataFrame,
    connections: dict[str, Any],
    server: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The one figure cells of a scenario are ranked by, with its direction.

    Connection scenarios (churn) rank by connects per second, higher is
    better; idle by RSS per client; others by the p99 of the main
    acknowledged event, lower is better. Without an acked event: the p99 of
    the busiest push, then connects per second, then RSS per client.
    """
    def figure(path: list[str], label: str, value: Any, better: str) -> dict[str, Any]:
        return {"key": ".".join(path), "path": path, "label": label, "value": value, "better": better}

    rss_per_client = server.get("rss_per_client_bytes") if server else None
    if scenario in CONNECTION_SCENARIOS:
        return figure(["connections", "connects_per_s"], "connect rate", connections["connects_per_s"], "higher")
    if scenario in MEMORY_SCENARIOS and rss_per_client is not None:
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
