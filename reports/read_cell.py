"""Read one results folder (``results/<run-id>/<cell>/``): its files into pandas frames, its
sample shards checked and counted, to be read shard by shard (``reports.shards``).

Every problem with the input ends one of two ways:

- fatal (nothing trustworthy can be reported): ``ReportInputError`` naming the
  file and what is wrong;
- recoverable (a corrupt shard, a missing ``server.csv``, a truncated line):
  the valid part is used and the problem is listed in ``CellData.problems``,
  which marks the report partial.

Nothing is silently dropped: every skipped shard or row is counted in a problem.
That includes rows whose ``t_ns`` lies outside the run's span (``TimeSpan``):
a clock jump or a corrupt timestamp must not stretch every rate and time
series over years.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.errors import ReportInputError
from reports.gc_pauses import read_gc_pauses
from reports.scan import PairScan, PreScan, scan_plan
from reports.shards import (
    ProgressCallback,
    SampleSource,
    ShardSamples,
    ShardScan,
    Sink,
    count_kept,
    scan_shards,
)
from reports.transport import check_relayed
from reports.window import MAX_EPOCH_NS, resolve_warmup, run_window
from sioharness.core.run_record import (
    FINAL_STATUSES,
    MIN_EPOCH_NS,
    RUN_JSON,
    RUNNING,
    SCHEMA_VERSION,
    RunRecord,
    RunRecordError,
)
from sioharness.core.schema import (
    APP_INFO_FILE,
    FANOUT_FILE_GLOB,
    KINDS,
    LOCUST_STATS_JSON,
    RECORDER_FILE_GLOB,
    SHARD_GLOB,
)
from sioharness.core.untrusted import UntrustedFileError, read_json

SERVER_CSV = "server.csv"
LOADGEN_CSV = "loadgen.csv"
LOCUST_STATS_CSV = "locust_stats.csv"
# Locust's --json-file: written once at shutdown, so unlike the CSV (rewritten
# every second while running) it holds the final counts.
LOCUST_HISTORY_CSV = "locust_stats_history.csv"
LOG_FILES = ("target.log", "locust.log")

SERVER_REQUIRED = ("t_ns", "cpu_user_s", "cpu_system_s", "rss_bytes")
SERVER_OPTIONAL = ("threads", "fds", "procs", "connected")

# Anything earlier than 1973 is not an epoch-nanosecond timestamp (MIN_EPOCH_NS):
# most likely seconds or milliseconds, which would make every rate wrong by 10**6 or more.
# Anything later than MAX_EPOCH_NS (2**62 ns, year 2116) is not a plausible one either.
NS_PER_S = 1_000_000_000
# Rows may lie this far outside the run's recorded span (clock skew between hosts,
# samplers started a little early) before they are dropped as out of span.
SPAN_MARGIN_S = 60.0
# Without run.json times the span comes from the samples themselves: their 5th to 95th
# percentile, widened on each side by that width plus the margin. Robust to up to 5 %
# of wild timestamps; a legitimate run's samples always fall inside.
ROBUST_SPAN_QUANTILES = (0.05, 0.95)
# Recorder error texts kept in the summary.
MAX_RECORDER_ERRORS = 5

# Logs can hold millions of lines (see DESIGN.md, churn under gevent); scan a bounded prefix.
MAX_LOG_SCAN_BYTES = 64 * 1024 * 1024
_LOG_ERROR_LINE = re.compile(rb"\b(?:ERROR|CRITICAL)\b|Traceback \(most recent call last\)|Invalid HTTP method")
_LOG_TRACEBACK = b"Traceback (most recent call last)"


@dataclass
class LogSummary:
    """What a log file says at a glance: size, error lines and a few examples."""

    name: str
    bytes: int
    lines: int
    error_lines: int
    tracebacks: int
    examples: list[str]
    scanned_all: bool


@dataclass(frozen=True)
class TimeSpan:
    """The times a row of this cell may carry: ``start_ns <= t_ns <= end_ns``."""

    start_ns: int
    end_ns: int
    source: str
    """How the span was found, for problem lines and docs."""

    def outside(self, t_ns: np.ndarray) -> np.ndarray:
        return (t_ns < self.start_ns) | (t_ns > self.end_ns)

    def describe(self) -> str:
        return f"{self.source}, {(self.end_ns - self.start_ns) / NS_PER_S:,.1f} s"


@dataclass
class RecorderAccount:
    """The recording processes' own accounting (``recorder-*.json``), summed."""

    files: int = 0
    taken: int = 0
    written: int = 0
    pending: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Samples taken from Locust that never reached a shard on disk."""
        return max(0, self.taken - self.written)


@dataclass
class CellData:
    """Everything read from one cell folder, checked against the schema."""

    path: Path
    cell: str
    run: RunRecord | None
    """The runner's record (run.json); None when the folder has none."""
    source: SampleSource
    """The kept samples, read shard by shard when a figure needs them (``reports.shards``)."""
    server: pd.DataFrame | None
    loadgen: pd.DataFrame | None = None
    """The load generator's process tree (``loadgen.csv``), when the runner sampled it."""
    locust_stats: pd.DataFrame | None = None
    locust_users: pd.DataFrame | None = None
    logs: list[LogSummary] = field(default_factory=list)
    shards_read: int = 0
    shards_skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Why the figures are based on incomplete data; non-empty means partial."""
    notes: list[str] = field(default_factory=list)
    """Things worth knowing that do not make a figure incomplete."""
    fanout_pairs: dict[str, str] = field(default_factory=dict)
    """acked event -> push declared by the run's user classes (beside the reference pairs)."""
    declared_primary: str | None = None
    """The main event (or ``connects/s``) a user class declared as what ranks its cells."""
    app: dict[str, Any] | None = None
    """What the ``--app`` launcher found about the user's app (``app.json``), None without one."""
    span: TimeSpan | None = None
    """The run's span; rows outside it were dropped (counted in ``problems``)."""
    out_of_span: int = 0
    """Samples dropped because their ``t_ns`` lies outside ``span``."""
    read_counts: pd.DataFrame | None = None
    """Rows read from the shards per (``kind``, ``name``): ``count``, ``failures``, before the
    report dropped any (invalid, out of span): what the recorder wrote, for the Locust cross-check."""
    recorder: RecorderAccount | None = None
    """The recorders' own accounting (``recorder-*.json``), None when the folder has none."""
    lost: list[str] = field(default_factory=list)
    """Problems that mean samples are known to be lost (the summary status becomes ``failed``)."""
    prescan: PreScan | None = None
    """The figures' counts, gathered during the read for the window run.json gives
    (``compute_metrics`` takes them: a second read is needed only for another window)."""

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    @property
    def sample_count(self) -> int:
        """Samples kept (valid, inside the run's span)."""
        return len(self.source)

    @property
    def samples(self) -> pd.DataFrame:
        """Every kept sample as one pandas frame, read on each use: gigabytes at soak scale, and
        no figure needs it (they read ``source`` chunk by chunk)."""
        return self.source.frame()


# Files only a cell folder holds; any one of them makes a folder a cell.
CELL_MARKERS = (RUN_JSON, SERVER_CSV, LOCUST_STATS_CSV, *LOG_FILES)


def is_cell_dir(path: Path) -> bool:
    """True when ``path`` looks like one cell: it holds run.json, shards, server.csv, ..."""
    return path.is_dir() and (any((path / m).is_file() for m in CELL_MARKERS) or any(path.glob(SHARD_GLOB)))


def load_cell(path: str | Path, *, progress: ProgressCallback | None = None,
              warmup_s: float | None = None) -> CellData:
    """Read and check one cell folder.

    When run.json records the load's bounds (the runner does), the steady
    window is known before any sample is read: the figures of
    ``compute_metrics(data, warmup_s=warmup_s)`` are then counted in the same
    read of the shards (``CellData.prescan``), not in a second one.

    Raises ``ReportInputError`` when the folder cannot give a trustworthy
    report (not a folder, unreadable run.json, no usable samples).
    """
    path = Path(path)
    if not path.exists():
        raise ReportInputError(path, "no such folder")
    if not path.is_dir():
        raise ReportInputError(
            path, "not a folder (expected a results cell folder holding run.json and samples-*.parquet)")

    problems: list[str] = []
    notes: list[str] = []
    run = read_run_json(path, problems, notes)
    cell = (run.cell if run else None) or path.name

    if run is not None:
        run = check_run_times(run, problems)
    known = _span_from_run(run)
    window = run_window(run, *resolve_warmup(warmup_s, run)) if known is not None else None
    early: tuple[pd.DataFrame | None, pd.DataFrame | None, list[str], list[str]] | None = None
    pair_scan: PairScan | None = None
    gc_notes: list[str] = []
    pauses: pd.DataFrame | None = None
    gc_files: list[str] = []
    if known is not None and window is not None:
        early = _read_process_files(path, known)
        pauses, gc_files = read_gc_pauses(path, gc_notes)
        pair_scan = PairScan(scan_plan(window, early[0], early[1], pauses, known.start_ns, known.end_ns))
    try:
        source, scan, span = read_samples(path, run, problems, progress=progress, sink=pair_scan)
    except ReportInputError as exc:
        if run is not None and run.status in ("failed", "partial", RUNNING):
            # Say why, when the runner knew: "the target never became healthy", ...
            raise ReportInputError(path, f"{exc.problem} (run.json: {run.status}: "
                                         f"{run.reason or 'no reason given'})") from None
        raise
    server, loadgen, file_problems, file_notes = early if early is not None else _read_process_files(path, span)
    problems.extend(file_problems)
    notes.extend(file_notes)
    prescan = None
    if pair_scan is not None and window is not None:
        prescan = PreScan(window, pair_scan.finish(source.pairs), pauses, gc_files, gc_notes)
    locust_stats = read_locust_final_stats(path / LOCUST_STATS_JSON, notes)
    if locust_stats is None:
        locust_stats = read_locust_stats(path / LOCUST_STATS_CSV, notes)
    locust_users = read_locust_users(path / LOCUST_HISTORY_CSV, notes)
    if locust_users is not None:
        locust_users = drop_out_of_span(locust_users, span, f"{LOCUST_HISTORY_CSV} row(s)", notes)
    logs = [summarize_log(path / name) for name in LOG_FILES if (path / name).is_file()]
    fanout_pairs, declared_primary = read_declarations(path, problems)
    app = read_app_info(path, notes)
    lost: list[str] = []
    recorder = read_recorder_files(path, problems, lost, rows_read=scan.total_rows)
    check_relayed(path, load_started_ns=run.load_started_ns if run else None, problems=problems, lost=lost,
                  notes=notes)  # samples sent through the Locust master: did every worker's arrive?
    return CellData(
        path=path, cell=cell, run=run, source=source, server=server, loadgen=loadgen,
        locust_stats=locust_stats, locust_users=locust_users, logs=logs, fanout_pairs=fanout_pairs, app=app,
        declared_primary=declared_primary,
        shards_read=len(scan.usable), shards_skipped=scan.skipped, problems=problems, notes=notes,
        span=span, out_of_span=source.out_of_span, read_counts=scan.read_counts(), recorder=recorder, lost=lost,
        prescan=prescan,
    )


def _read_process_files(path: Path, span: TimeSpan) -> tuple[pd.DataFrame | None, pd.DataFrame | None,
                                                              list[str], list[str]]:
    """server.csv and loadgen.csv, their rows outside the span dropped: ``(server, loadgen, problems, notes)``."""
    problems: list[str] = []
    notes: list[str] = []
    server = read_server_csv(path / SERVER_CSV, problems)
    if server is not None:
        server = _process_rows_in_span(server, span, SERVER_CSV, problems,
                                       consequence="no server CPU or memory figures")
    loadgen = read_loadgen_csv(path / LOADGEN_CSV, notes)
    if loadgen is not None:
        loadgen = _process_rows_in_span(loadgen, span, LOADGEN_CSV, problems,
                                        consequence="no load-generator figures")
    return server, loadgen, problems, notes


# --- the run's span ---------------------------------------------------------------

def check_run_times(run: RunRecord, problems: list[str]) -> RunRecord:
    """run.json's times, with the ones no figure can trust set aside (each with a problem).

    A time past ``MAX_EPOCH_NS`` is ignored. The load's bounds (``load_started_ns``,
    ``load_ended_ns``) must lie within the cell's (``started_ns`` .. ``ended_ns``, which
    straddle the load) give or take ``SPAN_MARGIN_S``; one that does not is ignored, and
    the load's bounds are then taken from the samples.
    """
    changes: dict[str, Any] = {}
    for key in ("started_ns", "ended_ns", "load_started_ns", "load_ended_ns"):
        value = getattr(run, key)
        if value is not None and value > MAX_EPOCH_NS:
            problems.append(f"{RUN_JSON} {key} = {value} is after the year 2116, not a real time: ignored")
            changes[key] = None
    def current(key: str) -> int | None:
        return changes[key] if key in changes else getattr(run, key)

    started, ended = current("started_ns"), current("ended_ns")
    margin = round(SPAN_MARGIN_S * NS_PER_S)
    if started is not None and ended is not None:
        for key in ("load_started_ns", "load_ended_ns"):
            value = current(key)
            if value is None:
                continue
            if value < started - margin:
                away = f"{(started - value) / NS_PER_S:,.1f} s before its started_ns"
            elif value > ended + margin:
                away = f"{(value - ended) / NS_PER_S:,.1f} s after its ended_ns"
            else:
                continue
            problems.append(f"{RUN_JSON} {key} is {away} (more than {SPAN_MARGIN_S:g} s outside the cell's "
                            "own times): ignored, the load's bounds are taken from the samples")
            changes[key] = None
    return dataclasses.replace(run, **changes) if changes else run


def time_span(run: RunRecord | None, t_ns: np.ndarray) -> TimeSpan:
    """The span a row's ``t_ns`` must fall in (see ``SPAN_MARGIN_S``, ``ROBUST_SPAN_QUANTILES``).

    From run.json: the earliest of ``started_ns``/``load_started_ns`` to the latest of
    ``ended_ns``/``load_ended_ns``, widened by the margin. A side run.json does not
    give comes from the samples: their 5th (95th) percentile minus (plus) the width
    between the two, minus (plus) the margin. Never past ``MAX_EPOCH_NS``.
    """
    margin = round(SPAN_MARGIN_S * NS_PER_S)
    starts = [v for v in (run.started_ns, run.load_started_ns) if v is not None] if run else []
    ends = [v for v in (run.ended_ns, run.load_ended_ns) if v is not None] if run else []
    robust_lo = robust_hi = None
    if not (starts and ends):
        plausible = t_ns[(t_ns >= MIN_EPOCH_NS) & (t_ns <= MAX_EPOCH_NS)]
        if len(plausible):
            q_lo, q_hi = ROBUST_SPAN_QUANTILES
            p_lo = int(np.quantile(plausible, q_lo, method="lower"))
            p_hi = int(np.quantile(plausible, q_hi, method="higher"))
            reach = (p_hi - p_lo) + margin
            robust_lo, robust_hi = p_lo - reach, p_hi + reach
    sources = []
    if starts:
        lo = min(starts) - margin
        sources.append("run.json start")
    else:
        lo = robust_lo if robust_lo is not None else MIN_EPOCH_NS
        sources.append("samples' 5th percentile - (5th-95th width + margin)")
    if ends:
        hi = max(ends) + margin
        sources.append("run.json end")
    else:
        hi = robust_hi if robust_hi is not None else MAX_EPOCH_NS
        sources.append("samples' 95th percentile + (5th-95th width + margin)")
    lo, hi = max(int(lo), MIN_EPOCH_NS), min(int(hi), MAX_EPOCH_NS)
    source = f"{sources[0]} to {sources[1]}, each {SPAN_MARGIN_S:g} s wider"
    return TimeSpan(start_ns=lo, end_ns=hi, source=source)


def _away(t: int, span: TimeSpan) -> str:
    if t > span.end_ns:
        return f"{(t - span.end_ns) / NS_PER_S:,.1f} s after the span"
    return f"{(span.start_ns - t) / NS_PER_S:,.1f} s before the span"


def drop_out_of_span(frame: pd.DataFrame, span: TimeSpan, what: str, problems: list[str]) -> pd.DataFrame:
    """``frame`` without the rows whose ``t_ns`` lies outside ``span``; one problem line counts them."""
    t = frame["t_ns"].to_numpy()
    out = span.outside(t)
    if not out.any():
        return frame
    wild = t[out]
    problems.append(out_of_span_problem(int(out.sum()), int(wild.min()), int(wild.max()), span, what))
    return frame.loc[~out].reset_index(drop=True)


def out_of_span_problem(count: int, low: int, high: int, span: TimeSpan, what: str) -> str:
    """The problem line of ``count`` rows dropped with ``t_ns`` from ``low`` to ``high`` outside ``span``."""
    where = _away(low, span) if low == high else f"{_away(low, span)} to {_away(high, span)}"
    return (f"dropped {count:,} {what} with t_ns outside the run's span ({span.describe()}): "
            f"t_ns {low} .. {high} ({where})")


def _process_rows_in_span(frame: pd.DataFrame, span: TimeSpan, name: str, problems: list[str],
                          *, consequence: str) -> pd.DataFrame | None:
    kept = drop_out_of_span(frame, span, f"{name} row(s)", problems)
    if kept.empty:
        problems.append(f"{name} has no row inside the run's span: {consequence}")
        return None
    return kept


# --- recorder accounting ------------------------------------------------------------

_RECORDER_COUNTS = ("taken", "written", "pending", "dropped")


def read_recorder_files(cell_dir: Path, problems: list[str], lost: list[str], *,
                        rows_read: int | None = None) -> RecorderAccount | None:
    """Sum every ``recorder-*.json``; None when there is none (an older recorder).

    Samples taken from Locust but never written (``taken > written``: still
    pending or dropped) are a problem and count as lost, and so are rows the
    recorders say they wrote that the readable shards do not hold
    (``rows_read``, checked only when every recorder file could be read).
    """
    paths = sorted(cell_dir.glob(RECORDER_FILE_GLOB))
    if not paths:
        return None
    account = RecorderAccount()
    for path in paths:
        try:
            document = read_json(path)
            if not isinstance(document, dict):
                raise ValueError(f"expected a JSON object, found {type(document).__name__}")
            counts = {}
            for key in _RECORDER_COUNTS:
                value = document.get(key)
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"'{key}' must be an integer >= 0, found {value!r:.40}")
                counts[key] = value
            errors = document.get("errors", [])
            if not (isinstance(errors, list) and all(isinstance(e, str) for e in errors)):
                raise ValueError("'errors' must be a list of strings")
            if counts["written"] > counts["taken"]:
                raise ValueError(f"written ({counts['written']}) is more than taken ({counts['taken']})")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            account.unreadable.append(path.name)
            problems.append(f"{path.name} unreadable ({exc}); that process's recorded samples are not accounted for")
            continue
        account.files += 1
        account.taken += counts["taken"]
        account.written += counts["written"]
        account.pending += counts["pending"]
        account.dropped += counts["dropped"]
        account.errors.extend(e for e in errors if e not in account.errors)
    del account.errors[MAX_RECORDER_ERRORS:]
    if account.lost:
        first = f"disk full? first error: {account.errors[0]}" if account.errors else "no error recorded"
        message = (f"recorder lost {account.lost:,} of {account.taken:,} samples "
                   f"({account.pending:,} still pending, {account.dropped:,} dropped; {first})")
        problems.append(message)
        lost.append(message)
    if rows_read is not None and not account.unreadable and rows_read < account.written:
        message = (f"the recorders wrote {account.written:,} samples but the readable shards hold {rows_read:,}: "
                   f"{account.written - rows_read:,} lost (shards skipped or missing)")
        problems.append(message)
        lost.append(message)
    return account


# --- declared fan-out ---------------------------------------------------------

def read_fanout_pairs(cell_dir: Path, problems: list[str] | None = None) -> dict[str, str]:
    """acked event -> push, as the user classes declared them (``fanout-*.json``, one per recording process)."""
    return read_declarations(cell_dir, problems)[0]


def read_declarations(cell_dir: Path, problems: list[str] | None = None) -> tuple[dict[str, str], str | None]:
    """(acked event -> push, the declared ``primary``) as the user classes declared them (``fanout-*.json``)."""
    pairs: dict[str, str] = {}
    primary: str | None = None
    for path in sorted(cell_dir.glob(FANOUT_FILE_GLOB)):
        try:
            document = read_json(path)
            found = document["pairs"]
            if not (isinstance(found, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in found.items())):
                raise ValueError("'pairs' must map event names to push names")
            declared = document.get("primary")
            if declared is not None and not isinstance(declared, str):
                raise ValueError("'primary' must be an event name")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            if problems is not None:
                problems.append(f"{path.name} unreadable ({str(exc)[:200]}); its declared fan-out is not paired")
            continue
        pairs.update(found)
        primary = primary or declared
    return pairs, primary


#: app.json fields and their types; anything else in the file is ignored
_APP_INFO_FIELDS = {"app": str, "async_mode": str, "server": str, "socketio_logs_packets": bool,
                    "engineio_logs_packets": bool, "tcp_nodelay": bool}
_MAX_APP_INFO_BYTES = 64 * 1024


def read_app_info(cell_dir: Path, notes: list[str]) -> dict[str, Any] | None:
    """The ``--app`` launcher's description of the app (``app.json``); a note when the app logs every packet."""
    path = cell_dir / APP_INFO_FILE
    if not path.exists() and not path.is_symlink():
        return None
    try:
        document = read_json(path, max_bytes=_MAX_APP_INFO_BYTES)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError) as exc:
        notes.append(f"{APP_INFO_FILE} unreadable ({str(exc)[:200]}); what the app was is not reported")
        return None
    info = {key: document[key] for key, kind in _APP_INFO_FIELDS.items()
            if isinstance(document.get(key), kind)}
    loggers = [name for name, key in (("Socket.IO", "socketio_logs_packets"), ("Engine.IO", "engineio_logs_packets"))
               if info.get(key)]
    if loggers:
        notes.append(f"the app logs every {' and '.join(loggers)} packet (logger=True / engineio_logger=True): "
                     "that logging is part of every figure here (on examples/classic it cut throughput by "
                     "about a quarter and raised server CPU per event by a third or more: docs/own-app.md)")
    if info.get("tcp_nodelay") is False:
        notes.append("the app's server leaves Nagle's algorithm on (no TCP_NODELAY): a reply written right "
                     "after another write can wait ~40 ms for the client's delayed ACK (--app-nodelay)")
    return info


# --- run.json -----------------------------------------------------------------

def read_run_json(cell_dir: Path, problems: list[str], notes: list[str]) -> RunRecord | None:
    """The runner's record of the run, checked by :class:`sioharness.core.run_record.RunRecord`.

    A missing run.json is recoverable (None: the run start is then the first
    sample); one that exists but cannot be parsed or has wrong
    types is not, because its times and load shape would feed every rate.
    """
    path = cell_dir / RUN_JSON
    if not path.exists() and not path.is_symlink():
        problems.append(f"{RUN_JSON} missing: no run status or load shape; the load's span taken from the samples")
        return None
    try:
        raw = read_json(path)
        if isinstance(raw, dict) and raw.get("schema") is None:
            notes.append(f"{RUN_JSON} has no 'schema' field; read as schema {SCHEMA_VERSION}")
        run = RunRecord.from_json(raw)
    except (UntrustedFileError, OSError) as exc:
        # The error names the file already: say what is wrong with it.
        text = str(exc)
        for prefix in (f"{path.name}: ", f"{path.name} is ", f"{path.name} "):
            text = text.removeprefix(prefix)
        raise ReportInputError(path, text) from None
    except RunRecordError as exc:
        raise ReportInputError(path, str(exc)) from None

    status = run.status
    if status == RUNNING:
        problems.append(f"{RUN_JSON} still says 'running': the runner never finished this cell (killed?)")
    elif status is not None and status not in FINAL_STATUSES:
        problems.append(f"{RUN_JSON} has an unknown status {status!r:.40} (expected {', '.join(FINAL_STATUSES)})")
    elif status in ("failed", "partial"):
        problems.append(f"the runner marked this run {status}: {run.reason or 'no reason given'}")
    return run


# --- sample shards --------------------------------------------------------------

def _span_from_run(run: RunRecord | None) -> TimeSpan | None:
    """The span when run.json alone gives it (both a start and an end), else None."""
    if run is None:
        return None
    starts = [v for v in (run.started_ns, run.load_started_ns) if v is not None]
    ends = [v for v in (run.ended_ns, run.load_ended_ns) if v is not None]
    return time_span(run, np.empty(0, dtype=np.int64)) if starts and ends else None


def read_samples(cell_dir: Path, run: RunRecord | None, problems: list[str], *,
                 progress: ProgressCallback | None = None,
                 sink: Sink | None = None) -> tuple[ShardSamples, ShardScan, TimeSpan]:
    """Check every shard and count its rows, batch by batch; the kept samples as a ``ShardSamples``.

    Rows no figure can use are dropped and counted in ``problems``: an unknown
    kind, a successful sample with a negative or non-finite latency, a ``t_ns``
    outside the run's span (``time_span``). Raises ``ReportInputError`` when no
    usable sample is left. ``sink`` (used only when run.json gives the span)
    gets the kept rows as they are read.
    """
    shards = sorted(cell_dir.glob(SHARD_GLOB))
    if not shards:
        raise ReportInputError(cell_dir, f"no sample shards ({SHARD_GLOB}): the run recorded nothing")
    known = _span_from_run(run)
    scan = scan_shards(shards, (known.start_ns, known.end_ns) if known else None, progress=progress, sink=sink)
    if not scan.usable:
        detail = "; ".join(scan.problems[:3]) + ("; ..." if len(scan.problems) > 3 else "")
        raise ReportInputError(cell_dir, f"no usable sample shard among {len(shards)}: {detail}")
    problems.extend(f"skipped {p}" for p in scan.problems)
    if scan.total_rows == 0:
        raise ReportInputError(cell_dir, f"empty run: {len(scan.usable)} sample shard(s) hold no rows")
    unknown = scan.unknown_kinds()
    if unknown:
        problems.append(f"dropped {scan.unknown_rows} sample(s) with unknown kind {unknown} "
                        f"(known: {', '.join(KINDS)})")
    if scan.broken_rows:
        problems.append(f"dropped {scan.broken_rows} successful sample(s) with a negative or non-finite latency_us")
    if scan.valid_rows == 0:
        raise ReportInputError(
            cell_dir, "no valid samples left after dropping invalid rows: " + "; ".join(problems[-2:]))
    span = known if known is not None else time_span(run, scan.valid_t if scan.valid_t is not None
                                                     else np.empty(0, dtype=np.int64))
    scan.valid_t = None
    kept = scan.kept if known is not None else count_kept(scan, (span.start_ns, span.end_ns))
    if kept.out_of_span:
        assert kept.wild_low is not None and kept.wild_high is not None
        problems.append(out_of_span_problem(kept.out_of_span, kept.wild_low, kept.wild_high, span, "sample(s)"))
    if kept.count == 0:
        raise ReportInputError(cell_dir, f"no sample inside the run's span ({span.describe()}): " + problems[-1])
    return ShardSamples(scan, (span.start_ns, span.end_ns), kept), scan, span


# --- server.csv ---------------------------------------------------------------------

def _parse_float(text: str) -> float:
    return float(text) if text.strip() else math.nan


def read_server_csv(path: Path, problems: list[str]) -> pd.DataFrame | None:
    """The target's process-tree samples, or None (with a problem) when unusable."""
    return read_process_csv(path, problems,
                            consequence="no server CPU or memory figures (sample the server: --target-pid PID)")


def read_loadgen_csv(path: Path, notes: list[str]) -> pd.DataFrame | None:
    """The load generator's process-tree samples (optional: problems are only notes)."""
    if not path.is_file():
        return None
    return read_process_csv(path, notes, consequence="no load-generator figures")


def read_process_csv(path: Path, problems: list[str], *, consequence: str) -> pd.DataFrame | None:
    """A process-tree sampling CSV (server.csv's columns), or None with a problem.

    Read with the csv module, row by row, so one truncated line (a runner
    killed mid-write) costs one row, not the whole file.
    """
    name = path.name
    if not path.is_file():
        problems.append(f"{name} missing: {consequence}")
        return None
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                problems.append(f"{name} is empty: {consequence}")
                return None
            header = [h.strip() for h in header]
            missing = [c for c in SERVER_REQUIRED if c not in header]
            if missing:
                problems.append(
                    f"{name}: missing column(s) {', '.join(missing)} (found: {', '.join(header)}); {consequence}"
                )
                return None
            wanted = [c for c in (*SERVER_REQUIRED, *SERVER_OPTIONAL) if c in header]
            index = [header.index(c) for c in wanted]
            rows: list[list[float]] = []
            bad_lines: list[int] = []
            for row in reader:
                if not row:
                    continue
                try:
                    values = [_parse_float(row[i]) for i in index]
                except (IndexError, ValueError):
                    bad_lines.append(reader.line_num)
                    continue
                if any(math.isnan(v) for v in values[: len(SERVER_REQUIRED)]):
                    bad_lines.append(reader.line_num)
                    continue
                rows.append(values)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"{name}: cannot be read ({exc}); {consequence}")
        return None

    if bad_lines:
        shown = ", ".join(map(str, bad_lines[:5])) + (", ..." if len(bad_lines) > 5 else "")
        problems.append(f"{name}: skipped {len(bad_lines)} malformed or truncated line(s) (line {shown})")
    if not rows:
        problems.append(f"{name} has no valid rows: {consequence}")
        return None
    frame = pd.DataFrame(rows, columns=wanted)
    frame["t_ns"] = frame["t_ns"].round().astype("int64")
    if frame["t_ns"].min() < MIN_EPOCH_NS:
        problems.append(f"{name}: t_ns = {frame['t_ns'].min()} is not epoch nanoseconds; {consequence}")
        return None
    for col in SERVER_OPTIONAL:
        if col not in frame:
            frame[col] = math.nan
    return frame.sort_values("t_ns", kind="stable").reset_index(drop=True)


# --- Locust's CSVs (optional cross-checks) -------------------------------------

def read_locust_final_stats(path: Path, notes: list[str]) -> pd.DataFrame | None:
    """Locust's final per-name totals from its --json-file, or None."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        entries = read_json(path)
        rows = [{"type": str(e.get("method") or ""), "name": str(e["name"]),
                 "requests": float(e["num_requests"]), "failures": float(e["num_failures"])} for e in entries]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        notes.append(f"{LOCUST_STATS_JSON}: cannot be read ({exc}); falling back to {LOCUST_STATS_CSV}")
        return None
    return _usable_counts(pd.DataFrame(rows, columns=["type", "name", "requests", "failures"]))


def read_locust_stats(path: Path, notes: list[str]) -> pd.DataFrame | None:
    """Locust's per-name totals (type, name, requests, failures), or None."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        notes.append(f"{LOCUST_STATS_CSV}: cannot be read ({str(exc).splitlines()[0]}); Locust cross-check skipped")
        return None
    needed = ["Type", "Name", "Request Count", "Failure Count"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        notes.append(f"{LOCUST_STATS_CSV}: missing column(s) {', '.join(missing)}; Locust cross-check skipped")
        return None
    frame = frame[needed].rename(
        columns={"Type": "type", "Name": "name", "Request Count": "requests", "Failure Count": "failures"}
    )
    frame["type"] = frame["type"].fillna("").astype(str)
    frame["name"] = frame["name"].astype(str)
    return _usable_counts(frame)


def _usable_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Locust's counts as numbers, without the rows whose counts are not finite and >= 0."""
    for column in ("requests", "failures"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    usable = np.isfinite(frame["requests"]) & (frame["requests"] >= 0) & (
        frame["failures"].isna() | (np.isfinite(frame["failures"]) & (frame["failures"] >= 0)))
    return frame.loc[usable].reset_index(drop=True)


def read_locust_users(path: Path, notes: list[str]) -> pd.DataFrame | None:
    """Locust's user count over time (t_ns, users) from the Aggregated history rows."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, usecols=lambda c: c in ("Timestamp", "User Count", "Name"))
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        notes.append(f"{LOCUST_HISTORY_CSV}: cannot be read ({str(exc).splitlines()[0]}); Locust user curve skipped")
        return None
    if not {"Timestamp", "User Count", "Name"} <= set(frame.columns):
        notes.append(f"{LOCUST_HISTORY_CSV}: missing Timestamp/User Count/Name columns; Locust user curve skipped")
        return None
    frame = frame[frame["Name"].astype(str) == "Aggregated"]
    ts = pd.to_numeric(frame["Timestamp"], errors="coerce")
    users = pd.to_numeric(frame["User Count"], errors="coerce")
    out = pd.DataFrame({"t_ns": ts * 1e9, "users": users}).dropna()
    if out.empty:
        return None
    out["t_ns"] = out["t_ns"].round().astype("int64")
    return out.sort_values("t_ns").reset_index(drop=True)


# --- logs ---------------------------------------------------------------------------

def summarize_log(path: Path, *, max_examples: int = 5) -> LogSummary:
    """Count lines, error lines and tracebacks in a log; keep a few examples."""
    size = path.stat().st_size
    lines = errors = tracebacks = 0
    examples: list[str] = []
    scanned = 0
    with path.open("rb") as fh:
        for raw in fh:
            scanned += len(raw)
            lines += 1
            if _LOG_ERROR_LINE.search(raw):
                errors += 1
                if _LOG_TRACEBACK in raw:
                    tracebacks += 1
                if len(examples) < max_examples:
                    examples.append(raw.decode("utf-8", "replace").rstrip()[:200])
            if scanned >= MAX_LOG_SCAN_BYTES:
                break
    return LogSummary(
        name=path.name, bytes=size, lines=lines, error_lines=errors, tracebacks=tracebacks,
        examples=examples, scanned_all=scanned >= size,
    )
