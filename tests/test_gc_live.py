"""Real targets write their GC pauses (``--gc-log``), and ``--gc`` changes what their collector does."""
from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from sioharness.bench.own_app import CommandTarget, launch_command
from sioharness.bench.profile import TargetSpec
from sioharness.bench.target_group import launch_group
from sioharness.core.gc_pauses import GC_CSV_COLUMNS
from target_app.process import start_target
from tests.sio_raw import RawPeer

pytestmark = pytest.mark.slow

#: acked echoes per target, over CONNECTIONS connections opened one after another: a closed
#: connection's session lingers in the server, so its objects fill generation 0 (an echo alone frees
#: what it allocates, and the collector counts allocations net of frees)
ECHOES = 800
CONNECTIONS = 50
#: long enough for two flushes of the recorder (every 0.5 s)
FLUSH_WAIT_S = 1.1
#: How long a test waits for rows it expects: the writer flushes every 0.5 s, later on a busy machine.
ROWS_DEADLINE_S = 30.0


def drive_echoes(url: str, count: int = ECHOES, connections: int = CONNECTIONS) -> None:
    payload = {"items": [{"n": i, "tags": ["a", "b"]} for i in range(20)]}
    for _ in range(connections):
        with RawPeer(url) as peer:
            for i in range(count // connections):
                assert peer.call("echo", payload, ack_id=i) == payload


def read_rows(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    assert tuple(frame.columns) == GC_CSV_COLUMNS
    return frame


def wait_for_rows(path: Path, enough: Callable[[pd.DataFrame], bool]) -> pd.DataFrame:
    """The file's rows once ``enough`` holds for them (the writer flushed what the test caused)."""
    deadline = time.monotonic() + ROWS_DEADLINE_S
    while True:
        rows = read_rows(path) if path.exists() else pd.DataFrame(columns=list(GC_CSV_COLUMNS))
        if enough(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


@pytest.mark.parametrize("mode, server", [("gevent", "dev"), ("asgi", "uvicorn"), ("eventlet", "dev"),
                                          ("gevent", "gunicorn")])
def test_default_gc_pauses_are_logged_while_serving(mode: str, server: str, tmp_path: Path) -> None:
    gc_log = tmp_path / "gc.csv"
    with start_target(mode, server, log_path=tmp_path / "target.log", extra_args=["--gc-log", str(gc_log)]) as target:
        started = time.time_ns()
        drive_echoes(target.url)
        ended = time.time_ns()
        rows = wait_for_rows(gc_log, lambda r: bool((r["t_ns"].between(started, ended)
                                                      & (r["generation"] == 0)).any()))
    served = rows.loc[rows["t_ns"].between(started, ended)]
    assert (served["generation"] == 0).sum() > 0, rows.tail()
    assert (served["duration_ns"] > 0).all()


@pytest.mark.parametrize("mode, server", [("gevent", "dev"), ("asgi", "uvicorn")])
def test_gc_off_runs_no_collection_and_freeze_still_collects(mode: str, server: str, tmp_path: Path) -> None:
    logs = {}
    for setting in ("off", "freeze"):
        logs[setting] = tmp_path / f"gc-{setting}.csv"
        with start_target(mode, server, log_path=tmp_path / f"target-{setting}.log",
                          extra_args=["--gc", setting, "--gc-log", str(logs[setting])]) as target:
            drive_echoes(target.url)
            if setting == "off":
                time.sleep(FLUSH_WAIT_S)  # nothing to wait for: absence shows after a flush interval
                rows = read_rows(logs[setting])
            else:
                rows = wait_for_rows(logs[setting], lambda r: bool((r["generation"] == 0).any()))
        if setting == "off":
            assert rows.empty, rows.head()
        else:
            assert (rows["generation"] == 0).sum() > 0


def test_the_cells_target_writes_gc_csv_into_the_cell_folder(tmp_path: Path) -> None:
    group = launch_group(TargetSpec("gevent", "dev"), tmp_path)
    try:
        drive_echoes(group.url, 300)
        rows = wait_for_rows(tmp_path / "gc.csv", lambda r: not r.empty)
    finally:
        group.stop()
    assert not rows.empty


def test_an_own_app_records_into_the_runners_sio_gc_log(tmp_path: Path) -> None:
    """One line in the app, ``record_gc_pauses()``, and the runner's ``$SIO_GC_LOG`` names the file."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        import gc, socket, sys, time
        from sioharness.core.gc_pauses import record_gc_pauses
        record_gc_pauses()
        listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
        for _ in range(3):
            gc.collect()
        time.sleep(30)
    """))
    spec = CommandTarget(f"{sys.executable} {app} {{port}}")
    target = launch_command(spec, log_path=tmp_path / "target.log", gc_log=tmp_path / "gc.csv")
    try:
        rows = wait_for_rows(tmp_path / "gc.csv", lambda r: len(r) >= 3)
    finally:
        target.stop()
    assert (rows["generation"] == 2).sum() >= 3, target.log_tail()
