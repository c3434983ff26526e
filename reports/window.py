"""The steady window of a cell and the time buckets of its series.

- The load runs from the first sample to the last (or between run.json's
  ``load_started_ns`` and ``load_ended_ns`` when the runner records them; see
  ``load_bounds``). The steady window is ``[load start + warm-up, load end)``
  on ``t_ns`` (the time an operation started).
- Time series cover the whole load, in one-second buckets counted from the
  load start; a load longer than ``MAX_TIME_BINS`` seconds gets wider buckets,
  so no timestamp can make a series (or its memory) grow without bound.

When run.json records both bounds of the load, ``run_window`` gives the
window before any sample is read, so the figures can be counted in the same
read that checks the shards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reports.errors import ReportInputError
from reports.shards import SampleSource
from sioharness.core.run_record import RunRecord

NS_PER_S = 1_000_000_000
DEFAULT_WARMUP_S = 0.0
# Anything later than 2**62 ns (year 2116) is not a plausible epoch-nanosecond timestamp;
# it also keeps every sum of two timestamps inside int64.
MAX_EPOCH_NS = 2**62
# A gap this long (or this share of the load) between the last sample and the
# planned end means the load stalled, not that Locust's timer ran early.
STALL_GAP_S = 2.0
STALL_GAP_SHARE = 0.1
# At most this many buckets per time series: past MAX_TIME_BINS seconds of load the
# buckets widen (whole seconds), so memory never depends on a timestamp's value.
MAX_TIME_BINS = 20_000


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



def load_bounds(source: SampleSource, run: RunRecord | None, notes: list[str]) -> tuple[int, int, str]:
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
    stats = source.stats
    first, last_t = stats.first_ns, stats.last_ns
    mean_gap = (last_t - first) // (stats.count - 1) if stats.count > 1 else 0
    last = last_t + max(mean_gap, 1)  # at least +1 ns: the last sample is inside [start, end)
    run = run or RunRecord()
    start = run.load_started_ns if run.load_started_ns is not None else first
    if run.load_ended_ns is not None:
        gap = run.load_ended_ns - last
        # Only where something answers all along: an idle run's last sample is its last connect.
        answers = any(kind in ("ack", "push") and rows > 0
                      for (kind, _), rows in zip(source.groups, stats.group_rows, strict=True))
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



def steady_window(source: SampleSource, run: RunRecord | None, warmup_s: float, source_of_warmup: str,
                  where: str | Path = "samples", notes: list[str] | None = None) -> Window:
    """The steady window: ``[load start + warm-up, load end)`` (see ``load_bounds``)."""
    load_start, end, end_source = load_bounds(source, run, notes if notes is not None else [])
    # Compared in seconds first: a warm-up of 1e300 s must be an error, not an overflow.
    too_long = warmup_s >= (end - load_start) / NS_PER_S
    start = end if too_long else load_start + round(warmup_s * NS_PER_S)
    if start >= end:
        raise ReportInputError(
            where,
            f"a warm-up of {warmup_s:g} s ({source_of_warmup}) leaves no steady window: "
            f"the load ran {(end - load_start) / NS_PER_S:.3f} s",
        )
    return Window(load_start_ns=load_start, start_ns=int(start), end_ns=int(end), warmup_s=warmup_s,
                  warmup_source=source_of_warmup, end_source=end_source)



def bin_seconds(window: Window) -> int:
    """Width of a time series' bucket: 1 s, or wider so the load fits in ``MAX_TIME_BINS`` buckets."""
    span_s = math.ceil((window.end_ns - window.load_start_ns) / NS_PER_S)
    return max(1, math.ceil(span_s / MAX_TIME_BINS))



def time_bins(window: Window) -> tuple[int, int]:
    """``(number of buckets, bucket width in ns)`` of the time series over the whole load."""
    width = bin_seconds(window) * NS_PER_S
    return max(1, math.ceil((window.end_ns - window.load_start_ns) / width)), width



def cpu_range(frame: pd.DataFrame, window: Window) -> tuple[int, int]:
    """``[lo, hi)``: the part of the steady window a process CSV covers."""
    t = frame["t_ns"].to_numpy()
    return max(window.start_ns, int(t[0])), min(window.end_ns, int(t[-1]))


def run_window(run: RunRecord | None, warmup_s: float, source_of_warmup: str) -> Window | None:
    """The steady window from run.json alone, when it records both bounds of the load (else None):
    what ``steady_window`` gives, before any sample is read. None as well when the warm-up
    leaves no window (``steady_window`` says why)."""
    if run is None or run.load_started_ns is None or run.load_ended_ns is None:
        return None
    start, end = run.load_started_ns, run.load_ended_ns
    if warmup_s >= (end - start) / NS_PER_S:
        return None
    window = Window(load_start_ns=start, start_ns=int(start + round(warmup_s * NS_PER_S)), end_ns=int(end),
                    warmup_s=warmup_s, warmup_source=source_of_warmup, end_source="run.json load_ended_ns")
    return window if window.start_ns < window.end_ns else None
