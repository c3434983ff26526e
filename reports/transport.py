"""Samples that came through the Locust master (``--samples-via-master``): did they all arrive?

The master writes ``relayed-<tag>.json`` per sending worker
(``loadtests.runtime.relay_receiver``). This module reads them and says, as
problems (samples known missing also go to ``lost``):

- a worker whose final message never came (killed, lost, cut off): its
  name, its last flush that arrived, and its unflushed interval (from that
  flush to when the master lost it; at most about its flush interval when it
  died between two flushes);
- a worker whose final counts do not add up (samples taken that neither
  arrived nor were kept on its disk);
- shards a worker kept on its own disk (the master's window was full, or the
  master refused them) that are not in this folder;
- samples a worker dropped.

Runs with local shards have no ``relayed-*.json``: nothing to say.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sioharness.core.schema import RELAY_FILE_GLOB
from sioharness.core.untrusted import read_json

NS_PER_S = 1_000_000_000


@dataclass
class RelayedWorker:
    """One worker's ``relayed-*.json``, the fields the checks use."""

    worker: str
    node: str
    tag: str
    shards: int
    rows: int
    bytes: int
    last_flush_ns: int | None
    first_message_ns: int
    final: bool
    taken: int
    kept_rows: int
    kept_shards: int
    kept_names: list[str] = field(default_factory=list)
    dropped: int = 0
    flush_s: float = 0.0
    lost_at_ns: int | None = None


def _int(document: dict[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = document.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"'{key}' must be an integer, found {value!r:.40}")
    return value


def read_relayed(cell_dir: Path, problems: list[str]) -> list[RelayedWorker]:
    """Every readable ``relayed-*.json`` of the folder (an unreadable one is a problem)."""
    workers = []
    for path in sorted(cell_dir.glob(RELAY_FILE_GLOB)):
        try:
            doc = read_json(path)
            if not isinstance(doc, dict):
                raise ValueError(f"expected a JSON object, found {type(doc).__name__}")
            names = doc.get("kept_names") or []
            if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise ValueError("'kept_names' must be a list of strings")
            workers.append(RelayedWorker(
                worker=str(doc.get("worker") or path.stem), node=str(doc.get("node") or "?"),
                tag=str(doc.get("tag") or ""), shards=_int(doc, "shards") or 0, rows=_int(doc, "rows") or 0,
                bytes=_int(doc, "bytes") or 0, last_flush_ns=_int(doc, "last_flush_ns", optional=True),
                first_message_ns=_int(doc, "first_message_ns") or 0, final=bool(doc.get("final")),
                taken=_int(doc, "taken") or 0, kept_rows=_int(doc, "kept_rows") or 0,
                kept_shards=_int(doc, "kept_shards") or 0, kept_names=names,
                dropped=_int(doc, "dropped") or 0, flush_s=float(doc.get("flush_s") or 0.0),
                lost_at_ns=_int(doc, "lost_at_ns", optional=True)))
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            problems.append(f"{path.name} unreadable ({exc}): whether that worker's samples all arrived is unknown")
    return workers


def _at(t_ns: int | None, load_started_ns: int | None) -> str:
    if t_ns is None or t_ns <= 0:
        return "?"
    if load_started_ns:
        return f"+{(t_ns - load_started_ns) / NS_PER_S:.1f} s into the load"
    return f"{t_ns} ns"


def _worker_problems(w: RelayedWorker, cell_dir: Path, load_started_ns: int | None) -> list[str]:
    found = []
    name = f"worker {w.worker} (Locust {w.node})"
    if not w.final:
        last = w.last_flush_ns
        arrived = (f"{w.rows:,} samples in {w.shards} shard{'' if w.shards == 1 else 's'} arrived, the last "
                   f"flushed at {_at(last, load_started_ns)}" if last else "none of its samples arrived")
        if w.lost_at_ns is not None:
            since = last or w.first_message_ns
            gap = (f"{(w.lost_at_ns - since) / NS_PER_S:.1f} s from its last flush to when the master lost it "
                   f"at {_at(w.lost_at_ns, load_started_ns)}" if w.lost_at_ns > 0 and since
                   else "from its last flush to its end")
            found.append(f"{name} was lost without its final flush: {arrived}; its unflushed interval "
                         f"({gap}; it flushed every {w.flush_s:g} s) never arrived")
        else:
            found.append(f"{name} sent no final message: {arrived}; samples it took after that may be missing")
    else:
        missing = w.taken - w.rows - w.kept_rows - w.dropped
        if missing > 0:
            found.append(f"{name} took {w.taken:,} samples but only {w.rows:,} reached the master "
                         f"({w.kept_rows:,} kept on its disk, {w.dropped:,} dropped): {missing:,} never arrived")
    absent = [n for n in w.kept_names if not (cell_dir / n).is_file()]  # on a shared folder they are here
    if absent:
        found.append(f"{name} kept {w.kept_rows:,} samples in {w.kept_shards} shards on its own disk (the "
                     f"master's window was full or it refused them), not in this folder: copy "
                     f"samples-{w.tag}-*.parquet from that worker's results folder here (e.g. {absent[0]})")
    if w.dropped:
        found.append(f"{name} dropped {w.dropped:,} samples (it could neither send nor write them)")
    return found


def check_relayed(cell_dir: Path, *, load_started_ns: int | None, problems: list[str], lost: list[str],
                  notes: list[str]) -> list[RelayedWorker]:
    """Add the transport's problems (and losses, and a note on what came through the master)."""
    workers = read_relayed(cell_dir, problems)
    if not workers:
        return workers
    rows, wire = sum(w.rows for w in workers), sum(w.bytes for w in workers)
    per_sample = f", {wire / rows:.1f} bytes per sample on the wire" if rows else ""
    notes.append(f"samples came through the Locust master from {len(workers)} workers "
                 f"({rows:,} in {sum(w.shards for w in workers):,} shards{per_sample})")
    for w in workers:
        for message in _worker_problems(w, cell_dir, load_started_ns):
            problems.append(message)
            lost.append(message)
    return workers
