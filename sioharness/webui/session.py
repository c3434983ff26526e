"""One web UI session, many tests: a results folder per test start.

A web UI session is one run folder (``results/ui-<timestamp>/`` from
``sioharness.bench.ui``, or whatever ``--results-dir`` names). Each time a test is
started from the UI, it gets its own cell folder inside, named by the target,
the scenario and the start time::

    results/ui-20261126-031500/
      ui-session.json  ui-server.csv  ui-target.log  ui-locust.log   # the session (sioharness.bench.ui)
      gevent-dev--echo-031512/        # first test: EchoUser, started 03:15:12
        run.json  samples-*.parquet  server.csv  locust_stats.csv  report.html ...
      gevent-dev--churn-031650/       # second test

so every cell holds one test's samples only, and ``python -m reports`` on
the run folder compares the tests. The session files are named ``ui-*`` so
the run folder itself never looks like a cell.

This module is plain file handling (no Locust): the web UI extension calls
it at test start and stop; ``sioharness.bench.ui`` calls :func:`close_running_cells`
when the session ends.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.runtime.options import LoadSettings
from sioharness.core.cells import cell_name
from sioharness.core.files import atomic_open
from sioharness.core.run_record import RUN_JSON, RUNNING, RecordedLoad, RunRecord, iso, ramp_warmup_s
from sioharness.core.runinfo import machine, versions
from sioharness.core.scenarios import scenario_of_classes

#: what sioharness.bench.ui writes about the session (target, command, times)
SESSION_JSON = "ui-session.json"
#: the target's process tree sampled over the whole session
SESSION_SERVER_CSV = "ui-server.csv"
SESSION_TARGET_LOG = "ui-target.log"
SESSION_LOCUST_LOG = "ui-locust.log"
SERVER_CSV = "server.csv"
#: server.csv rows copied into a cell from before its start (the RSS baseline) and after its stop
SERVER_LEAD_NS = 2_000_000_000
SERVER_TAIL_NS = 1_000_000_000
NS_PER_S = 1_000_000_000

def ui_cell_name(mode: str, server: str, scenario: str, started: dt.datetime, root: Path) -> str:
    """``<mode>-<server>--<scenario>--<HHMMSS>``, with ``-2``, ``-3``... if already taken."""
    base = cell_name(mode, server, scenario, f"{started:%H%M%S}")
    name, n = base, 1
    while (root / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def read_session(root: Path) -> dict[str, Any]:
    """``ui-session.json`` of a run folder, or {} when there is none (plain ``locust`` UI)."""
    try:
        data = json.loads((root / SESSION_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class TestCell:
    """One test started from the web UI and its folder."""

    name: str
    path: Path
    started_ns: int
    record: RunRecord = field(default_factory=RunRecord)
    ended_ns: int | None = None

    @property
    def running(self) -> bool:
        return self.ended_ns is None


class UiSession:
    """The run folder of a web UI session and the test cells made in it.

    :param root: the run folder (``--results-dir`` as the session started).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.current: TestCell | None = None

    def cells(self) -> list[Path]:
        """Cell folders of this session, oldest first."""
        try:
            found = [p for p in self.root.iterdir() if p.is_dir() and (p / RUN_JSON).is_file()]
        except OSError:
            return []
        return sorted(found, key=lambda p: (p / RUN_JSON).stat().st_mtime_ns if p.exists() else 0)

    def cell_path(self, name: str) -> Path | None:
        """The folder of a cell of this session by name; None for anything else."""
        if not name or name != Path(name).name or name.startswith("."):
            return None
        path = self.root / name
        return path if (path / RUN_JSON).is_file() else None

    def start_test(self, *, mode: str, server: str, user_classes: list[str], options: Any, host: str | None,
                   workers: int, now_ns: int, command: list[str] | None = None) -> TestCell:
        """Make the cell folder of a test starting now and write its run.json (status running)."""
        if self.current is not None and self.current.running:
            self.stop_test(now_ns=now_ns, reason="a new test started before this one's stop was recorded",
                           status="partial")
        started = dt.datetime.fromtimestamp(now_ns / NS_PER_S)
        scenario = scenario_of_classes(user_classes)
        name = ui_cell_name(mode, server, scenario, started, self.root)
        path = self.root / name
        path.mkdir(parents=True)
        settings = LoadSettings.from_options(options)
        users = getattr(options, "num_users", None)
        spawn_rate = getattr(options, "spawn_rate", None)
        run_time = getattr(options, "run_time", None)
        session = read_session(self.root)
        # sioharness.bench.ui samples the target it started; a test against another host gets no server.csv.
        sampled = bool(session.get("target_pid")) and session.get("target_url") == host
        record = RunRecord(
            run_id=session.get("run_id") or self.root.name, cell=name, status=RUNNING, reason=None,
            mode=mode, server=server, scenario=scenario,
            load=RecordedLoad.of(
                settings, users=int(users) if users is not None else None,
                spawn_rate=float(spawn_rate) if spawn_rate is not None else None,
                duration_s=float(run_time) if run_time else None, warmup_s=0.0,
            ),
            command=list(command if command is not None else sys.argv), target_url=host,
            versions=session.get("versions") or versions(), machine=session.get("machine") or machine(),
            started_ns=now_ns, load_started_ns=now_ns,
            extra={"ui": {"user_classes": sorted(user_classes), "workers": workers,
                          "session": self.root.name, "target_sampled": sampled}},
        )
        cell = TestCell(name=name, path=path, started_ns=now_ns, record=record)
        record.write(path)
        self.current = cell
        return cell

    def _finish_record(self, cell: TestCell, *, end_ns: int, status: str, reason: str | None) -> None:
        record = cell.record
        duration = max((end_ns - cell.started_ns) / NS_PER_S, 1e-3)
        load = record.load
        load.duration_s = round(duration, 3)
        load.warmup_s = ramp_warmup_s(load.users, load.spawn_rate, duration)
        record.status, record.reason, record.ended_ns, record.load_ended_ns = status, reason, end_ns, end_ns
        ui = record.extra.get("ui")
        if isinstance(ui, dict) and ui.get("target_sampled"):
            copy_server_rows(self.root / SESSION_SERVER_CSV, cell.path / SERVER_CSV,
                             cell.started_ns - SERVER_LEAD_NS, end_ns + SERVER_TAIL_NS)
        record.write(cell.path)

    def stop_test(self, *, now_ns: int, reason: str | None = None, status: str = "ok") -> TestCell | None:
        """Record the current test's stop: run.json final, server.csv rows copied in."""
        cell = self.current
        if cell is None or not cell.running:
            return None
        cell.ended_ns = now_ns
        self._finish_record(cell, end_ns=now_ns, status=status, reason=reason)
        return cell

    def snapshot(self, cell: TestCell, *, now_ns: int) -> None:
        """Make a running test's folder reportable as it stands now.

        run.json says ``partial`` with the reason (rewritten as ``ok`` at the
        stop); server.csv gets the rows so far.
        """
        record = dataclasses.replace(cell.record, load=cell.record.load.copy())
        shadow = TestCell(cell.name, cell.path, cell.started_ns, record)
        self._finish_record(shadow, end_ns=now_ns, status="partial",
                            reason=f"report of a test still running, as of {iso(now_ns)}")


def copy_server_rows(source: Path, dest: Path, start_ns: int, end_ns: int) -> int:
    """Copy the header and the rows of ``source`` with ``start_ns <= t_ns <= end_ns``; returns the rows."""
    rows: list[list[str]] = []
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(open(source, newline="", encoding="utf-8"))
        except OSError:
            return 0
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or "t_ns" not in header:
            return 0
        at = header.index("t_ns")
        for row in reader:
            try:
                if start_ns <= int(row[at]) <= end_ns and len(row) == len(header):
                    rows.append(row)
            except (IndexError, ValueError):
                continue  # a line being written right now
    with atomic_open(dest, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def close_running_cells(root: Path, *, reason: str, now_ns: int) -> list[str]:
    """Mark every cell whose run.json still says ``running`` as ``partial``; their names.

    For a session that ended (Locust killed) while a test ran: the samples
    on disk are kept and reportable, and the report says why it is partial.
    """
    closed = []
    session = UiSession(root)
    for path in session.cells():
        try:
            record = RunRecord.read(path)
        except (OSError, ValueError):
            continue
        if record.status != RUNNING:
            continue
        cell = TestCell(path.name, path, record.started_ns or now_ns, record)
        session._finish_record(cell, end_ns=max(now_ns, cell.started_ns + 1), status="partial", reason=reason)
        closed.append(path.name)
    return closed
