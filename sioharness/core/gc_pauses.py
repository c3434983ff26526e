"""Record this process's garbage-collector pauses into a CSV file (``gc.csv``).

One line in any server, the reference target or your own app::

    from sioharness.core.gc_pauses import record_gc_pauses
    record_gc_pauses()              # the path from $SIO_GC_LOG (the cell runner sets it); nothing when unset
    record_gc_pauses("gc.csv")      # or a path of your choosing

``gc.callbacks`` times every collection: the callback only reads two clocks
and appends a tuple to a bounded in-memory queue. A real OS thread (never a
greenlet, even after eventlet or gevent monkey-patched ``threading``) writes
the queue to the file every ``FLUSH_INTERVAL_S``, so the callback never waits
for a disk. Works under threading, eventlet, gevent and asyncio alike. At
most the last flush interval is missing when the process is killed.

Columns (``GC_CSV_COLUMNS``):

t_ns           int  wall clock (epoch ns, ``time.time_ns``) when the collection
                    started: the clock of ``server.csv`` and of the samples
duration_ns    int  how long it ran (``time.perf_counter_ns``)
generation     int  the generation collected (0, 1 or 2)
collected      int  unreachable objects it freed
uncollectable  int  unreachable objects it could not free

Nothing here is imported before monkey-patching matters: ``threading`` is
never imported, and the thread is started with the unpatched ``_thread``.
"""
from __future__ import annotations

import _thread
import atexit
import collections
import csv
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

GC_CSV = "gc.csv"
#: files of several target instances of one cell: gc-1.csv, gc-2.csv, ...
GC_CSV_GLOB = "gc*.csv"
#: where ``record_gc_pauses()`` writes when it is given no path
GC_LOG_ENV = "SIO_GC_LOG"
GC_CSV_COLUMNS: tuple[str, ...] = ("t_ns", "duration_ns", "generation", "collected", "uncollectable")
FLUSH_INTERVAL_S = 0.5
#: pauses kept in memory between flushes; beyond this they are counted as dropped
MAX_PENDING = 100_000

Row = tuple[int, int, int, int, int]


def _real_thread_api() -> tuple[Callable[..., Any], Callable[[], Any]]:
    """``start_new_thread`` and ``allocate_lock`` of real OS threads, whatever was monkey-patched."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None:
        return (gevent_monkey.get_original("_thread", "start_new_thread"),
                gevent_monkey.get_original("_thread", "allocate_lock"))
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        original = patcher.original("_thread")
        return original.start_new_thread, original.allocate_lock
    return _thread.start_new_thread, _thread.allocate_lock


class GcPauseRecorder:
    """Times collections through ``gc.callbacks`` and writes them to ``path`` from its own thread."""

    def __init__(self, path: str | os.PathLike[str], *, flush_interval_s: float = FLUSH_INTERVAL_S,
                 max_pending: int = MAX_PENDING) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.written = 0
        #: pauses lost because the queue was full
        self.dropped = 0
        self._pending: collections.deque[Row] = collections.deque()
        self._started_wall = 0
        self._started_perf = 0
        self._handle: Any = None
        self._writer: Any = None
        self._write_lock: Any = None
        self._stopping: Any = None
        self._running = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        # No lock and no I/O: a collection can start in any thread, the writer's too.
        if phase == "start":
            self._started_wall = time.time_ns()
            self._started_perf = time.perf_counter_ns()
            return
        duration = time.perf_counter_ns() - self._started_perf
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending.append((self._started_wall, duration, info.get("generation", -1),
                              info.get("collected", 0), info.get("uncollectable", 0)))

    def start(self) -> GcPauseRecorder:
        """Create the file with its header, hook the collector, start the writer thread.

        OSError when the file cannot be created.
        """
        if self._running:
            return self
        self._handle = open(self.path, "w", newline="", encoding="ascii")  # noqa: SIM115 (kept open to flush into)
        self._writer = csv.writer(self._handle)
        self._writer.writerow(GC_CSV_COLUMNS)
        self._handle.flush()
        start_new_thread, allocate_lock = _real_thread_api()
        self._write_lock = allocate_lock()
        self._stopping = allocate_lock()
        self._stopping.acquire()
        self._running = True
        gc.callbacks.append(self._callback)
        start_new_thread(self._run, ())
        atexit.register(self.stop)
        return self

    def _run(self) -> None:
        while self._running:
            if self._stopping.acquire(True, self.flush_interval_s):
                return
            self.flush()

    def flush(self) -> int:
        """Write what is queued; returns the rows written."""
        rows = 0
        with self._write_lock:
            if self._handle is None or self._handle.closed:
                return 0
            pending = self._pending
            try:
                while pending:
                    self._writer.writerow(pending.popleft())
                    rows += 1
                if rows:
                    self._handle.flush()
            except (OSError, ValueError):
                return rows  # a full disk or a closed file: the process it records goes on
        self.written += rows
        return rows

    def stop(self) -> None:
        """Unhook, write what is left and close the file (idempotent; runs at exit too)."""
        if not self._running:
            return
        self._running = False
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        self._stopping.release()
        self.flush()
        with self._write_lock:
            self._handle.close()
        if self.dropped:
            print(f"gc pauses: {self.dropped} pauses not recorded in {self.path} (queue full)", file=sys.stderr)


_recorder: GcPauseRecorder | None = None


def record_gc_pauses(path: str | os.PathLike[str] | None = None) -> GcPauseRecorder | None:
    """Record this process's GC pauses into ``path`` (default: ``$SIO_GC_LOG``); None when neither is set.

    Call it once, early, in the process that serves (a gunicorn worker, not
    its master). Calling it again returns the recorder already running.
    """
    global _recorder
    target = path if path is not None else os.environ.get(GC_LOG_ENV) or None
    if target is None:
        return None
    if _recorder is not None:
        return _recorder
    _recorder = GcPauseRecorder(target).start()
    return _recorder
