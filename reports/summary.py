"""``summary.json``: the machine-readable figures of one cell, in one stable schema.

CI checks read these keys; the README's reports section documents every one.
Bump ``SUMMARY_SCHEMA`` when a key changes meaning or goes away (adding keys
does not need a bump).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from reports.metrics import PERCENTILES, CellMetrics
from reports.read_cell import CellData
from sioharness.core.run_record import RunRecord

SUMMARY_SCHEMA = 1
SUMMARY_FILE = "summary.json"

# run.json fields copied into the summary's "run" object.
RUN_FIELDS: tuple[str, ...] = (
    "run_id", "mode", "server", "scenario", "status", "reason", "load", "command", "target_url",
    "versions", "machine", "started_at", "ended_at", "started_ns", "ended_ns", "load_started_ns", "load_ended_ns",
    "gc",
)
LATENCY_FIELDS: tuple[str, ...] = (
    "kind", "name", "count", "ok", "failed", "per_s", "mean_us",
    *(key for key, _ in PERCENTILES), "max_us",
)


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def run_fields(run: RunRecord | None) -> dict[str, Any]:
    """The run record's fields a summary repeats; all None when the cell has no run.json."""
    record = run.to_json() if run is not None else {}
    return {key: record.get(key) for key in RUN_FIELDS}


def status_of(run: RunRecord | None, partial: bool, samples_lost: bool = False) -> str:
    """The cell's status, first rule that applies:

    1. ``failed`` when the runner said so (run.json status ``failed``), or when
       samples are known to be lost: the recorders' accounting (``recorder-*.json``)
       says samples never reached disk or its shards hold fewer rows than it
       wrote, or Locust counted more requests of some name than the recorder
       wrote (``CellData.lost``, ``CellMetrics.lost``). Figures computed without those samples
       cannot be trusted, however few are missing;
    2. ``partial`` when the runner said so (or never finished), or the report
       has problems (input missing or invalid, rows out of the run's span,
       stalls, ...);
    3. ``ok``.
    """
    run_status = run.status if run is not None else None
    if run_status == "failed" or samples_lost:
        return "failed"
    return "partial" if partial or run_status not in (None, "ok") else "ok"


def build_summary(data: CellData, metrics: CellMetrics) -> dict[str, Any]:
    """The summary.json object of one cell (see the README for each key)."""
    window = metrics.window
    # One conversion for the whole table: iterrows costs a Series per name.
    latency = metrics.latency[list(LATENCY_FIELDS)].to_dict("index")
    problems = [*data.problems, *metrics.problems]
    lost = [*data.lost, *metrics.lost]
    recorder = data.recorder
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "cell": data.cell,
        "status": status_of(data.run, bool(problems), bool(lost)),
        "partial": bool(problems),
        "problems": problems,
        "samples_lost": lost,
        "notes": [*data.notes, *metrics.notes],
        "scenario": metrics.scenario,
        "run": run_fields(data.run),
        "app": data.app,
        "window": {
            "load_start_ns": window.load_start_ns,
            "start_ns": window.start_ns,
            "end_ns": window.end_ns,
            "warmup_s": window.warmup_s,
            "warmup_source": window.warmup_source,
            "end_source": window.end_source,
            "duration_s": window.duration_s,
        },
        "samples": {
            "total": metrics.samples_total,
            "steady": metrics.samples_steady,
            "shards_read": data.shards_read,
            "shards_skipped": list(data.shards_skipped),
            "out_of_span": data.out_of_span,
            "span_start_ns": data.span.start_ns if data.span else None,
            "span_end_ns": data.span.end_ns if data.span else None,
            "recorder_files": recorder.files if recorder else None,
            "recorder_taken": recorder.taken if recorder else None,
            "recorder_written": recorder.written if recorder else None,
            "recorder_pending": recorder.pending if recorder else None,
            "recorder_dropped": recorder.dropped if recorder else None,
            "recorder_lost": recorder.lost if recorder else None,
            "recorder_errors": list(recorder.errors) if recorder else [],
        },
        "main_event": metrics.main_event,
        "primary": metrics.primary,
        "latency": latency,
        "connections": metrics.connections,
        "throughput": metrics.throughput,
        "errors": metrics.errors,
        "errors_by_name": metrics.error_breakdown.to_dict("records"),
        "error_ratio": metrics.error_ratio,
        "stalls": metrics.stalls,
        "stall_check": metrics.stall_check,
        "fanout": metrics.fanout,
        "server": metrics.server,
        "loadgen": metrics.loadgen,
        "locust": metrics.locust_check,
        "gc": metrics.gc.summary if metrics.gc is not None else None,
        "logs": {
            log.name: {
                "bytes": log.bytes, "lines": log.lines, "error_lines": log.error_lines,
                "tracebacks": log.tracebacks, "examples": log.examples, "scanned_all": log.scanned_all,
            }
            for log in data.logs
        },
    }
    return jsonable(summary)



