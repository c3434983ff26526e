"""A cell's samples, read shard by shard in the columns and narrow types each figure needs.

A four-hour soak is some 100 million samples: one pandas frame of them would
take about 30 GB. The reports never build it. ``scan_shards`` reads every
shard once (``reports.shard_reader``: a few at a time, in worker threads) to
check it and count what the window and the problem lines need, and can hand
the rows it keeps to a ``Sink`` in the same read (the figures' scan, when
run.json gives the window). A ``SampleSource`` reads the usable shards again,
as often as needed, as ``SampleChunk`` numpy arrays holding only the rows
kept (known kind, usable latency, inside the run's span). Names and kinds
travel as small integer codes: the figures group by ``SampleChunk.group``, an
index into ``SampleSource.groups``.

The order of names is the order a pandas frame of every row would give them
as categories (first appearance, shard by shard): the per-name tables come
out in the same order either way.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reports.errors import ReportInputError
from reports.shard_reader import (
    CHUNK_ROWS,
    READ_COLUMNS,
    STRING_COLUMNS,
    TARGET,
    GroupRead,
    Part,
    ShardProblem,
    ShardRead,
    Strings,
    read_groups,
    stream_parts,
    to_columns,
)
from sioharness.core.schema import KINDS

# What a failed sample without an error text is counted under.
NO_ERROR_MESSAGE = "(no error message)"
# Columns every chunk carries (the filters need them).
BASE_COLUMNS = ("t_ns", "kind", "name", "latency_us", "ok")
EXTRA_COLUMNS = ("bytes", "expected", "error")

ProgressCallback = Callable[[int, int, str], None]
"""Called as ``progress(done, total, shard_name)`` after each shard is read."""


@dataclass
class SampleChunk:
    """Kept rows of one batch as numpy arrays (``bytes``, ``expected``, ``error`` when asked for)."""

    t_ns: np.ndarray
    latency_us: np.ndarray
    ok: np.ndarray
    group: np.ndarray
    """Index into ``SampleSource.groups`` (int32)."""
    bytes: np.ndarray | None = None
    expected: np.ndarray | None = None
    error: np.ndarray | None = None
    """Codes into ``SampleSource.errors``; a null error is ``NO_ERROR_MESSAGE``."""

    def __len__(self) -> int:
        return len(self.t_ns)


@dataclass
class SampleStats:
    """The kept samples at a glance: how many, first and last ``t_ns``, rows and successes per group."""

    count: int
    first_ns: int
    last_ns: int
    group_rows: np.ndarray
    group_ok: np.ndarray


class SampleSource(ABC):
    """The samples of one cell, readable chunk by chunk as often as needed."""

    groups: list[tuple[str, str]]
    """``(kind, name)`` of each group, ordered by kind then name, each by first appearance."""
    stats: SampleStats
    errors: Strings

    def __len__(self) -> int:
        return self.stats.count

    @abstractmethod
    def chunks(self, extra: Sequence[str] = ()) -> Iterator[SampleChunk]:
        """The kept samples, in row order, a batch at a time; ``extra`` names columns of EXTRA_COLUMNS."""

    @abstractmethod
    def frame(self) -> pd.DataFrame:
        """Every kept sample as one pandas frame (READ_COLUMNS, categorical strings).

        Gigabytes at soak scale: the figures never need it.
        """


# --- checking and counting the shards --------------------------------------------------

@dataclass
class _Kept:
    """What is counted of the rows kept: per (kind code, name code) rows and successes, first and last t."""

    pairs: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    count: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    out_of_span: int = 0
    wild_low: int | None = None
    wild_high: int | None = None

    def add_times(self, t: np.ndarray, low: int | None = None, high: int | None = None) -> None:
        """Count kept rows sent at ``t`` (``low`` and ``high``: its min and max, when known)."""
        if len(t):
            self.count += len(t)
            if low is None or high is None:
                low, high = int(t.min()), int(t.max())
            self.first_ns = low if self.first_ns is None else min(self.first_ns, low)
            self.last_ns = high if self.last_ns is None else max(self.last_ns, high)

    def add_wild(self, t: np.ndarray) -> None:
        if len(t):
            self.out_of_span += len(t)
            low, high = int(t.min()), int(t.max())
            self.wild_low = low if self.wild_low is None else min(self.wild_low, low)
            self.wild_high = high if self.wild_high is None else max(self.wild_high, high)


def _pair_counts(dense: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and successes per dense (kind code * names + name code) pair code."""
    if not len(dense):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    size = int(dense.max()) + 1
    return np.bincount(dense, minlength=size), np.bincount(dense[ok], minlength=size)


def _add_counts(pairs: dict[tuple[int, int], list[int]], rows: np.ndarray, good: np.ndarray, n_names: int) -> None:
    """Add rows and successes per dense pair code to ``pairs``, keyed (kind code, name code)."""
    for key in np.flatnonzero(rows):
        mine = pairs.setdefault((int(key) // n_names, int(key) % n_names), [0, 0])
        mine[0] += int(rows[key])
        mine[1] += int(good[key])


@dataclass
class ShardScan:
    """What one read of every shard found (``scan_shards``)."""

    usable: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """``"<shard>: why"`` for each skipped shard."""
    rows_by_shard: dict[str, int] = field(default_factory=dict)
    kinds: Strings = field(default_factory=Strings)
    names: Strings = field(default_factory=Strings)
    errors: Strings = field(default_factory=Strings)
    read: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    """Rows and successes per (kind code, name code), every row of the usable shards."""
    unknown_rows: int = 0
    broken_rows: int = 0
    valid_rows: int = 0
    kept: _Kept = field(default_factory=_Kept)
    """The rows kept, when the span was known before the read."""
    valid_t: np.ndarray | None = None
    """``t_ns`` of every valid row, when the span must come from the samples themselves."""

    @property
    def total_rows(self) -> int:
        return sum(self.rows_by_shard.values())

    def unknown_kinds(self) -> list[str]:
        return sorted(set(self.kinds.values) - set(KINDS))

    def read_counts(self) -> pd.DataFrame:
        """Rows and failures per (kind, name) as read, before any row was dropped."""
        keys = sorted(self.read)
        return pd.DataFrame({
            "kind": pd.Series([self.kinds.values[k] for k, _ in keys], dtype=str),
            "name": pd.Series([self.names.values[n] for _, n in keys], dtype=str),
            "count": pd.Series([self.read[key][0] for key in keys], dtype="int64"),
            "failures": pd.Series([self.read[key][0] - self.read[key][1] for key in keys], dtype="int64"),
        })


def _valid(kinds: Strings, kind: np.ndarray, latency: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unknown kind, successful with a negative or non-finite latency) masks."""
    known = np.array([k in KINDS for k in kinds.values], dtype=bool)
    unknown = ~known[kind]
    with np.errstate(invalid="ignore"):
        broken = ok & ~(np.isfinite(latency) & (latency >= 0))
    return unknown, broken


class _Pending:
    """Parts of a streamed shard, gathered until they hold ``CHUNK_ROWS`` rows."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.rows = 0

    def add(self, parts: list[Part]) -> None:
        self.parts.extend(parts)
        self.rows += sum(len(p["t_ns"]) for p in parts)

    @property
    def full(self) -> bool:
        return self.rows >= CHUNK_ROWS

    def take(self) -> list[Part]:
        parts, self.parts, self.rows = self.parts, [], 0
        return parts


def _parts(groups: Iterator[GroupRead], columns: Sequence[str],
           on_read: Callable[[ShardRead], bool]) -> Iterator[list[Part]]:
    """The rows of the shards ``on_read`` accepts, about ``CHUNK_ROWS`` at a time."""
    for group in groups:
        usable = [on_read(read) for read in group.reads]
        if group.streamed is not None and all(usable):
            pending = _Pending()
            try:
                for part in stream_parts(group.streamed, columns):
                    pending.add([part])
                    if pending.full:
                        yield pending.take()
            except (ShardProblem, pa.ArrowException, ValueError) as exc:
                raise ReportInputError(group.streamed, f"changed while the report was read ({exc})") from None
            if pending.rows:
                yield pending.take()
        elif group.part is not None:
            yield [group.part]


@dataclass
class _Tally:
    """What the first read counts of the rows: as read, valid, kept."""

    read: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    unknown_rows: int = 0
    broken_rows: int = 0
    valid_rows: int = 0
    kept: _Kept = field(default_factory=_Kept)
    valid_t: list[np.ndarray] = field(default_factory=list)

    def add(self, part: dict[str, np.ndarray], kinds: Strings, n_names: int,
            span: tuple[int, int] | None) -> np.ndarray | None:
        """Count one part; returns the mask of the rows kept, None when all are (or without ``span``).

        Masks that would keep every row (as in all but a broken or clock-jumped
        run) are never built: at a soak's scale each pass over the rows counts.
        """
        t, latency, ok, kind, name = (part[c] for c in ("t_ns", "latency_us", "ok", "kind", "name"))
        if not len(t):
            return None
        dense = kind.astype(np.int64) * n_names + name
        counts = _pair_counts(dense, ok)
        _add_counts(self.read, *counts, n_names)
        known = np.array([k in KINDS for k in kinds.values], dtype=bool)
        unknown = None if known.all() else ~known[kind]
        with np.errstate(invalid="ignore"):
            usable = bool(np.isfinite(latency).all()) and float(latency.min()) >= 0
            broken = None if usable else ok & ~(np.isfinite(latency) & (latency >= 0))
        invalid = unknown if broken is None else broken if unknown is None else unknown | broken
        if invalid is not None:
            self.unknown_rows += int(unknown.sum()) if unknown is not None else 0
            self.broken_rows += int(broken.sum()) if broken is not None else 0
        valid = None if invalid is None else ~invalid
        self.valid_rows += len(t) if valid is None else int(valid.sum())
        if span is None:
            self.valid_t.append(t if valid is None else t[valid])
            return None
        t_low, t_high = int(t.min()), int(t.max())
        inside = None if span[0] <= t_low and t_high <= span[1] else (t >= span[0]) & (t <= span[1])
        if valid is None and inside is None:
            _add_counts(self.kept.pairs, *counts, n_names)
            self.kept.add_times(t, t_low, t_high)
            return None
        keep = inside if valid is None else valid if inside is None else valid & inside
        _add_counts(self.kept.pairs, *_pair_counts(dense[keep], ok[keep]), n_names)
        self.kept.add_times(t[keep])
        if inside is not None:
            self.kept.add_wild(t[~inside] if valid is None else t[valid & ~inside])
        return keep


Sink = Callable[[dict[str, np.ndarray], Sequence[str], Sequence[str]], None]
"""Given the kept rows of each part of the first read (with ``bytes``, ``expected``, ``error``),
and the kind and name strings their codes stand for."""


def scan_shards(shards: Sequence[Path], span: tuple[int, int] | None, *,
                progress: ProgressCallback | None = None, sink: Sink | None = None) -> ShardScan:
    """Check and count every shard.

    ``span`` (inclusive ``t_ns`` bounds) when the run's span is known without the
    samples: rows outside it are counted, not kept. Without it every valid
    row's ``t_ns`` is kept in ``valid_t`` for the caller to find the span.
    With a ``span``, ``sink`` gets the rows kept, part by part, in the same read.
    """
    if span is None:
        sink = None
    scan = ShardScan()
    tally = _Tally()
    done = 0

    def on_read(read: ShardRead) -> bool:
        nonlocal done
        done += 1
        if read.problem is not None:
            scan.skipped.append(read.path.name)
            scan.problems.append(f"{read.path.name}: {read.problem}")
        else:
            scan.usable.append(read.path)
            scan.rows_by_shard[read.path.name] = read.rows
        if progress is not None:
            progress(done, len(shards), read.path.name)
        return read.problem is None

    columns = (*BASE_COLUMNS, *EXTRA_COLUMNS) if sink is not None else BASE_COLUMNS
    reads = read_groups(shards, columns, check=True)
    for batches in _parts(reads, columns, on_read):
        part = to_columns(batches, scan.kinds, scan.names, scan.errors, null_error=NO_ERROR_MESSAGE)
        keep = tally.add(part, scan.kinds, len(scan.names), span)
        if sink is not None:
            kept = part if keep is None or keep.all() else {k: v[keep] for k, v in part.items()}
            sink(kept, scan.kinds.values, scan.names.values)
    pa.default_memory_pool().release_unused()  # the read's buffers, cached by Arrow's allocator
    scan.read = tally.read
    scan.unknown_rows, scan.broken_rows, scan.valid_rows = tally.unknown_rows, tally.broken_rows, tally.valid_rows
    scan.kept = tally.kept
    if span is None:
        scan.valid_t = np.concatenate(tally.valid_t) if tally.valid_t else np.empty(0, dtype=np.int64)
    return scan


def _checked(read: ShardRead) -> bool:
    """A second read of a checked shard: it must read as it did."""
    if read.problem is not None:
        raise ReportInputError(read.path, f"changed while the report was read ({read.problem})")
    return True


def count_kept(scan: ShardScan, span: tuple[int, int]) -> _Kept:
    """Count the rows kept inside ``span`` with a second read (the span came from the samples)."""
    tally = _Tally()
    reads = read_groups(scan.usable, BASE_COLUMNS, check=False)
    for batches in _parts(reads, BASE_COLUMNS, _checked):
        try:
            part = to_columns(batches, scan.kinds, scan.names, frozen=True)
        except ShardProblem as exc:
            raise ReportInputError(scan.usable[0].parent,
                                   f"a shard changed while the report was read ({exc})") from None
        tally.add(part, scan.kinds, len(scan.names), span)
    return tally.kept


# --- reading the kept samples ---------------------------------------------------------------

class ShardSamples(SampleSource):
    """The kept samples of a cell's usable shards, read from disk on each pass."""

    def __init__(self, scan: ShardScan, span: tuple[int, int], kept: _Kept) -> None:
        self.shards = list(scan.usable)
        self.kinds = scan.kinds
        self.names = scan.names
        self.span = span
        self.errors = scan.errors
        self.out_of_span = kept.out_of_span
        # Rows are dropped only when some row is invalid or outside the span.
        self.filtered = bool(scan.unknown_rows or scan.broken_rows or kept.out_of_span)
        keys = sorted(k for k, (rows, _) in kept.pairs.items() if rows)
        self.pairs = keys
        """(kind code, name code) of each group."""
        self.groups = [(self.kinds.values[k], self.names.values[n]) for k, n in keys]
        self._lut = np.full(max(1, len(self.kinds) * len(self.names)), -1, dtype=np.int32)
        for gid, (k, n) in enumerate(keys):
            self._lut[k * len(self.names) + n] = gid
        self.stats = SampleStats(
            count=kept.count, first_ns=kept.first_ns or 0, last_ns=kept.last_ns or 0,
            group_rows=np.array([kept.pairs[k][0] for k in keys], dtype=np.int64),
            group_ok=np.array([kept.pairs[k][1] for k in keys], dtype=np.int64),
        )

    def chunks(self, extra: Sequence[str] = ()) -> Iterator[SampleChunk]:
        columns = [*BASE_COLUMNS, *(c for c in EXTRA_COLUMNS if c in extra)]
        reads = read_groups(self.shards, columns, check=False)
        for batches in _parts(reads, columns, _checked):
            try:
                part = to_columns(batches, self.kinds, self.names, self.errors, frozen=True,
                                  null_error=NO_ERROR_MESSAGE)
            except ShardProblem as exc:
                raise ReportInputError(self.shards[0].parent,
                                       f"a shard changed while the report was read ({exc})") from None
            yield self._chunk(part)
        pa.default_memory_pool().release_unused()

    def _chunk(self, part: dict[str, np.ndarray]) -> SampleChunk:
        t, latency, ok, kind, name = (part[c] for c in ("t_ns", "latency_us", "ok", "kind", "name"))
        group = self._lut[kind.astype(np.int64) * len(self.names) + name]
        keep = None
        if self.filtered:
            unknown, broken = _valid(self.kinds, kind, latency, ok)
            keep = ~(unknown | broken) & (t >= self.span[0]) & (t <= self.span[1])
            if keep.all():
                keep = None

        def kept(values: np.ndarray) -> np.ndarray:
            return values if keep is None else values[keep]

        def optional(name: str) -> np.ndarray | None:
            return kept(part[name]) if name in part else None

        return SampleChunk(t_ns=kept(t), latency_us=kept(latency), ok=kept(ok), group=kept(group),
                           bytes=optional("bytes"), expected=optional("expected"), error=optional("error"))

    def frame(self) -> pd.DataFrame:
        tables = []
        for shard in self.shards:
            table = pq.read_table(shard, columns=list(READ_COLUMNS))
            tables.append(table.select(list(READ_COLUMNS)).cast(TARGET))
        table = pa.concat_tables(tables)
        del tables
        samples = table.to_pandas(strings_to_categorical=True, split_blocks=True, self_destruct=True)
        del table
        for col in STRING_COLUMNS:
            if not isinstance(samples[col].dtype, pd.CategoricalDtype):
                samples[col] = samples[col].astype("category")
        if not self.filtered:
            return samples
        latency = samples["latency_us"].to_numpy()
        ok = samples["ok"].to_numpy()
        t = samples["t_ns"].to_numpy()
        with np.errstate(invalid="ignore"):
            keep = (samples["kind"].isin(KINDS).to_numpy() & ~(ok & ~(np.isfinite(latency) & (latency >= 0)))
                    & (t >= self.span[0]) & (t <= self.span[1]))
        samples = samples.loc[keep].reset_index(drop=True)
        for col in ("kind", "name"):
            samples[col] = samples[col].cat.remove_unused_categories()
        return samples


class FrameSamples(SampleSource):
    """Samples already in a pandas frame (READ_COLUMNS), taken as they are."""

    def __init__(self, samples: pd.DataFrame) -> None:
        self._frame = samples
        kinds = _categories(samples["kind"])
        names = _categories(samples["name"])
        pairs = pd.DataFrame({"k": kinds[1], "n": names[1], "ok": samples["ok"].to_numpy(dtype=bool)})
        table = pairs.groupby(["k", "n"], sort=True)["ok"].agg(["size", "sum"])
        keys = [(int(k), int(n)) for k, n in table.index]
        self.groups = [(kinds[0][k], names[0][n]) for k, n in keys]
        lut = np.full(max(1, len(kinds[0]) * len(names[0])), -1, dtype=np.int32)
        for gid, (k, n) in enumerate(keys):
            lut[k * len(names[0]) + n] = gid
        self._group = lut[kinds[1] * len(names[0]) + names[1]]
        t = samples["t_ns"].to_numpy(dtype=np.int64)
        self.errors = Strings()
        self.stats = SampleStats(
            count=len(samples), first_ns=int(t.min()) if len(t) else 0, last_ns=int(t.max()) if len(t) else 0,
            group_rows=table["size"].to_numpy(dtype=np.int64), group_ok=table["sum"].to_numpy(dtype=np.int64),
        )

    def chunks(self, extra: Sequence[str] = ()) -> Iterator[SampleChunk]:
        s = self._frame
        if not len(s):
            return
        chunk = SampleChunk(t_ns=s["t_ns"].to_numpy(dtype=np.int64), latency_us=s["latency_us"].to_numpy(np.float64),
                            ok=s["ok"].to_numpy(dtype=bool), group=self._group)
        if "bytes" in extra:
            chunk.bytes = s["bytes"].to_numpy(dtype=np.int64)
        if "expected" in extra:
            chunk.expected = s["expected"].to_numpy(dtype=np.int64)
        if "error" in extra:
            texts = s["error"].astype(object).where(s["error"].notna(), NO_ERROR_MESSAGE)
            chunk.error = np.array([self.errors.add(str(x)) for x in texts], dtype=np.int32)
        yield chunk

    def frame(self) -> pd.DataFrame:
        return self._frame


def _categories(column: pd.Series) -> tuple[list[str], np.ndarray]:
    """(strings in category order, code of each row) of a string column."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [str(c) for c in column.cat.categories], column.cat.codes.to_numpy(dtype=np.int64)
    codes, uniques = pd.factorize(column.astype(str), sort=False)
    return [str(u) for u in uniques], codes.astype(np.int64)
