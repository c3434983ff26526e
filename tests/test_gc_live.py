"""Real targets write their GC pauses (``--gc-log``), and ``--gc`` changes what their collector does."""
from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.own_app import CommandTarget, launch_command
from bench.profile import TargetSpec
from bench.target_group import launch_group
from core.gc_pauses import GC_CSV_COLUMNS
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


@pytest.mark.parametrize("mode, server", [("gevent", "dev"), ("asgi", "uvicorn"), ("eventlet", "dev"),
                                          ("gevent", "gunicorn")])
def test_default_gc_pauses_are_logged_while_serving(mode: str, server: str, tmp_path: Path) -> None:
    gc_log = tmp_path / "gc.csv"
    with start_target(mode, server, log_path=tmp_path / "target.log", extra_args=["--gc-log", str(gc_log)]) as target:
        started = time.time_ns()
        drive_echoes(target.url)
        time.sleep(FLUSH_WAIT_S)
        ended = time.time_ns()
        rows = read_rows(gc_log)
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
            time.sleep(FLUSH_WAIT_S)
            rows = read_rows(logs[setting])
        if setting == "off":
            assert rows.empty, rows.head()
        else:
            assert (rows["generation"] == 0).sum() > 0


def test_the_cells_target_writes_gc_csv_into_the_cell_folder(tmp_path: Path) -> None:
    group = launch_group(TargetSpec("gevent", "dev"), tmp_path)
    try:
        drive_echoes(group.url, 300)
        time.sleep(FLUSH_WAIT_S)
    finally:
        group.stop()
    assert not read_rows(tmp_path / "gc.csv").empty


def test_an_own_app_records_into_the_runners_sio_gc_log(tmp_path: Path) -> None:
    """One line in the app, ``record_gc_pauses()``, and the runner's ``$SIO_GC_LOG`` names the file."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        import gc, socket, sys, time
        from core.gc_pauses import record_gc_pauses
        record_gc_pauses()
        listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
        for _ in range(3):
            gc.collect()
        time.sleep(30)
    """))
    spec = CommandTarget(f"{sys.executable} {app} {{port}}")
    target = launch_command(spec, log_path=tmp_path / "target.log", gc_log=tmp_path / "gc.csv")
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(read_rows(tmp_path / "gc.csv")) < 3:
            time.sleep(0.2)
    finally:
        target.stop()
    rows = read_rows(tmp_path / "gc.csv")
    assert (rows["generation"] == 2).sum() >= 3, target.log_tail()
