"""Every sample to Parquet: a Locust ``request`` listener writing shards.

Each Locust ``request`` event becomes one row of
:data:`core.schema.SAMPLE_SCHEMA`, so the recorder's row count equals
Locust's request count for the run. Rows are buffered in memory and written
as ``samples-<host>-<pid>-<seq>.parquet`` shards in the results folder: on a
timer, at test stop and at quit, and by the watchdog before a forced exit.
Each shard is written under a temporary name and renamed, so a folder only
ever holds whole shards; each process (Locust worker) writes its own.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.files import atomic_path
from core.schema import KINDS, SAMPLE_SCHEMA

logger = logging.getLogger(__name__)

# request_type of events fired by code that does not pass our context, e.g.
# Locust's own SocketIOUser ("WS" connect, "WSC" call, "WSR" received, "WSE"
# emit); anything else is an ack-like round trip.
_KIND_BY_REQUEST_TYPE = {"WS": "connect", "WSC": "ack", "WSE": "ack", "WSS": "ack", "WSR": "push"}

try:  # a real lock even under monkey-patching: the watchdog flushes from an OS thread
    from gevent.monkey import get_original

    _allocate_lock = get_original("_thread", "allocate_lock")
except ImportError:  # pragma: no cover - gevent is a dependency
    from _thread import allocate_lock as _allocate_lock


def worker_id() -> str:
    """This process as the ``worker`` column names it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def shard_tag() -> str:
    """This process as shard file names carry it: ``host-pid``, filename-safe."""
    host = re.sub(r"[^A-Za-z0-9_.]+", "_", socket.gethostname())
    return f"{host}-{os.getpid()}"


class Recorder:
    """Buffers samples and writes them as Parquet shards to ``results_dir``.

    Use :meth:`on_request` as a listener of ``events.request``. Rows carry
    the fields of the event's ``context`` when the firer set them (``kind``,
    ``t_ns``, ``user``, ``expected``, ``bytes``), else values derived from the
    event itself.
    """

    def __init__(self, results_dir: str | os.PathLike[str], *, max_rows: int = 200_000) -> None:
        self.results_dir = Path(results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        #: flush early once this many rows are buffered, to bound memory
        self.max_rows = max_rows
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
        (seconds, -1 = wait).
        """
        return self.write(self.take(), timeout)

    def flush_in_thread(self) -> Path | None:
        """Like :meth:`flush`, but build and write the shard in gevent's thread
        pool, so the users keep running meanwhile (pyarrow releases the GIL)."""
        import gevent

        rows = self.take()
        if not rows:
            return None
        return gevent.get_hub().threadpool.apply(self.write, (rows,))

    def write(self, rows: list[tuple], timeout: float = -1) -> Path | None:
        """Write ``rows`` as one shard (any thread)."""
        if not rows:
            return None
        if not self._lock.acquire(True, timeout):
            logger.warning("recorder: %d rows dropped, another write did not finish in %s s", len(rows), timeout)
            return None
        try:
            columns = list(zip(*rows, strict=True))  # every row is a full SAMPLE_SCHEMA tuple
            table = pa.Table.from_arrays(
                [pa.array(col, type=field.type) for col, field in zip(columns, SAMPLE_SCHEMA, strict=True)],
                schema=SAMPLE_SCHEMA,
            )
            self._seq += 1
            final = self.results_dir / f"samples-{self.tag}-{self._seq:05d}.parquet"
            with atomic_path(final) as temp:
                pq.write_table(table, temp)
            self.written += len(rows)
            self.shards.append(final)
            return final
        finally:
            self._lock.release()
