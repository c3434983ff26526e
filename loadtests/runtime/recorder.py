"""Every sample to Parquet: a Locust ``request`` listener writing shards.

Each Locust ``request`` event becomes one row of
:data:`sioharness.core.schema.SAMPLE_SCHEMA`, so the recorder's row count equals
Locust's request count for the run. Rows are buffered in memory and written
as ``samples-<host>-<pid>-<seq>.parquet`` shards in the results folder: on a
timer, at test stop and at quit, and by the watchdog before a forced exit.
Each shard is written under a temporary name and renamed, so a folder only
ever holds whole shards; each process (Locust worker) writes its own.

Nothing is lost in silence. A shard that cannot be written (a full disk, a
folder gone) keeps its rows in memory, up to :attr:`Recorder.max_pending`,
and every later flush tries them again; rows beyond the bound are dropped
and counted. After every flush ``recorder-<host>-<pid>.json`` says how many
samples were taken, written, pending and dropped, with the last errors, and
the reports compare it with what they read.

With ``--samples-via-master`` a :class:`ShardRelay` (``loadtests.runtime.relay_sender``)
takes the rows of each flush instead and sends them to the Locust master;
the shards it cannot send are written here as usual.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from sioharness.core.files import atomic_path, write_json
from sioharness.core.schema import KINDS, SAMPLE_SCHEMA

logger = logging.getLogger(__name__)

# request_type of events fired by code that does not pass our context, e.g.
# Locust's own SocketIOUser ("WS" connect, "WSC" call, "WSR" received, "WSE"
# emit); anything else is an ack-like round trip.
_KIND_BY_REQUEST_TYPE = {"WS": "connect", "WSC": "ack", "WSE": "ack", "WSS": "ack", "WSR": "push"}

try:  # a real lock even under monkey-patching: the watchdog flushes from an OS thread
    from gevent.monkey import get_original

    _allocate_lock = get_original("_thread", "allocate_lock")
    _get_ident = get_original("_thread", "get_ident")
except ImportError:  # pragma: no cover - gevent is a dependency
    from _thread import allocate_lock as _allocate_lock
    from _thread import get_ident as _get_ident


#: a results folder with less free space than this is refused at the start
MIN_FREE_BYTES = 64 * 2**20
#: errors kept in the accounting file
MAX_ERRORS_KEPT = 5
#: below this much free space a flush says so (once in a while), before writes start to fail
LOW_FREE_BYTES = 16 * 2**20
LOW_FREE_WARN_EVERY_S = 30.0


class ResultsFolderError(OSError):
    """The results folder cannot take the run's samples (missing, not writable, nearly full)."""


def check_results_folder(path: Path, *, min_free: int = MIN_FREE_BYTES) -> None:
    """ResultsFolderError unless ``path`` is a writable folder with ``min_free`` bytes free."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
        free = shutil.disk_usage(path).free
    except OSError as exc:
        raise ResultsFolderError(f"results folder {path} is not usable: {exc.strerror or exc}") from None
    if free < min_free:
        raise ResultsFolderError(f"results folder {path} has only {free / 2**20:.1f} MiB free (at least "
                                 f"{min_free / 2**20:.0f} MiB needed, or samples would be lost mid-run)")


def worker_id() -> str:
    """This process as the ``worker`` column names it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def shard_tag() -> str:
    """This process as shard file names carry it: ``host-pid``, filename-safe."""
    host = re.sub(r"[^A-Za-z0-9_.]+", "_", socket.gethostname())
    return f"{host}-{os.getpid()}"


#: a recorder row as Arrow sees it: converted in one pass, without transposing in Python
_ROW_TYPE = pa.struct(list(SAMPLE_SCHEMA))
#: dictionary-encode the string columns only: trying it on times and latencies costs
#: about half of a shard's write, and the shards come out smaller without it
_DICTIONARY_COLUMNS = [field.name for field in SAMPLE_SCHEMA if pa.types.is_string(field.type)]


def rows_to_table(rows: list[tuple]) -> pa.Table:
    """Recorder rows (full :data:`SAMPLE_SCHEMA` tuples) as an Arrow table."""
    # Half the CPU of zip(*rows) and one array per column; a tuple of the
    # wrong size is refused all the same (ArrowInvalid).
    return pa.Table.from_struct_array(pa.array(rows, type=_ROW_TYPE))


def shard_name(tag: str, seq: int) -> str:
    """A shard's file name: ``samples-<tag>-<seq>.parquet`` (matches ``SHARD_GLOB``)."""
    return f"samples-{tag}-{seq:05d}.parquet"


class ShardRelay(Protocol):
    """Where a recorder's rows go instead of local shards (``--samples-via-master``)."""

    @property
    def active(self) -> bool: ...

    @property
    def in_flight_rows(self) -> int: ...

    def ship(self, rows: list[tuple], *, in_thread: bool, wait: bool) -> None: ...

    def accounting(self) -> dict[str, Any]: ...


class Recorder:
    """Buffers samples and writes them as Parquet shards to ``results_dir``.

    Use :meth:`on_request` as a listener of ``events.request``. Rows carry
    the fields of the event's ``context`` when the firer set them (``kind``,
    ``t_ns``, ``user``, ``expected``, ``bytes``), else values derived from the
    event itself.
    """

    def __init__(self, results_dir: str | os.PathLike[str], *, max_rows: int = 200_000,
                 max_pending: int = 2_000_000) -> None:
        self.results_dir = Path(results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        #: flush early once this many rows are buffered, to bound memory
        self.max_rows = max_rows
        #: rows kept for a retry after failed writes, at most (the rest are dropped, and counted)
        self.max_pending = max_pending
        #: rows a failed write kept for the next flush
        self._pending: list[tuple] = []
        #: rows given up after failed writes
        self.dropped = 0
        #: the last write errors, newest last
        self.errors: list[str] = []
        self._low_space_warned = 0.0
        self.worker = worker_id()
        self.tag = shard_tag()
        #: rows handed to on_request so far
        self.recorded = 0
        #: rows written to shards so far
        self.written = 0
        self.shards: list[Path] = []
        self._rows: list[tuple] = []
        self._seq = 0
        self._lock = _allocate_lock()
        self._seq_lock = _allocate_lock()
        #: set by ``--samples-via-master``: flushes on the event loop's thread go to the master
        self.relay: ShardRelay | None = None
        self._loop_thread = _get_ident()
        # The first Parquet write pays ~0.5 s of lazy initialisation; pay it
        # now, not mid-run where it would stall every user.
        pq.write_table(SAMPLE_SCHEMA.empty_table(), pa.BufferOutputStream())

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int = 0,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        """The ``events.request`` listener: one event, one row."""
        ctx = context or {}
        kind = ctx.get("kind") or _KIND_BY_REQUEST_TYPE.get(request_type) or (
            request_type if request_type in KINDS else "ack")
        latency_us = float(response_time or 0.0) * 1000.0
        t_ns = ctx.get("t_ns")
        if t_ns is None:
            t_ns = int(start_time * 1e9) if start_time else time.time_ns() - int(latency_us * 1000)
        error = None if exception is None else f"{type(exception).__name__}: {exception}"
        self._rows.append((
            int(t_ns), kind, str(name), latency_us, exception is None,
            int(ctx.get("bytes", response_length or 0)), self.worker,
            int(ctx.get("user", -1)), int(ctx.get("expected", 0)), error,
        ))
        self.recorded += 1
        if len(self._rows) >= self.max_rows:
            self.flush()

    def take(self) -> list[tuple]:
        """Hand over the buffered rows (call from the thread that records)."""
        rows, self._rows = self._rows, []
        return rows

    def flush(self, timeout: float = -1) -> Path | None:
        """Write the buffered rows as one shard; returns its path (None if empty).

        ``timeout`` bounds the wait for a write already running elsewhere
        (seconds, -1 = wait). With a relay, rows flushed on the event loop's
        thread are sent to the master instead (None returned); the watchdog's
        thread writes them here.
        """
        relay = self.relay
        if relay is not None and relay.active and _get_ident() == self._loop_thread:
            relay.ship(self.take(), in_thread=False, wait=False)
            return None
        return self.write(self.take(), timeout)

    def flush_in_thread(self) -> Path | None:
        """Like :meth:`flush`, but build and write the shard in gevent's thread
        pool, so the users keep running meanwhile (pyarrow releases the GIL)."""
        import gevent

        rows = self.take()
        if not rows:
            return None
        relay = self.relay
        if relay is not None and relay.active:
            relay.ship(rows, in_thread=True, wait=True)
            return None
        return gevent.get_hub().threadpool.apply(self.write, (rows,))

    def retarget(self, results_dir: Path, timeout: float = 5.0) -> None:
        """Finish the current folder (flush; what still cannot be written is dropped there) and record into
        ``results_dir`` from now on, with its own accounting (the web UI: one folder per test)."""
        self.flush(timeout=timeout)
        if self._pending:
            self.dropped += len(self._pending)
            self._pending = []
            self._write_accounting()
        results_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir = results_dir
        self.recorded = self.written = self.dropped = 0
        self.errors = []
        self.shards = []

    @property
    def pending(self) -> int:
        """Rows kept in memory after failed writes, waiting for the next flush."""
        return len(self._pending)

    def write(self, rows: list[tuple], timeout: float = -1) -> Path | None:
        """Write ``rows`` (and any kept from failed writes) as one shard (any thread).

        A write already running elsewhere for longer than ``timeout`` keeps
        the rows for the next flush; so does a failed write.
        """
        if not self._lock.acquire(True, timeout):
            self._keep(rows, f"another write did not finish within {timeout:g} s")
            return None
        try:
            rows, self._pending = self._pending + rows, []
            if not rows:
                return None
            self._check_free_space()
            try:
                final = self._write_shard(rows)
            except OSError as exc:
                self._keep(rows, f"{type(exc).__name__}: {exc}")
                return None
            self.written += len(rows)
            self.shards.append(final)
            return final
        finally:
            self._write_accounting()
            self._lock.release()

    def next_seq(self) -> int:
        """Take the next shard number (any thread): relayed and local shards share one sequence."""
        with self._seq_lock:
            self._seq += 1
            return self._seq

    def shard_path(self, seq: int) -> Path:
        """Where shard ``seq`` of this process is written in the results folder."""
        return self.results_dir / shard_name(self.tag, seq)

    def write_table(self, table: pa.Table, seq: int) -> Path:
        """Write ``table`` as shard ``seq`` (temporary name, then renamed); OSError when it cannot."""
        final = self.shard_path(seq)
        with atomic_path(final) as temp:
            pq.write_table(table, temp, use_dictionary=_DICTIONARY_COLUMNS)
        return final

    def _write_shard(self, rows: list[tuple]) -> Path:
        table = rows_to_table(rows)  # every row is a full SAMPLE_SCHEMA tuple
        return self.write_table(table, self.next_seq())  # a failed write leaves a gap in the numbers

    def _check_free_space(self) -> None:
        """Say so, once in a while, when the results folder is nearly full: a lost shard should not surprise."""
        try:
            free = shutil.disk_usage(self.results_dir).free
        except OSError:
            return
        now = time.monotonic()
        if free < LOW_FREE_BYTES and now - self._low_space_warned >= LOW_FREE_WARN_EVERY_S:
            self._low_space_warned = now
            logger.error("recorder: results folder %s has only %.1f MiB free: shards will fail to be written soon",
                         self.results_dir, free / 2**20)

    def _keep(self, rows: list[tuple], why: str) -> None:
        """Hold ``rows`` for a retry, up to the bound; count and log what does not fit."""
        self._pending = self._pending + rows
        over = len(self._pending) - self.max_pending
        if over > 0:
            self._pending = self._pending[over:]
            self.dropped += over
        self.errors = (self.errors + [why])[-MAX_ERRORS_KEPT:]
        logger.error("recorder: cannot write a shard to %s (%s): %d samples kept for a retry, %d dropped so far",
                     self.results_dir, why, len(self._pending), self.dropped)

    def accounting(self) -> dict[str, Any]:
        """What this process took, wrote, holds and lost (``recorder-<tag>.json``)."""
        pending = len(self._pending) + len(self._rows)
        if self.relay is not None:  # written = on this disk + acknowledged by the master
            pending += self.relay.in_flight_rows
        document: dict[str, Any] = {"worker": self.worker, "taken": self.recorded, "written": self.written,
                                    "pending": pending, "dropped": self.dropped, "errors": self.errors}
        if self.relay is not None:
            document["via_master"] = self.relay.accounting()
        return document

    @property
    def lost(self) -> int:
        """Samples taken that are not on disk (pending or dropped)."""
        return self.recorded - self.written

    def write_accounting(self) -> None:
        """Rewrite ``recorder-<tag>.json`` now (after a change the relay made).

        Skipped while a write holds the lock for more than a second: that write rewrites it when done.
        """
        if self._lock.acquire(True, 1.0):
            try:
                self._write_accounting()
            finally:
                self._lock.release()

    def _write_accounting(self) -> None:
        path = self.results_dir / f"recorder-{self.tag}.json"
        try:
            write_json(path, self.accounting(), indent=1)
        except (OSError, ValueError) as exc:
            logger.error("recorder: cannot write %s: %s", path, exc)
