"""Master side of ``--samples-via-master``: shards from the workers into the results folder.

Each :data:`loadtests.runtime.relay_wire.SHARD_MESSAGE` is checked (format, sample
schema, row count, decoded size), written as ``samples-<tag>-<seq>.parquet``
under a temporary name and renamed (a folder only ever holds whole shards,
as with local shards), then acknowledged to its worker. A message that fails
the checks, or a write that fails, is refused with the reason: the worker
keeps that shard on its own disk. Only workers registered with the master
for the running test are heard (the sender is the connection's id, which
the harness puts on the message), and a sequence number is written once:
a repeat is refused, never written over the shard it names.

Messages are handled one at a time in Locust's receiving greenlet; the
decoding and the Parquet write run in gevent's thread pool, so the master's
other greenlets (heartbeats, the web UI) run meanwhile. What the master holds
at once is bounded by the workers' windows (``loadtests.runtime.relay_sender``).

Per sending worker, ``relayed-<tag>.json`` (rewritten after every message)
says what arrived: shards, rows, bytes, the last sequence number and flush
time, whether the final message of the test came, the worker's own counts
(taken, kept on its disk, dropped), and when the master lost it, if it did.
The reports read these to name a worker whose samples did not all arrive.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gevent
import pyarrow.parquet as pq

from loadtests.runtime.recorder import shard_name
from loadtests.runtime.relay_wire import ShardMessage, WireError, ack_data, decode_rows
from sioharness.core.files import atomic_path, write_json

logger = logging.getLogger(__name__)

#: errors kept per worker in its accounting file
MAX_ERRORS_KEPT = 5
#: seconds between two log lines about refused messages
REFUSE_LOG_EVERY_S = 10.0

Reply = Callable[[str, dict[str, Any]], None]
"""Send an ack: ``reply(node_id, data)``."""
RunInThread = Callable[..., Any]


def relay_file_name(tag: str) -> str:
    """The master's accounting of the worker that sends as ``tag`` (matches ``RELAY_FILE_GLOB``)."""
    return f"relayed-{tag}.json"


def _in_gevent_pool(func: Callable[..., Any], *args: Any) -> Any:
    return gevent.get_hub().threadpool.apply(func, args)


@dataclass
class WorkerAccount:
    """What one worker sent to this master during one test (``relayed-<tag>.json``)."""

    worker: str
    """The worker as the samples' ``worker`` column names it (``host:pid``)."""
    node: str
    """Locust's id of the worker (``load.json`` ``workers_lost`` names it so)."""
    tag: str
    """The tag its shards carry in this folder (the worker's own, made unique if two workers share it)."""
    shards: int = 0
    rows: int = 0
    bytes: int = 0
    last_seq: int = 0
    first_message_ns: int = 0
    last_flush_ns: int | None = None
    """When the worker sent the last shard that arrived (its wall clock); None before the first."""
    last_message_ns: int = 0
    final: bool = False
    """The worker's final message of the test arrived (its last flush is in)."""
    taken: int = 0
    """Samples the worker had taken at its last message."""
    kept_rows: int = 0
    kept_shards: int = 0
    kept_names: list[str] = field(default_factory=list)
    """Shards the worker wrote on its own disk instead (the window was full, a shard was refused)."""
    dropped: int = 0
    flush_s: float = 0.0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    lost_at_ns: int | None = None
    """When the master lost the worker (no heartbeat), if it did; -1 when it noticed only at the stop."""
    seqs: set[int] = field(default_factory=set)
    """The sequence numbers written (not in the file)."""

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        del document["seqs"]
        return document


class ShardReceiver:
    """Writes the workers' shards into the master's results folder and acknowledges them.

    ``folder`` returns the results folder of the current test (None: the
    master records nothing and refuses shards); ``reply`` sends an ack to one
    worker. :meth:`on_message` is the listener of ``SHARD_MESSAGE``.
    """

    def __init__(self, folder: Callable[[], str | Path | None], reply: Reply, *,
                 run_in_thread: RunInThread = _in_gevent_pool,
                 registered: Callable[[str], bool] = lambda node: True) -> None:
        self._folder = folder
        self._reply = reply
        self._registered = registered
        self._run_in_thread = run_in_thread
        self._current: Path | None = None
        #: Locust node id -> its account in the current folder
        self.accounts: dict[str, WorkerAccount] = {}
        self._last_refuse_log = 0.0

    def on_message(self, msg: Any, **_: Any) -> None:
        node = str(getattr(msg, "node_id", "") or "")
        raw = msg.data if isinstance(msg.data, dict) else {}
        seq = raw.get("seq", 0)
        seq = seq if isinstance(seq, int) else 0
        if not node or not self._registered(node):
            self._refuse(node, 0, "not a worker registered with this master: ignored")
            return
        try:
            message = ShardMessage.from_data(msg.data)
        except WireError as exc:
            self._refuse(node, seq, f"bad samples message: {exc}")
            return
        folder = self._folder()
        if not folder:
            self._refuse(node, message.seq, "the master has no --results-dir: it records nothing")
            return
        account = self._account(Path(folder), node, message)
        if message.rows and message.seq in account.seqs:
            account.refused += 1
            account.errors = (account.errors + [f"shard {message.seq}: sent again"])[-MAX_ERRORS_KEPT:]
            self._write_account(account)
            self._refuse(node, message.seq, f"shard {message.seq} was received already: not written again")
            return
        if message.rows:
            try:
                self._run_in_thread(self._write_shard, Path(folder), account.tag, message)
            except (WireError, OSError) as exc:
                account.refused += 1
                account.errors = (account.errors + [f"shard {message.seq}: {exc}"])[-MAX_ERRORS_KEPT:]
                self._update(account, message)
                self._write_account(account)
                self._refuse(node, message.seq, f"{type(exc).__name__}: {exc}")
                return
            account.seqs.add(message.seq)
            account.shards += 1
            account.rows += message.rows
            account.bytes += len(message.arrow)
            account.last_seq = max(account.last_seq, message.seq)
            account.last_flush_ns = message.t_ns
        self._update(account, message)
        for name, document in message.files.items():
            self._write_side_file(Path(folder), account, name, document)
        self._write_account(account)
        if message.rows:
            self._reply(node, ack_data(message.seq))

    def finish(self, lost: dict[str, int]) -> None:
        """At the test's stop: mark the workers the master lost (node id -> when, ns; -1 = unknown)."""
        for node, when in lost.items():
            account = self.accounts.get(node)
            if account is not None and account.lost_at_ns is None:
                account.lost_at_ns = when
                self._write_account(account)
        for node, account in self.accounts.items():
            if not account.final and node not in lost:
                logger.warning("samples via master: worker %s sent no final message: its last samples may be "
                               "missing (%d arrived)", account.worker, account.rows)

    # --- accounts ------------------------------------------------------------------

    def _account(self, folder: Path, node: str, message: ShardMessage) -> WorkerAccount:
        if folder != self._current:  # a new test's folder (web UI): its own accounts
            self._current = folder
            self.accounts = {}
        account = self.accounts.get(node)
        if account is None:
            taken = {a.tag for a in self.accounts.values()}
            tag = message.tag
            if tag in taken:  # two workers with the same host name and pid (containers): keep names unique
                tag = f"{tag}-{re.sub(r'[^A-Za-z0-9]', '', node)[-8:] or len(self.accounts)}"
            account = WorkerAccount(worker=message.worker, node=node, tag=tag, first_message_ns=time.time_ns())
            self.accounts[node] = account
            logger.info("samples via master: worker %s sends its samples as %s", message.worker, tag)
        return account

    @staticmethod
    def _update(account: WorkerAccount, message: ShardMessage) -> None:
        account.last_message_ns = message.t_ns
        account.taken = max(account.taken, message.taken)
        account.kept_rows, account.kept_shards = message.kept_rows, message.kept_shards
        account.kept_names = list(message.kept_names)
        account.dropped = message.dropped
        account.flush_s = message.flush_s
        account.final = account.final or message.final

    def _write_account(self, account: WorkerAccount) -> None:
        if self._current is None:
            return
        path = self._current / relay_file_name(account.tag)
        try:
            write_json(path, account.to_json(), indent=1)
        except (OSError, ValueError) as exc:
            logger.error("samples via master: cannot write %s: %s", path, exc)

    # --- files ---------------------------------------------------------------------

    @staticmethod
    def _write_shard(folder: Path, tag: str, message: ShardMessage) -> None:
        table = decode_rows(message.arrow, message.rows)
        final = folder / shard_name(tag, message.seq)
        with atomic_path(final) as temp:
            pq.write_table(table, temp)

    @staticmethod
    def _write_side_file(folder: Path, account: WorkerAccount, name: str, document: Any) -> None:
        kind = name.split("-", 1)[0]  # fanout, targets: named after this folder's tag for the worker
        path = folder / f"{kind}-{account.tag}.json"
        try:
            write_json(path, document, indent=1)
        except (OSError, ValueError, TypeError) as exc:
            account.errors = (account.errors + [f"{path.name}: {exc}"])[-MAX_ERRORS_KEPT:]
            logger.error("samples via master: cannot write %s: %s", path, exc)

    def _refuse(self, node: str, seq: int, why: str) -> None:
        now = time.monotonic()
        if now - self._last_refuse_log >= REFUSE_LOG_EVERY_S:
            self._last_refuse_log = now
            logger.error("samples via master: refused a message from %s: %s", node or "an unknown worker", why)
        if seq > 0 and node:
            try:
                self._reply(node, ack_data(seq, why))
            except Exception as exc:  # the worker is gone: it keeps or loses the shard on its side
                logger.debug("cannot refuse shard %d of %s: %s", seq, node, exc)
