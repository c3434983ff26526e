"""Samples on Locust's own channel: the messages between workers and the master.

With ``--samples-via-master`` each worker sends the rows of every flush to
the master as one Locust custom message (:data:`SHARD_MESSAGE`); the master
writes them as a shard in its results folder and answers with
:data:`ACK_MESSAGE`. The rows travel as a zstd-compressed Arrow IPC stream
(about 20 bytes a sample), inside Locust's msgpack frame. The master
decompresses it only up to what the declared row count allows
(:func:`max_decoded_bytes`): a small message cannot make it hold gigabytes.

A shard message (a dict; ``rows`` = 0 and no ``arrow`` for a status message
such as the first one of a test or the final one)::

    v         2 (this format)
    worker    "host:pid", as the samples' ``worker`` column names it
    tag       "host-pid", as the shard file names carry it
    seq       the shard's number (0: no shard in this message)
    rows      rows in ``arrow``
    arrow     a zstd frame of Arrow IPC stream bytes of SAMPLE_SCHEMA rows
    taken     samples the worker's recorder has taken so far
    kept      {"rows": n, "shards": n, "names": [...]}: shards the worker wrote on its own disk
    dropped   samples the worker gave up (its disk failed too)
    final     True on the worker's last message of a test (its test stop)
    t_ns      when the worker sent it (wall clock)
    flush_s   the worker's flush interval (what a lost worker loses at most)
    files     optional {"fanout-<tag>.json": {...}, "targets-<tag>.json": {...}}

An ack: ``{"seq": n, "ok": bool, "error": str | None}``.

Everything here is pure (no Locust, no network), so it is tested alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from sioharness.core.schema import SAMPLE_SCHEMA

#: worker -> master: a shard's rows (or a status message)
SHARD_MESSAGE = "loadtests_samples"
#: master -> worker: shard ``seq`` was written (or refused, with the reason)
ACK_MESSAGE = "loadtests_samples_ack"
WIRE_VERSION = 2
#: compression of the whole Arrow stream (zstd: about 20 bytes a sample, cheaper to send than to write Parquet)
COMPRESSION = "zstd"
#: decoded bytes a message may hold: this much, plus ROW_BYTES per declared row, at most MAX_DECODED_BYTES
BASE_DECODED_BYTES = 1 << 20
ROW_BYTES = 1024
MAX_DECODED_BYTES = 256 << 20
#: shard names a worker reports as kept on its own disk, at most (the counts are always complete)
MAX_KEPT_NAMES = 50

_TAG = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,120}$")
_SIDE_FILE = re.compile(r"^(fanout|targets)-[A-Za-z0-9_.-]{1,160}\.json$")


class WireError(ValueError):
    """A message that does not follow this format (the master refuses it, and says why)."""


def encode_rows(table: pa.Table) -> bytes:
    """``table`` (SAMPLE_SCHEMA) as a zstd-compressed Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, COMPRESSION) as compressed, \
            ipc.new_stream(compressed, SAMPLE_SCHEMA) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def max_decoded_bytes(rows: int) -> int:
    """The most a message of ``rows`` rows may decompress to."""
    return min(MAX_DECODED_BYTES, BASE_DECODED_BYTES + rows * ROW_BYTES)


def decode_rows(payload: bytes, rows: int) -> pa.Table:
    """The table ``payload`` holds; WireError unless it is SAMPLE_SCHEMA with exactly ``rows`` rows.

    Decompressed in pieces, and abandoned as soon as it grows past
    :func:`max_decoded_bytes`: the size is checked before anything is
    decoded, not after.
    """
    limit = max_decoded_bytes(rows)
    try:
        with pa.CompressedInputStream(pa.BufferReader(payload), COMPRESSION) as stream:
            pieces, size = [], 0
            while piece := stream.read(min(1 << 20, limit + 1 - size)):
                pieces.append(piece)
                size += len(piece)
                if size > limit:
                    raise WireError(f"the rows decompress to more than {limit:,} bytes, the most {rows} row(s) "
                                    "may take: refused unread")
        table = ipc.open_stream(pa.py_buffer(b"".join(pieces))).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise WireError(f"not a zstd-compressed Arrow IPC stream: {exc}") from None
    if not table.schema.equals(SAMPLE_SCHEMA):
        found = table.schema.to_string(show_schema_metadata=False)
        raise WireError(f"rows are not in the sample schema: {found!r:.200}")
    if table.num_rows != rows:
        raise WireError(f"the message says {rows} rows, its Arrow stream holds {table.num_rows}")
    return table


def is_safe_tag(tag: str) -> bool:
    """True when ``tag`` can go into a file name as it is (no separator, no leading dash)."""
    return bool(_TAG.match(tag))


def is_side_file(name: str) -> bool:
    """True for the small JSON files a worker may send along (``fanout-*.json``, ``targets-*.json``)."""
    return bool(_SIDE_FILE.match(name))


@dataclass(frozen=True)
class ShardMessage:
    """One worker -> master message, checked."""

    worker: str
    tag: str
    seq: int
    rows: int
    arrow: bytes
    taken: int
    kept_rows: int = 0
    kept_shards: int = 0
    kept_names: tuple[str, ...] = ()
    dropped: int = 0
    final: bool = False
    t_ns: int = 0
    flush_s: float = 0.0
    files: dict[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        """The ``data`` of the Locust message (msgpack-able)."""
        data: dict[str, Any] = {
            "v": WIRE_VERSION, "worker": self.worker, "tag": self.tag, "seq": self.seq, "rows": self.rows,
            "arrow": self.arrow, "taken": self.taken,
            "kept": {"rows": self.kept_rows, "shards": self.kept_shards, "names": list(self.kept_names)},
            "dropped": self.dropped, "final": self.final, "t_ns": self.t_ns, "flush_s": self.flush_s,
        }
        if self.files:
            data["files"] = self.files
        return data

    @classmethod
    def from_data(cls, data: Any) -> ShardMessage:
        """Check a received ``data``; WireError naming the first thing wrong."""
        if not isinstance(data, dict):
            raise WireError(f"expected a dict, got {type(data).__name__}")
        if data.get("v") != WIRE_VERSION:
            raise WireError(f"unknown format version {data.get('v')!r:.20} (this master speaks {WIRE_VERSION})")

        def count(key: str, source: dict[str, Any] = data) -> int:
            value = source.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise WireError(f"'{key}' must be an integer >= 0, got {value!r:.40}")
            return value

        worker, tag = data.get("worker"), data.get("tag")
        if not isinstance(worker, str) or not worker or len(worker) > 300:
            raise WireError(f"'worker' must be a short string, got {worker!r:.60}")
        if not isinstance(tag, str) or not is_safe_tag(tag):
            raise WireError(f"'tag' must be a file-name-safe string, got {tag!r:.60}")
        arrow = data.get("arrow", b"")
        if not isinstance(arrow, bytes):
            raise WireError(f"'arrow' must be bytes, got {type(arrow).__name__}")
        seq, rows = count("seq"), count("rows")
        if (rows > 0) != (seq > 0) or (rows > 0) != bool(arrow):
            raise WireError(f"a shard needs seq > 0, rows > 0 and Arrow bytes together (seq {seq}, rows {rows}, "
                            f"{len(arrow)} bytes)")
        kept = data.get("kept") or {}
        if not isinstance(kept, dict):
            raise WireError("'kept' must be a dict")
        names = kept.get("names") or []
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise WireError("'kept.names' must be a list of strings")
        files = data.get("files") or {}
        if not isinstance(files, dict) or not all(isinstance(k, str) and is_side_file(k) for k in files):
            raise WireError(f"'files' may hold fanout-*.json and targets-*.json only, got {sorted(files)!r:.120}")
        t_ns, flush_s = data.get("t_ns", 0), data.get("flush_s", 0.0)
        if not isinstance(t_ns, int) or isinstance(t_ns, bool):
            raise WireError(f"'t_ns' must be an integer, got {t_ns!r:.40}")
        if not isinstance(flush_s, (int, float)) or isinstance(flush_s, bool) or not flush_s >= 0:
            raise WireError(f"'flush_s' must be a number >= 0, got {flush_s!r:.40}")
        return cls(worker=worker, tag=tag, seq=seq, rows=rows, arrow=arrow, taken=count("taken"),
                   kept_rows=count("rows", kept), kept_shards=count("shards", kept),
                   kept_names=tuple(names[:MAX_KEPT_NAMES]), dropped=count("dropped"),
                   final=bool(data.get("final")), t_ns=t_ns, flush_s=float(flush_s), files=dict(files))


def ack_data(seq: int, error: str | None = None) -> dict[str, Any]:
    """The ``data`` of an ack: shard ``seq`` written (``error`` None) or refused."""
    return {"seq": seq, "ok": error is None, "error": error}
