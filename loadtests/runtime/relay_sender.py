"""Worker side of ``--samples-via-master``: the recorder's flushes go to the master.

Each flush becomes one Arrow IPC message (:mod:`loadtests.runtime.relay_wire`) that
the master writes as a shard and acknowledges. What is in flight is bounded:
at most :attr:`ShardSender.max_shards` shards or :attr:`ShardSender.max_bytes`
bytes unacknowledged. Past that the periodic flush waits for an ack, at most
:attr:`ShardSender.wait_s` seconds in its own greenlet (the users run on
meanwhile; the event loop is never blocked), then writes the shard to the
worker's own results folder, under the name the master would have given it,
and tells the master so in its next message. Other flushes (a full buffer, the
test's stop) never wait: no room means the worker's own disk at once.

A shard the master refuses (it has no results folder, its disk is full) is
kept here the same way. Shards still unacknowledged when the worker quits
are written here too: on a shared folder that rewrites the same file with the
same rows, so nothing is counted twice.

The recorder's ``written`` counts rows the master acknowledged plus rows on
this disk, so ``recorder-<tag>.json`` keeps its meaning.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event

from loadtests.runtime.recorder import Recorder, rows_to_table, shard_name
from loadtests.runtime.relay_wire import MAX_KEPT_NAMES, SHARD_MESSAGE, ShardMessage, decode_rows, encode_rows

logger = logging.getLogger(__name__)

#: shards sent and not yet acknowledged, at most
MAX_UNACKED_SHARDS = 4
#: bytes (on the wire) sent and not yet acknowledged, at most (one bigger shard may go alone)
MAX_UNACKED_BYTES = 32 * 2**20
#: seconds the periodic flush waits for an ack when the window is full, before keeping the shard here
WAIT_FOR_ROOM_S = 5.0
#: seconds between two log lines about shards kept on this disk
KEEP_LOG_EVERY_S = 10.0
MAX_ERRORS_KEPT = 5

SendMessage = Callable[[str, dict[str, Any]], None]
RunInThread = Callable[..., Any]


def _in_gevent_pool(func: Callable[..., Any], *args: Any) -> Any:
    return gevent.get_hub().threadpool.apply(func, args)


def _encode(rows: list[tuple]) -> bytes:
    return encode_rows(rows_to_table(rows))


@dataclass
class _InFlight:
    rows: int
    payload: bytes


class ShardSender:
    """Sends a recorder's flushes to the master (a :class:`loadtests.runtime.recorder.ShardRelay`).

    ``send`` is the worker runner's ``send_message``; :meth:`on_ack` is the
    listener of :data:`loadtests.runtime.relay_wire.ACK_MESSAGE`. Every method runs on
    the event loop's thread (the recorder falls back to local shards elsewhere).
    """

    def __init__(self, recorder: Recorder, send: SendMessage, *, max_shards: int = MAX_UNACKED_SHARDS,
                 max_bytes: int = MAX_UNACKED_BYTES, wait_s: float = WAIT_FOR_ROOM_S, flush_s: float = 2.0,
                 run_in_thread: RunInThread = _in_gevent_pool) -> None:
        self.recorder = recorder
        self._send = send
        self.max_shards = max_shards
        self.max_bytes = max_bytes
        self.wait_s = wait_s
        #: the worker's flush interval, told to the master (what a lost worker loses at most)
        self.flush_s = flush_s
        self._run_in_thread = run_in_thread
        #: on when the run asks for --samples-via-master (the master's option reaches workers at each start)
        self.enabled = False
        self._unacked: dict[int, _InFlight] = {}
        self._room = gevent.event.Event()
        self._files: dict[str, Any] = {}
        self._last_keep_log = 0.0
        #: the recorder's taken / dropped counts when this test began (the master counts per test)
        self._taken0 = self._dropped0 = 0
        self._reset_counts()

    def _reset_counts(self) -> None:
        self.sent_shards = self.sent_bytes = 0
        self.acked_shards = self.acked_rows = 0
        self.kept_rows = self.kept_shards = 0
        self.kept_names: list[str] = []
        self.refused = 0
        self.errors: list[str] = []

    # --- ShardRelay ----------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.enabled

    @property
    def in_flight_rows(self) -> int:
        return sum(entry.rows for entry in self._unacked.values())

    @property
    def in_flight_bytes(self) -> int:
        return sum(len(entry.payload) for entry in self._unacked.values())

    def accounting(self) -> dict[str, Any]:
        """This worker's side of the transport (in ``recorder-<tag>.json`` as ``via_master``)."""
        return {"sent_shards": self.sent_shards, "sent_bytes": self.sent_bytes, "acked_shards": self.acked_shards,
                "acked_rows": self.acked_rows, "in_flight_shards": len(self._unacked),
                "kept_rows": self.kept_rows, "kept_shards": self.kept_shards, "refused": self.refused,
                "errors": self.errors}

    def ship(self, rows: list[tuple], *, in_thread: bool, wait: bool) -> None:
        """Send ``rows`` as one shard, or keep them here when the window stays full.

        ``in_thread``: build the Arrow bytes in gevent's thread pool (the users
        run meanwhile); ``wait``: wait up to :attr:`wait_s` for room (only from
        a greenlet of its own, never from one that handles Locust's messages).
        """
        if not rows:
            return
        payload = self._run_in_thread(_encode, rows) if in_thread else _encode(rows)
        seq = self.recorder.next_seq()
        if wait and not self._has_room(len(payload)):
            self._wait_for_room(len(payload), self.wait_s)
        if not self._has_room(len(payload)):
            self._keep(seq, len(rows), payload, f"{len(self._unacked)} shards ({self.in_flight_bytes:,} bytes) "
                                                "were still unacknowledged by the master")
            return
        self._unacked[seq] = _InFlight(len(rows), payload)
        try:
            self._post(seq, len(rows), payload)
        except Exception as exc:  # Locust's RPCError and the like: this shard stays here
            self._unacked.pop(seq, None)
            self._keep(seq, len(rows), payload, f"cannot send to the master: {type(exc).__name__}: {exc}")
            return
        self.sent_shards += 1
        self.sent_bytes += len(payload)

    # --- messages ----------------------------------------------------------------------

    def _message(self, *, seq: int = 0, rows: int = 0, payload: bytes = b"", final: bool = False,
                 files: dict[str, Any] | None = None) -> dict[str, Any]:
        recorder = self.recorder
        return ShardMessage(
            worker=recorder.worker, tag=recorder.tag, seq=seq, rows=rows, arrow=payload,
            taken=max(0, recorder.recorded - self._taken0), kept_rows=self.kept_rows, kept_shards=self.kept_shards,
            kept_names=tuple(self.kept_names), dropped=max(0, recorder.dropped - self._dropped0), final=final,
            t_ns=time.time_ns(), flush_s=self.flush_s, files=files or {},
        ).to_data()

    def _post(self, seq: int, rows: int, payload: bytes) -> None:
        self._send(SHARD_MESSAGE, self._message(seq=seq, rows=rows, payload=payload))

    def add_file(self, name: str, document: Any) -> None:
        """Send ``document`` as ``name`` (``fanout-*.json``, ``targets-*.json``) with the next status message."""
        self._files[name] = document

    def status(self, *, final: bool) -> None:
        """Tell the master this worker's counts (``final``: its last message of the test)."""
        files, self._files = self._files, {}
        try:
            self._send(SHARD_MESSAGE, self._message(final=final, files=files))
        except Exception as exc:
            self._note_error(f"cannot send to the master: {type(exc).__name__}: {exc}")
            logger.error("samples via master: cannot send this worker's %s message: %s",
                         "final" if final else "status", exc)

    def begin(self) -> None:
        """At the test's start: counts from zero, and the master learns this worker's name."""
        self._reset_counts()
        self._taken0, self._dropped0 = self.recorder.recorded, self.recorder.dropped
        self.status(final=False)

    def finish(self) -> None:
        """At the test's stop, after the last flush: the final message."""
        self.status(final=True)

    def on_ack(self, msg: Any, **_: Any) -> None:
        """Listener of the master's acks (Locust's ``register_message``)."""
        data = msg.data if isinstance(msg.data, dict) else {}
        seq = data.get("seq")
        entry = self._unacked.pop(seq, None) if isinstance(seq, int) else None
        if entry is None or not isinstance(seq, int):  # late: the shard was kept here meanwhile (same name, rows)
            return
        if data.get("ok"):
            self.acked_shards += 1
            self.acked_rows += entry.rows
            self.recorder.written += entry.rows
            self.recorder.write_accounting()
        else:
            self.refused += 1
            self._keep(seq, entry.rows, entry.payload, f"the master refused it: {data.get('error')}")
        self._room.set()

    # --- the end -----------------------------------------------------------------------

    def drain(self, timeout: float) -> bool:
        """Wait (this greenlet only) until the master acknowledged everything sent; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._unacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.warning("samples via master: %d shard(s) still unacknowledged after %.0f s",
                               len(self._unacked), timeout)
                return False
            self._room.clear()
            self._room.wait(min(remaining, 0.5))
        return True

    def abandon(self) -> None:
        """Keep every unacknowledged shard on this disk (the worker is quitting)."""
        for seq in sorted(self._unacked):
            entry = self._unacked.pop(seq)
            self._keep(seq, entry.rows, entry.payload, "still unacknowledged when the worker quit")

    # --- the window ------------------------------------------------------------------

    def _has_room(self, size: int) -> bool:
        if not self._unacked:
            return True  # one shard may always go, however big (the recorder bounds its rows)
        return len(self._unacked) < self.max_shards and self.in_flight_bytes + size <= self.max_bytes

    def _wait_for_room(self, size: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._has_room(size):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._room.clear()
            self._room.wait(remaining)

    def _keep(self, seq: int, rows: int, payload: bytes, why: str) -> None:
        """Write shard ``seq`` to this worker's own results folder (counted, and told to the master)."""
        recorder = self.recorder
        try:
            table = decode_rows(payload, rows)
            path = self._run_in_thread(recorder.write_table, table, seq)
        except (OSError, ValueError) as exc:
            recorder.dropped += rows
            self._note_error(f"{why}; and it could not be written here: {type(exc).__name__}: {exc}")
            logger.error("samples via master: %d samples dropped: %s; writing shard %d here failed: %s",
                         rows, why, seq, exc)
        else:
            recorder.written += rows
            recorder.shards.append(path)
            self.kept_rows += rows
            self.kept_shards += 1
            if len(self.kept_names) < MAX_KEPT_NAMES:
                self.kept_names.append(shard_name(recorder.tag, seq))
            self._note_error(why)
            now = time.monotonic()
            if now - self._last_keep_log >= KEEP_LOG_EVERY_S:
                self._last_keep_log = now
                logger.warning("samples via master: shard %s kept in %s (%s); %d shard(s) kept here so far",
                               path.name, recorder.results_dir, why, self.kept_shards)
        recorder.write_accounting()

    def _note_error(self, why: str) -> None:
        self.errors = (self.errors + [why])[-MAX_ERRORS_KEPT:]
