"""One status ladder for a cell, however it ran (natively, in containers): what it left behind decides "ok".

A cell is "ok" only when nothing on this ladder went wrong, checked in this
order: the run itself (a deadline, an interrupt), the target (an instance
that died), Locust's workers (one lost mid-run), the recorders (samples that
could not be written, by an exit status or by their own accounting), Locust's
exit status, and what Locust counted (no request at all, or every connect or
call failed). The readers here take a cell folder's Locust files as the
runners leave them.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from reports.read_cell import read_recorder_files
from sioharness.core.exit_codes import EXIT_NOTHING_MEASURED, EXIT_SAMPLES_LOST
from sioharness.core.run_record import LOAD_BOUNDS_FILE

OK = "ok"
FAILED = "failed"


@dataclass
class LiveFigures:
    """What the progress line shows, read from Locust's stats CSV as it runs."""

    requests: int = 0
    failures: int = 0
    rps: float = 0.0


@dataclass(frozen=True)
class CellEnding:
    """How a cell's processes ended: the runner's own verdict and what the processes said."""

    #: the runner's verdict while watching (ok; failed at the deadline; partial when interrupted)
    status: str
    reason: str | None
    #: the Locust processes' exit statuses: the master's first, then any worker's the runner saw
    exit_codes: Sequence[int | None] = ()
    #: why the target failed mid-run, if it did
    target_fault: str | None = None
    #: how many Locust processes generated load (for the lost-workers message)
    processes: int = 1
    lost_workers: Sequence[str] = field(default_factory=tuple)


def read_load_bounds(cell_dir: Path) -> dict[str, int]:
    """``load_started_ns``/``load_ended_ns`` as the Locust harness recorded them (load.json)."""
    try:
        bounds = json.loads((cell_dir / LOAD_BOUNDS_FILE).read_text())
        return {key: int(bounds[key]) for key in ("load_started_ns", "load_ended_ns") if key in bounds}
    except (OSError, ValueError, TypeError):
        return {}


def read_lost_workers(cell_dir: Path) -> list[str]:
    """Locust workers the master lost mid-run (load.json ``workers_lost``), if any."""
    try:
        lost = json.loads((cell_dir / LOAD_BOUNDS_FILE).read_text()).get("workers_lost") or []
        return [str(worker) for worker in lost]
    except (OSError, ValueError, TypeError, AttributeError):
        return []


def read_final_figures(stats_json: Path) -> LiveFigures | None:
    """Totals from Locust's --json-file, written at shutdown."""
    try:
        entries = json.loads(stats_json.read_text())
        requests = sum(int(e["num_requests"]) for e in entries)
        failures = sum(int(e["num_failures"]) for e in entries)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return LiveFigures(requests, failures, 0.0)


def read_live_figures(stats_csv: Path) -> LiveFigures | None:
    """The Aggregated row of Locust's stats CSV (rewritten every second), if readable."""
    try:
        with open(stats_csv, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return LiveFigures(int(row["Request Count"]), int(row["Failure Count"]),
                                       float(row["Requests/s"]))
    except (OSError, ValueError, KeyError):
        return None
    return None


def final_figures(cell_dir: Path) -> LiveFigures | None:
    """Locust's final counts: its --json-file when it wrote one, else the last stats CSV."""
    return read_final_figures(cell_dir / "locust_stats.json") or read_live_figures(cell_dir / "locust_stats.csv")


def nothing_answered(stats_json: Path) -> str | None:
    """Why a run measured nothing, from Locust's final counts: every call or every connect failed."""
    try:
        entries = json.loads(stats_json.read_text())
        totals: dict[str, list[int]] = {}
        for entry in entries:
            counts = totals.setdefault(str(entry["method"]), [0, 0])
            counts[0] += int(entry["num_requests"])
            counts[1] += int(entry["num_failures"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    for method, what in (("connect", "connects"), ("ack", "acked calls")):
        requests, failures = totals.get(method, [0, 0])
        if requests and failures == requests:
            names = sorted({str(e["name"]) for e in entries if e["method"] == method})
            return (f"the server answered none of the run's {what}: all {requests:,} failed "
                    f"({', '.join(names)}); see locust_failures.csv")
    return None


def cell_status(cell_dir: Path, ending: CellEnding, live: LiveFigures | None) -> tuple[str, str | None]:
    """The cell's status and reason: the first rung of the ladder (module docstring) that went wrong."""
    if ending.status != OK:
        return ending.status, ending.reason
    if ending.target_fault:
        return FAILED, ending.target_fault
    if ending.lost_workers:
        return FAILED, (f"{len(ending.lost_workers)} of {ending.processes} Locust worker processes lost during the "
                        f"run: their users stopped early, the samples they flushed are kept")
    codes = [code for code in ending.exit_codes if code is not None]
    # The recorders' own accounting (recorder-*.json) counts too: a worker whose exit status no
    # runner saw (a container, a process of another machine) still says what it could not write.
    account = read_recorder_files(cell_dir, problems=[], lost=[])
    if EXIT_SAMPLES_LOST in codes or (account is not None and account.lost):
        counted = (f" ({account.lost:,} of {account.taken:,} by the recorders' accounting)"
                   if account is not None and account.lost else "")
        return FAILED, f"samples lost: the recorder could not write every sample (disk full?){counted}; see locust.log"
    if EXIT_NOTHING_MEASURED in codes:
        return FAILED, (nothing_answered(cell_dir / "locust_stats.json")
                        or "Locust measured nothing: every request failed; see locust.log")
    if ending.exit_codes and ending.exit_codes[0] is not None and ending.exit_codes[0] not in (0, 1):
        return FAILED, f"locust exited with code {ending.exit_codes[0]}; see locust.log"
    if live is None or live.requests == 0:
        return FAILED, "locust recorded no requests; see locust.log"
    if silent := nothing_answered(cell_dir / "locust_stats.json"):
        return FAILED, silent
    return OK, None
