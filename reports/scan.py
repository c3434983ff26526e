"""One read of a cell's kept samples that gathers what every figure needs.

A ``Scan`` is fed chunk by chunk, once: by ``scan_samples`` from a
``SampleSource``, or by ``PairScan`` during the first read of the shards when
run.json gives the window before any sample is read (``read_cell.load_cell``).
It keeps only counts, sums and maxima (per name, per time bucket, per error),
plus what an exact figure cannot do without:

- each timed name's successful latencies over the whole run, as float64 with
  a 16-bit time bucket and a flag byte (``LatencyStore``: 11 bytes a sample),
  for exact percentiles per name and per bucket;
- the completion times (``t_ns + latency``) of the answers inside the steady
  window, for the stall check (8 bytes an answer);
- connect and leave times, for the connected-client curve.

Everything else is counted as it goes by, so a report's memory is set by
those arrays, not by the columns of the samples.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports.gc_pauses import LONG_PAUSE_MS, NS_PER_MS, bin_ns, merge_intervals
from reports.shards import SampleChunk, SampleSource
from reports.window import Window, cpu_range, time_bins
from sioharness.core.schema import KINDS

# Flag bits of a stored latency.
STEADY = 1
"""Sent inside the steady window."""
OVERLAP = 2
"""In flight during a long GC pause (only when the cell has pauses to hold against)."""
# Latencies are capped here when turned into completion times (t_ns + latency), so
# that sum stays inside int64 whatever the input (10**15 us: 31 years).
MAX_LATENCY_US = 1e15

CONNECT, DISCONNECT, ACK, PUSH, ERROR = (KINDS.index(k) for k in ("connect", "disconnect", "ack", "push", "error"))
OTHER = len(KINDS)
RATE_SERIES = ("connects", "connect_failures", "disconnects", "acks", "ack_failures", "pushes")
# Rate series of a row from (kind index * 2 + ok); len(RATE_SERIES) = counted in none.
_RATE_OF = np.full(2 * (OTHER + 1), len(RATE_SERIES), dtype=np.int64)
_RATE_OF[2 * CONNECT + 1], _RATE_OF[2 * CONNECT] = 0, 1
_RATE_OF[2 * DISCONNECT + 1] = 2
_RATE_OF[2 * ACK + 1], _RATE_OF[2 * ACK] = 3, 4
_RATE_OF[2 * PUSH + 1] = 5


def completion_ns(t_ns: np.ndarray, latency_us: np.ndarray) -> np.ndarray:
    """When each operation completed: ``t_ns`` + latency (NaN and infinities as 0, capped at MAX_LATENCY_US)."""
    if np.isfinite(latency_us).all():
        lat = latency_us.clip(0, MAX_LATENCY_US)
    else:
        lat = np.nan_to_num(latency_us, nan=0.0, posinf=0.0, neginf=0.0).clip(0, MAX_LATENCY_US)
    return t_ns + np.round(lat * 1000).astype(np.int64)


def overlapping(begin_ns: np.ndarray, end_ns: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which intervals ``[begin, end]`` meet one of the pauses ``[starts, ends]``, already merged
    (``reports.gc_pauses.merge_intervals``: ``reports.gc_pauses.overlapping`` without the merge,
    which would be repeated for every chunk)."""
    out = np.zeros(len(begin_ns), dtype=bool)
    if not len(begin_ns) or not len(starts):
        return out
    last = np.searchsorted(starts, end_ns, side="right") - 1
    some = last >= 0
    out[some] = ends[last[some]] >= begin_ns[some]
    return out


# Buckets of 2**22 ns (4.2 ms) for ``PauseMap``, and the most it keeps.
PAUSE_BUCKET_SHIFT = 22
MAX_PAUSE_BUCKETS = 1 << 26
# A latency under this many microseconds spans at most two buckets (its answer comes < 2**22 ns after it).
_SHORT_US = ((1 << PAUSE_BUCKET_SHIFT) - 1) // 1000


class PauseMap:
    """Merged pauses, with a map of the 4.2 ms buckets they touch.

    ``overlapping`` runs the binary search only for the samples near a
    marked bucket: under load a server pauses for a few percent of the time,
    so most samples are ruled out by one lookup.
    """

    def __init__(self, starts: np.ndarray, ends: np.ndarray) -> None:
        self.starts, self.ends = starts, ends
        self.first = 0
        self.near: np.ndarray | None = None
        if not len(starts):
            return
        first, last = int(starts[0]) >> PAUSE_BUCKET_SHIFT, int(ends.max()) >> PAUSE_BUCKET_SHIFT
        size = last - first + 1
        if size > MAX_PAUSE_BUCKETS:
            return
        change = np.zeros(size + 1, dtype=np.int64)
        np.add.at(change, (starts >> PAUSE_BUCKET_SHIFT) - first, 1)
        np.add.at(change, (ends >> PAUSE_BUCKET_SHIFT) - first + 1, -1)
        # touched[k + 1]: a pause touches bucket k (from -1 to size, the two ends untouched).
        touched = np.concatenate([[False], np.cumsum(change)[:-1] > 0, [False]])
        # near[k + 2]: a pause touches bucket k or k + 1; the ends (k < -1, k >= size) stay False.
        self.near = np.concatenate([[False], touched[:-1] | touched[1:], [False]])
        self.first = first

    def overlapping(self, sent_ns: np.ndarray, latency_us: np.ndarray, among: np.ndarray) -> np.ndarray:
        """Which samples of ``among`` (sent, answered ``round(latency * 1000)`` ns later) were in flight
        during a pause: ``overlapping`` on ``[sent, answered]``, exactly."""
        out = np.zeros(len(sent_ns), dtype=bool)
        if not len(sent_ns):
            return out
        if self.near is None:
            candidates = np.flatnonzero(among)
        else:
            index = np.clip((sent_ns >> PAUSE_BUCKET_SHIFT) - (self.first - 2), 0, len(self.near) - 1)
            candidates = np.flatnonzero(among & (self.near[index] | ~(latency_us < _SHORT_US)))
        sent = sent_ns[candidates]
        answered = sent + np.round(latency_us[candidates] * 1000).astype(np.int64)
        out[candidates] = overlapping(sent, answered, self.starts, self.ends)
        return out


@dataclass(frozen=True)
class ScanPlan:
    """What the scan counts against: the window, the buckets, and the ranges other figures ask about."""

    load_start_ns: int
    start_ns: int
    end_ns: int
    n_bins: int
    """Buckets of the rate series, over ``[load start, end)``."""
    bin_ns: int
    first_bin: int
    """The first bucket a stored latency may fall in (before the load start: negative)."""
    store_bins: int
    """How many buckets, from ``first_bin``, the stored latencies span."""
    gc_bin_ns: int
    gc_bins: int
    cpu_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    """``[lo, hi)`` per process CSV: its successful acks and connects are counted."""
    memory_times: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """server.csv times (sorted): successful connects and acks completed by each are counted."""
    pauses: PauseMap | None = None
    """Long GC pauses, merged, that the steady samples are held against."""


# Rows per block of the columns a scan keeps (``Blocks``): each block twice the size of
# the one before, from FIRST_BLOCK_ROWS to BLOCK_ROWS. Large blocks (32 MiB and more) are
# mapped by malloc straight from the OS and given back whole, so they never fragment the
# heap the chunks' temporaries reuse. The first block is small: a folder can hold
# 100,000 names of a few samples each, and each name has blocks of its own.
FIRST_BLOCK_ROWS = 1 << 8
BLOCK_ROWS = 1 << 25


class Blocks:
    """A column that grows chunk by chunk, kept in large blocks (``BLOCK_ROWS``)."""

    def __init__(self, dtype: type[np.generic]) -> None:
        self.dtype = dtype
        self.blocks: list[np.ndarray] = []
        self.filled = 0
        """Rows filled in the last block."""

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks[:-1]) + self.filled

    def append(self, values: np.ndarray, index: np.ndarray | None = None) -> None:
        """Append ``values`` (``values[index]``, gathered straight into the block, when given)."""
        total = len(values) if index is None else len(index)
        at = 0
        while at < total:
            if not self.blocks or self.filled == len(self.blocks[-1]):
                size = min(BLOCK_ROWS, 2 * len(self.blocks[-1])) if self.blocks else FIRST_BLOCK_ROWS
                self.blocks.append(np.empty(size, dtype=self.dtype))
                self.filled = 0
            n = min(total - at, len(self.blocks[-1]) - self.filled)
            target = self.blocks[-1][self.filled:self.filled + n]
            if index is None:
                target[...] = values[at:at + n]
            else:
                np.take(values, index[at:at + n], out=target)
            self.filled += n
            at += n

    def release(self) -> list[np.ndarray]:
        """The filled rows as pieces, handed over (the column is empty afterwards)."""
        pieces = [*self.blocks[:-1], self.blocks[-1][:self.filled]] if self.blocks else []
        self.blocks, self.filled = [], 0
        return pieces


class LatencyStore:
    """One name's successful latencies over the whole run, with a time bucket and flags each."""

    def __init__(self, first_bin: int, n_bins: int) -> None:
        self.first_bin = first_bin
        self.n_bins = n_bins
        # A 16-bit bucket (radix-sortable) whenever the buckets fit.
        self.dtype: type[np.generic] = np.uint16 if n_bins <= 1 << 16 else np.int32
        self.values = Blocks(np.float64)
        self.bins = Blocks(self.dtype)
        self.flags = Blocks(np.uint8)

    def add(self, values: np.ndarray, bins: np.ndarray, flags: np.ndarray, index: np.ndarray) -> None:
        """Add ``values[index]`` with their bins (already relative to ``first_bin``, in ``dtype``) and flags."""
        self.values.append(values, index)
        self.bins.append(bins, index)
        self.flags.append(flags, index)

    def release(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """The pieces, handed over (the store is empty afterwards)."""
        return self.values.release(), self.bins.release(), self.flags.release()


class Scan:
    """Everything ``scan_samples`` gathered; per-group arrays are indexed like ``SampleSource.groups``
    once ``finish`` has run (before it, in the order the groups were first seen)."""

    def __init__(self, plan: ScanPlan) -> None:
        self.plan = plan
        self.groups: list[tuple[str, str]] = []
        self.group_kind = np.empty(0, dtype=np.int64)
        self.leaving = np.empty(0, dtype=bool)
        """Groups whose samples are leaves (disconnects, connections found lost)."""
        self.timed = np.empty(0, dtype=bool)
        self.steady = np.empty(0, dtype=np.int64)
        self.steady_ok = np.empty(0, dtype=np.int64)
        self.ok_bytes = np.empty(0, dtype=np.int64)
        """Sum of ``bytes`` of the successful steady samples."""
        self.ok_expected = np.empty(0, dtype=np.int64)
        """Sum of ``expected`` of the successful steady samples."""
        self.ok_expecting = np.empty(0, dtype=np.int64)
        """Successful steady samples with ``expected`` > 0."""
        self.overlap = np.empty(0, dtype=np.int64)
        """Successful steady samples in flight during a long pause (with ``plan.pauses``)."""
        self.gc_max = np.empty((0, plan.gc_bins))
        """The largest successful latency per (group, GC timeline bucket)."""
        self.gc_rows = np.empty((0, plan.gc_bins), dtype=np.int64)
        self.rates = np.zeros(len(RATE_SERIES) * plan.n_bins, dtype=np.int64)
        """Rows per (RATE_SERIES, bucket)."""
        self.failures = np.zeros(plan.n_bins, dtype=np.int64)
        """Failed rows per bucket."""
        self.errors: Counter[tuple[int, int]] = Counter()
        """Failed steady samples per (group, error code)."""
        self.joins: list[np.ndarray] = []
        self.leaves: list[np.ndarray] = []
        self.completions = Blocks(np.int64)
        """Completion times of successful acks and pushes strictly inside the steady window (unsorted)."""
        self.answered = False
        """Some ack or push succeeded (anywhere in the run)."""
        self.cpu: dict[str, list[int]] = {name: [0, 0] for name in plan.cpu_ranges}
        """Per process CSV: [successful acks, successful connects] sent in its range."""
        size = len(plan.memory_times) + 1
        self.memory: dict[str, np.ndarray] = {"connect": np.zeros(size, dtype=np.int64),
                                              "ack": np.zeros(size, dtype=np.int64)}
        """Per kind (connect, ack): successful completions at or before each of ``plan.memory_times``
        (after ``finish``; before, per searchsorted position)."""
        self.stores: dict[int, LatencyStore] = {}

    @property
    def steady_total(self) -> int:
        return int(self.steady.sum())

    def add_groups(self, groups: Sequence[tuple[str, str]]) -> None:
        """Make room for more groups, ``(kind, name)`` each, numbered on from the last."""
        if not groups:
            return
        n = len(groups)
        self.groups.extend(groups)
        kinds = np.array([KINDS.index(k) if k in KINDS else OTHER for k, _ in groups], dtype=np.int64)
        self.group_kind = np.concatenate([self.group_kind, kinds])
        self.leaving = np.concatenate([self.leaving, [k == "disconnect" or (k == "error" and name == "connection")
                                                      for k, name in groups]]).astype(bool)
        self.timed = np.concatenate([self.timed, kinds != ERROR])
        for name in ("steady", "steady_ok", "ok_bytes", "ok_expected", "ok_expecting", "overlap"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(n, dtype=np.int64)]))
        self.gc_max = np.concatenate([self.gc_max, np.full((n, self.plan.gc_bins), -np.inf)])
        self.gc_rows = np.concatenate([self.gc_rows, np.zeros((n, self.plan.gc_bins), dtype=np.int64)])

    def add(self, chunk: SampleChunk) -> None:
        """Count one chunk (its groups must have been added)."""
        _add(self, chunk)

    def finish(self, order: Sequence[int] | None = None) -> None:
        """Number the groups as ``order`` lists them (old numbers, in their new order)."""
        for kind, counts in self.memory.items():
            self.memory[kind] = np.cumsum(counts)[:len(self.plan.memory_times)]
        if order is None or list(order) == list(range(len(self.groups))):
            return
        index = np.asarray(order, dtype=np.int64)
        renumber = np.empty(len(self.groups), dtype=np.int64)
        renumber[index] = np.arange(len(index))
        self.groups = [self.groups[i] for i in index]
        for name in ("group_kind", "leaving", "timed", "steady", "steady_ok", "ok_bytes", "ok_expected",
                     "ok_expecting", "overlap", "gc_max", "gc_rows"):
            setattr(self, name, getattr(self, name)[index])
        self.errors = Counter({(int(renumber[g]), code): n for (g, code), n in self.errors.items()})
        self.stores = {int(renumber[g]): store for g, store in self.stores.items()}


def scan_samples(source: SampleSource, plan: ScanPlan) -> Scan:
    """Read ``source`` once and gather the figures' counts and the exact-percentile stores."""
    scan = Scan(plan)
    scan.add_groups(source.groups)
    for chunk in source.chunks(extra=("bytes", "expected", "error")):
        scan.add(chunk)
    scan.finish()
    return scan


def _add(scan: Scan, chunk: SampleChunk) -> None:
    """Count one chunk into ``scan``.

    Masks that would keep every row (a chunk wholly inside the window, as most are)
    are skipped: at a soak's scale each pass over a chunk's rows counts.
    """
    plan = scan.plan
    t, lat, ok, g = chunk.t_ns, chunk.latency_us, chunk.ok, chunk.group
    if not len(t):
        return
    assert chunk.bytes is not None and chunk.expected is not None and chunk.error is not None
    n_groups = len(scan.steady)
    kind = scan.group_kind[g]
    t_low, t_high = int(t.min()), int(t.max())
    steady = None if plan.start_ns <= t_low and t_high < plan.end_ns else (t >= plan.start_ns) & (t < plan.end_ns)
    sec = (t - plan.load_start_ns) // plan.bin_ns
    done = completion_ns(t, lat)

    series = _RATE_OF[kind * 2 + ok]
    counted = series < len(RATE_SERIES)
    failed_rows = ~ok
    if not (int(sec.min()) >= 0 and int(sec.max()) < plan.n_bins):
        in_range = (sec >= 0) & (sec < plan.n_bins)
        counted &= in_range
        failed_rows = failed_rows & in_range
    scan.rates += np.bincount(series[counted] * plan.n_bins + sec[counted], minlength=len(scan.rates))
    scan.failures += np.bincount(sec[failed_rows], minlength=plan.n_bins)

    good = ok if steady is None else ok & steady
    scan.steady += np.bincount(g if steady is None else g[steady], minlength=n_groups)
    g_good = g[good]
    scan.steady_ok += np.bincount(g_good, minlength=n_groups)
    np.add.at(scan.ok_bytes, g_good, chunk.bytes[good])
    expected = chunk.expected[good]
    np.add.at(scan.ok_expected, g_good, expected)
    scan.ok_expecting += np.bincount(g_good[expected > 0], minlength=n_groups)
    failed = ~ok if steady is None else steady & ~ok
    if failed.any():
        keys, counts = np.unique((g[failed].astype(np.int64) << 32) | chunk.error[failed], return_counts=True)
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            scan.errors[(key >> 32, key & 0xFFFFFFFF)] += count

    joins = (kind == CONNECT) & ok
    scan.joins.append(done[joins])
    scan.leaves.append(done[scan.leaving[g]])
    answer = ((kind == ACK) | (kind == PUSH)) & ok
    if answer.any():
        scan.answered = True
        answered = done[answer]
        scan.completions.append(answered[(answered > plan.start_ns) & (answered < plan.end_ns)])

    for name, (lo, hi) in plan.cpu_ranges.items():
        counted = ok & (t >= lo) & (t < hi)
        scan.cpu[name][0] += int(np.count_nonzero(counted & (kind == ACK)))
        scan.cpu[name][1] += int(np.count_nonzero(counted & joins))
    if len(plan.memory_times):
        rows = joins | ((kind == ACK) & ok)
        at = np.searchsorted(plan.memory_times, done[rows], side="left")
        is_join = joins[rows]
        size = len(plan.memory_times) + 1
        scan.memory["connect"] += np.bincount(at[is_join], minlength=size)
        scan.memory["ack"] += np.bincount(at[~is_join], minlength=size)

    in_load = plan.load_start_ns <= t_low and t_high < plan.end_ns
    _add_timed(scan, t, lat, g, ok & scan.timed[g], steady, sec, in_load)


def _add_timed(scan: Scan, t: np.ndarray, lat: np.ndarray, g: np.ndarray, rows: np.ndarray,
               steady: np.ndarray | None, sec: np.ndarray, in_load: bool) -> None:
    """The successful samples of timed names: GC timeline maxima, pause overlaps, latency stores."""
    plan = scan.plan
    n_groups = len(scan.steady)
    loaded = rows if in_load else rows & (t >= plan.load_start_ns) & (t < plan.end_ns)
    if loaded.any():
        key = g[loaded].astype(np.int64) * plan.gc_bins + (t[loaded] - plan.load_start_ns) // plan.gc_bin_ns
        np.maximum.at(scan.gc_max.reshape(-1), key, lat[loaded])
        scan.gc_rows += np.bincount(key, minlength=scan.gc_rows.size).reshape(scan.gc_rows.shape)

    flags = np.full(len(t), STEADY, dtype=np.uint8) if steady is None else steady.astype(np.uint8)
    if plan.pauses is not None:
        hit = plan.pauses.overlapping(t, lat, rows if steady is None else rows & steady)
        flags[hit] |= OVERLAP
        scan.overlap += np.bincount(g[hit], minlength=n_groups)
    # Rows grouped by name with a radix sort on a narrow key; rows not stored get the last key.
    narrow = np.uint8 if n_groups < 255 else np.uint16 if n_groups < 65535 else np.int64
    keyed = np.where(rows, g, n_groups).astype(narrow)
    order = np.argsort(keyed, kind="stable")
    bounds = np.searchsorted(keyed[order], np.arange(n_groups + 1))
    bins = None
    for gid in np.flatnonzero(np.diff(bounds)):
        store = scan.stores.get(int(gid))
        if store is None:
            store = scan.stores[int(gid)] = LatencyStore(plan.first_bin, plan.store_bins)
        if bins is None:
            bins = (sec - plan.first_bin).astype(store.dtype)
        store.add(lat, bins, flags, order[bounds[gid]:bounds[gid + 1]])


SERVER_CSV_NAME = "server.csv"
LOADGEN_CSV_NAME = "loadgen.csv"


def scan_plan(window: Window, server: pd.DataFrame | None, loadgen: pd.DataFrame | None,
              pauses: pd.DataFrame | None, first_ns: int, last_ns: int) -> ScanPlan:
    """What the samples are counted against: the window, the time buckets, the process CSVs' ranges, the pauses.

    ``first_ns`` .. ``last_ns``: the times the samples may have (their own, or the run's span).
    """
    n_bins, width = time_bins(window)
    first_bin = (first_ns - window.load_start_ns) // width
    gc_width = bin_ns(window.end_ns - window.load_start_ns)
    cpu_ranges = {}
    for name, frame in ((SERVER_CSV_NAME, server), (LOADGEN_CSV_NAME, loadgen)):
        # Counted apart only when the CSV covers less than the window (else: the steady counts).
        if frame is not None and cpu_range(frame, window) != (window.start_ns, window.end_ns):
            cpu_ranges[name] = cpu_range(frame, window)
    memory_times = np.empty(0, dtype=np.int64)
    if server is not None:
        t = server["t_ns"].to_numpy()
        memory_times = t[(t >= window.start_ns) & (t < window.end_ns)]
    long_pauses = None
    if pauses is not None:
        long = pauses.loc[pauses["duration_ns"] >= LONG_PAUSE_MS * NS_PER_MS]
        start = long["t_ns"].to_numpy(dtype=np.int64)
        long_pauses = PauseMap(*merge_intervals(start, start + long["duration_ns"].to_numpy(dtype=np.int64)))
    return ScanPlan(
        load_start_ns=window.load_start_ns, start_ns=window.start_ns, end_ns=window.end_ns, n_bins=n_bins,
        bin_ns=width, first_bin=first_bin, store_bins=(last_ns - window.load_start_ns) // width - first_bin + 1,
        gc_bin_ns=gc_width,
        gc_bins=max(1, math.ceil((window.end_ns - window.load_start_ns) / gc_width)),
        cpu_ranges=cpu_ranges, memory_times=memory_times, pauses=long_pauses,
    )


class PairScan:
    """A ``Scan`` fed during the first read of the shards, before the names are all known.

    Rows come named by (kind code, name code) into the read's ``Strings``; groups are
    numbered as first seen, and ``finish`` puts them in the order of ``SampleSource.groups``.
    """

    def __init__(self, plan: ScanPlan) -> None:
        self.scan = Scan(plan)
        self.ids: dict[tuple[int, int], int] = {}

    def __call__(self, part: dict[str, np.ndarray], kinds: Sequence[str], names: Sequence[str]) -> None:
        """Count the kept rows of one part (``kinds``, ``names``: the strings the codes stand for)."""
        kind, name = part["kind"], part["name"]
        if not len(kind):
            return
        width = int(name.max()) + 1
        dense = kind.astype(np.int64) * width + name
        present = np.flatnonzero(np.bincount(dense))
        lut = np.full(int(present[-1]) + 1, -1, dtype=np.int32)
        new: list[tuple[str, str]] = []
        for key in present.tolist():
            pair = divmod(key, width)
            gid = self.ids.get(pair)
            if gid is None:
                gid = self.ids[pair] = len(self.ids)
                new.append((kinds[pair[0]], names[pair[1]]))
            lut[key] = gid
        self.scan.add_groups(new)
        self.scan.add(SampleChunk(t_ns=part["t_ns"], latency_us=part["latency_us"], ok=part["ok"], group=lut[dense],
                                  bytes=part["bytes"], expected=part["expected"], error=part["error"]))

    def finish(self, pairs: Sequence[tuple[int, int]]) -> Scan:
        """The scan, its groups in the order of ``pairs`` (every pair seen, once)."""
        self.scan.finish([self.ids[pair] for pair in pairs])
        return self.scan


@dataclass
class PreScan:
    """The figures' counts, gathered while the shards were first read, for one window."""

    window: Window
    scan: Scan
    pauses: pd.DataFrame | None
    gc_files: list[str]
    gc_notes: list[str]
