"""The trace file ``python -m sioharness.bench.record`` writes: read back as untrusted input.

One JSON object a line (``sioharness/bench/trace_recorder.py`` documents the records):
a ``trace`` header of version 1 first, an ``end`` record last. Read bounded
in size, each line parsed on its own (bounded in depth), bad lines counted
rather than fatal. Used by the locustfile generator and the fidelity report.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sioharness.core.untrusted import UntrustedFileError, parse_json, read_bytes

MAX_TRACE_BYTES = 1 << 30
TRACE_VERSION = 1


class TraceError(ValueError):
    """A trace that cannot be used; the message says why."""


@dataclass
class Trace:
    app: str
    records: list[dict[str, Any]]
    bad_lines: int
    dropped: int
    #: what caused each emit was inferred from timing (a HAR file), not seen in the server
    inferred: bool = False


def read_trace(path: Path) -> Trace:
    """The trace's records; TraceError when the file is not a trace of sioharness.bench.record."""
    try:
        raw = read_bytes(path, MAX_TRACE_BYTES)
    except UntrustedFileError as exc:
        raise TraceError(str(exc)) from None
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror or exc}") from None
    records, bad, header, dropped = [], 0, None, 0
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            record = parse_json(line.encode(), path.name)
        except UntrustedFileError:
            bad += 1
            continue
        if not isinstance(record, dict):
            bad += 1
        elif record.get("type") == "trace":
            header = record
        elif record.get("type") == "end":
            dropped = record["dropped"] if isinstance(record.get("dropped"), int) else 0
        else:
            records.append(record)
    if header is None or header.get("version") != TRACE_VERSION:
        raise TraceError(f"{path.name}: not a trace of python -m sioharness.bench.record (no version 1 header line)")
    return Trace(str(header.get("app") or "?"), records, bad, dropped)
