"""Reading sample shards fast: in worker threads, a group of consecutive shards at a time.

A soak's recorder writes a shard every 2 s (``--flush-interval``): 7,000 files
of some 14,000 rows for four hours. Opening a Parquet file costs about as much
as decoding its rows, so two worker threads read the shards (pyarrow decodes
without the GIL), each batch normalized to one Arrow schema (numbers as
int64/float64, strings as int32 dictionaries), and turn the batches of a group
of consecutive shards (about ``GROUP_BYTES`` of Parquet, a million rows) into
one set of numpy arrays: numpy's cost per call, not per row, would dominate
on parts of a few thousand rows.

A shard is checked (``check=True``) while it is read: the schema, nulls in
columns that must have none, values that do not fit the schema, timestamps
that are not epoch nanoseconds. A shard with a problem is reported as such,
whole; none of its rows reach the figures.
"""
from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sioharness.core.run_record import MIN_EPOCH_NS
from sioharness.core.schema import SAMPLE_COLUMNS, SAMPLE_SCHEMA

# ``user`` is the only sample column no figure needs; skipping it saves 8 bytes a row.
READ_COLUMNS: tuple[str, ...] = tuple(c for c in SAMPLE_COLUMNS if c != "user")
STRING_COLUMNS = ("kind", "name", "worker", "error")
# Rows per batch read: bounds what one read holds whatever a shard's size.
BATCH_ROWS = 1 << 20
# Rows a streamed shard's batches are gathered into before the figures see them.
CHUNK_ROWS = 1 << 20
# Threads reading shards; each reads a group of consecutive shards of about GROUP_BYTES
# of Parquet (some 1,000,000 rows) at a time, at most one group ahead of the figures.
READ_THREADS = 2
GROUP_BYTES = 16 << 20
# A shard larger than this on disk is checked by a read of its own, then streamed
# batch by batch, instead of being held whole until it is checked.
HOLD_BYTES = 64 << 20

TARGET = pa.schema([SAMPLE_SCHEMA.field(c) for c in READ_COLUMNS])
NOT_NULL = tuple(f.name for f in TARGET if not f.nullable)
NUMERIC = ("t_ns", "latency_us", "bytes", "expected")
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())


class ShardProblem(Exception):
    """One shard cannot be used; the message says why."""


class Strings:
    """Strings given codes in the order they are first seen."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._codes: dict[str, int] = {}
        self._luts: dict[tuple[tuple[str | None, ...], str | None], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.values)

    def add(self, value: str) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code

    def codes(self, words: tuple[str | None, ...], indices: np.ndarray, *, null_as: str | None = None,
              frozen: bool = False) -> np.ndarray:
        """The code of each row of a dictionary column, ``words[indices]``; a None word (a null)
        reads as ``null_as``.

        New strings get codes in the order of their first row; with ``frozen`` a new
        string is an error (the shard changed since it was checked).
        """
        key = (words, null_as)
        lut = self._luts.get(key)
        if lut is None:
            named = [null_as if w is None else w for w in words]
            new = {i for i, word in enumerate(named) if word is not None and word not in self._codes}
            if new:
                # Only values some row uses count (a pandas categorical's dictionary holds its unused
                # categories too), in the order of their first row.
                order = [int(i) for i in pd.unique(indices) if int(i) in new]
                if order and frozen:
                    raise ShardProblem(f"holds {named[order[0]]!r}, not seen when the shard was checked "
                                       "(file changed?)")
                for i in order:
                    self.add(str(named[i]))
            lut = np.array([self._codes.get(w, -1) if w is not None else -1 for w in named], dtype=np.int32)
            if (lut >= 0).all():
                self._luts[key] = lut
        return lut[indices]


def _compatible(actual: pa.DataType, wanted: pa.DataType, nullable: bool) -> bool:
    if pa.types.is_null(actual):
        # An all-null column (e.g. ``error`` in a shard without failures) fits any nullable field.
        return nullable
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_string(wanted):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or pa.types.is_string_view(actual)
    if pa.types.is_integer(wanted):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(wanted):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    return actual == wanted


def open_shard(path: Path) -> pq.ParquetFile:
    """The shard, its columns checked against the sample schema."""
    if not path.is_file():  # a FIFO would block the reader, a device would never end
        raise ShardProblem("not a regular file")
    try:
        parquet = pq.ParquetFile(path, read_dictionary=list(STRING_COLUMNS))
    except KeyError as exc:  # a string column the reader asks for as a dictionary is not there
        key = exc.args[0] if exc.args else exc
        absent = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        raise ShardProblem(f"missing column {absent}") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ShardProblem(f"corrupt or truncated Parquet file ({exc})") from None
    schema = parquet.schema_arrow
    twice = sorted({name for name in schema.names if schema.names.count(name) > 1})
    if twice:
        parquet.close()
        raise ShardProblem(f"column(s) {', '.join(twice)} appear more than once")
    missing = [c for c in SAMPLE_COLUMNS if c not in schema.names]
    wrong = [f"{f.name} is {schema.field(f.name).type}, expected {f.type}" for f in SAMPLE_SCHEMA
             if f.name in schema.names and not _compatible(schema.field(f.name).type, f.type, f.nullable)]
    if missing or wrong:
        parquet.close()
        if missing:
            raise ShardProblem(f"missing column(s) {', '.join(missing)} (found: {', '.join(schema.names)})")
        raise ShardProblem("wrong column type(s): " + "; ".join(wrong))
    return parquet


def _batches(parquet: pq.ParquetFile, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    try:
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(columns), use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ShardProblem(f"corrupt data, cannot be read ({exc})") from None


def _normal(array: pa.Array, name: str) -> pa.Array:
    """A column in the one schema every batch is turned into (raises ArrowInvalid when a value does not fit)."""
    if name in STRING_COLUMNS:
        if array.type == _DICTIONARY:
            return array
        if pa.types.is_dictionary(array.type):
            return array.cast(_DICTIONARY)
        if pa.types.is_null(array.type):
            return pa.DictionaryArray.from_arrays(pa.nulls(len(array), pa.int32()), pa.array([], pa.string()))
        return pc.dictionary_encode(array.cast(pa.string())).cast(_DICTIONARY)
    wanted = TARGET.field(name).type
    return array if array.type == wanted else array.cast(wanted)


def _unread_nulls(parquet: pq.ParquetFile, columns: Sequence[str]) -> tuple[Counter[str], list[str]]:
    """Nulls of not-null columns the figures do not read (from the row groups' statistics), and
    those of them to read all the same (no statistics, or a type the cast must check)."""
    nulls: Counter[str] = Counter()
    must_read: list[str] = []
    metadata = parquet.metadata
    schema = parquet.schema_arrow
    for name in columns:
        if name in NUMERIC and schema.field(name).type != TARGET.field(name).type:
            must_read.append(name)
            continue
        index = schema.get_field_index(name)
        for g in range(metadata.num_row_groups):
            stats = metadata.row_group(g).column(index).statistics
            if stats is None or not stats.has_null_count:
                must_read.append(name)
                break
            nulls[name] += stats.null_count
    for name in must_read:
        nulls.pop(name, None)
    return nulls, must_read


Part = dict[str, Any]
"""Rows as numpy columns; a string column ``c`` as ``c``, indices into ``c:words``, its words
(a tuple; a null reads as a last word, None)."""


def _part(columns: Sequence[str], batches: Sequence[pa.RecordBatch]) -> Part:
    """Normalized batches (of consecutive shards) as one set of numpy columns."""
    table = pa.Table.from_batches(batches).unify_dictionaries() if len(batches) > 1 else \
        pa.Table.from_batches(batches)
    part: Part = {}
    for name in columns:
        column = table.column(name)
        if name in STRING_COLUMNS:
            words = column.chunk(0).dictionary.to_pylist()
            indices = pa.chunked_array([chunk.indices for chunk in column.chunks], type=pa.int32())
            if indices.null_count:
                indices = pc.fill_null(indices, len(words))
                words.append(None)
            part[name] = indices.to_numpy()
            part[name + ":words"] = tuple(words)
        elif name == "ok":
            part[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)
        else:
            part[name] = column.to_numpy()
    return part


@dataclass
class ShardRead:
    """One shard as read: its rows, its batches (normalized), or why it cannot be used."""

    path: Path
    rows: int = 0
    batches: list[pa.RecordBatch] = field(default_factory=list)
    problem: str | None = None


def read_shard(path: Path, columns: Sequence[str], *, check: bool, hold: bool = True) -> ShardRead:
    """Read (and with ``check``, check) one shard; with ``hold`` False only check it."""
    out = ShardRead(path)
    try:
        parquet = open_shard(path)
        try:
            others = [c for c in READ_COLUMNS if c not in columns and c in NOT_NULL] if check else []
            nulls, must_read = _unread_nulls(parquet, others) if check else (Counter(), [])
            cast_error: Exception | None = None
            low: int | None = None
            for batch in _batches(parquet, [*columns, *must_read]):
                out.rows += batch.num_rows
                if check:
                    for name in (*columns, *must_read):
                        if name in NOT_NULL:
                            nulls[name] += batch.column(name).null_count
                if +nulls or cast_error is not None or not batch.num_rows:
                    continue
                try:
                    normal = [_normal(batch.column(name), name) for name in (*columns, *must_read)]
                except (pa.ArrowException, ValueError) as exc:
                    cast_error = exc
                    continue
                if check:
                    t_low = pc.min(normal[list(columns).index("t_ns")]).as_py()
                    low = t_low if low is None else min(low, t_low)
                if hold:
                    out.batches.append(pa.RecordBatch.from_arrays(normal[:len(columns)], names=list(columns)))
        finally:
            parquet.close()
        if +nulls:
            shown = ", ".join(f"{name} ({nulls[name]})" for name in NOT_NULL if nulls[name])
            raise ShardProblem("null values in column(s) that must not be null: " + shown)
        if cast_error is not None:
            raise ShardProblem(f"values do not fit the sample schema ({cast_error})")
        if check and low is not None and low < MIN_EPOCH_NS:
            raise ShardProblem(f"t_ns = {low} is not epoch nanoseconds (seconds or milliseconds?)")
    except ShardProblem as exc:
        out.batches, out.problem = [], str(exc)
    return out


def stream_parts(path: Path, columns: Sequence[str]) -> Iterator[Part]:
    """A checked shard's batches as numpy columns, one at a time."""
    parquet = open_shard(path)
    try:
        for batch in _batches(parquet, columns):
            if batch.num_rows:
                yield _part(columns, [pa.RecordBatch.from_arrays([_normal(batch.column(c), c) for c in columns],
                                                                 names=list(columns))])
    finally:
        parquet.close()


@dataclass
class GroupRead:
    """Consecutive shards read together: each one's outcome, and the rows of those usable as one part."""

    reads: list[ShardRead]
    part: Part | None = None
    streamed: Path | None = None
    """A shard too big to hold, only checked: read it with ``stream_parts`` when its turn comes."""


def _read_group(paths: Sequence[Path], columns: Sequence[str], check: bool, hold: bool) -> GroupRead:
    if not hold and not check:  # a checked shard too big to hold: nothing to read ahead
        return GroupRead([ShardRead(paths[0])], streamed=paths[0])
    reads = [read_shard(path, columns, check=check, hold=hold) for path in paths]
    batches = [batch for read in reads for batch in read.batches]
    for read in reads:
        read.batches = []
    if not hold:
        return GroupRead(reads, streamed=paths[0] if reads[0].problem is None else None)
    return GroupRead(reads, _part(columns, batches) if batches else None)


def read_groups(paths: Sequence[Path], columns: Sequence[str], *, check: bool) -> Iterator[GroupRead]:
    """Every shard read (and checked), in groups of about ``GROUP_BYTES`` turned into one part each,
    by worker threads a few groups ahead; yielded in order.

    A shard over ``HOLD_BYTES`` forms a group of its own, only checked in the thread.
    """
    groups: list[tuple[list[Path], bool]] = []
    current: list[Path] = []
    size = 0
    for path in paths:
        bytes_ = _size(path)
        if bytes_ > HOLD_BYTES:
            if current:
                groups.append((current, True))
                current, size = [], 0
            groups.append(([path], False))
            continue
        current.append(path)
        size += bytes_
        if size >= GROUP_BYTES:
            groups.append((current, True))
            current, size = [], 0
    if current:
        groups.append((current, True))
    with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="shard-read") as pool:
        queue: deque[Future[GroupRead]] = deque()
        following = iter(groups)
        for group, hold in following:
            queue.append(pool.submit(_read_group, group, columns, check, hold))
            if len(queue) > READ_THREADS:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def to_columns(parts: list[Part], kinds: Strings, names: Strings, errors: Strings | None = None, *,
               frozen: bool = False, null_error: str | None = None) -> dict[str, np.ndarray]:
    """Parts (of consecutive shards) as one set of numpy columns; ``kind``, ``name``, ``error`` as codes."""
    registries: dict[str, tuple[Strings, str | None, bool]] = {"kind": (kinds, None, frozen),
                                                                "name": (names, None, frozen)}
    if errors is not None:
        registries["error"] = (errors, null_error, False)
    out: dict[str, np.ndarray] = {}
    for name in parts[0]:
        if name in registries:
            registry, null_as, fixed = registries[name]
            columns = [registry.codes(p[name + ":words"], p[name], null_as=null_as, frozen=fixed) for p in parts]
        elif name in STRING_COLUMNS or name.endswith(":words"):
            continue
        else:
            columns = [p[name] for p in parts]
        out[name] = columns[0] if len(columns) == 1 else np.concatenate(columns)
    return out
