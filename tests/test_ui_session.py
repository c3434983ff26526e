"""A results folder per test started from the web UI, and its run.json (files only, no Locust)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from reports.read_cell import read_run_json
from sioharness.core.run_record import ramp_warmup_s as warmup_for
from sioharness.core.scenarios import scenario_of_classes
from sioharness.webui.session import (
    SESSION_JSON,
    SESSION_SERVER_CSV,
    UiSession,
    close_running_cells,
    copy_server_rows,
    ui_cell_name,
)

S = 1_000_000_000
T0 = 1_790_000_000 * S


def options(**overrides) -> SimpleNamespace:
    """What Locust's parsed_options hold after a start from the form."""
    values = dict(num_users=8, spawn_rate=4.0, run_time=None, payload_bytes=256, emit_rate=25.0, room_size=5,
                  senders_per_room=2, namespace="/bench", transport="websocket", open_model=True,
                  call_timeout=5.0, results_dir="")
    return SimpleNamespace(**(values | overrides))


def server_csv(path: Path, times: list[int]) -> None:
    path.write_text("t_ns,cpu_user_s,cpu_system_s,rss_bytes,threads,fds,procs,connected\n"
                    + "".join(f"{t},1.0,0.1,1000,1,5,1,0\n" for t in times))


def test_scenario_and_cell_names() -> None:
    assert scenario_of_classes(["EchoUser"]) == "echo"
    assert scenario_of_classes(["RoomsUser", "ChurnUser"]) == "churn+rooms"
    assert scenario_of_classes(["MyOwnUser"]) == "myown"


def test_cell_names_never_collide(tmp_path: Path) -> None:
    at = dt.datetime(2026, 11, 26, 3, 15, 12)
    first = ui_cell_name("gevent", "dev", "echo", at, tmp_path)
    assert first == "gevent-dev--echo--031512"
    (tmp_path / first).mkdir()
    assert ui_cell_name("gevent", "dev", "echo", at, tmp_path) == "gevent-dev--echo--031512-2"
    assert ui_cell_name("a b", "dev/x", "echo", at, tmp_path) == "a_b-dev_x--echo--031512"


def test_warmup_is_the_ramp_at_most_a_quarter() -> None:
    assert warmup_for(8, 4.0, 20.0) == 2.0
    assert warmup_for(100, 1.0, 20.0) == 5.0
    assert warmup_for(None, None, 20.0) == 0.0


def test_each_test_start_gets_its_folder_and_a_run_json_reports_accept(tmp_path: Path) -> None:
    (tmp_path / SESSION_JSON).write_text(json.dumps({"run_id": "ui-20261126-031500", "target_pid": 42,
                                                     "target_url": "http://127.0.0.1:5000",
                                                     "versions": {"python": "3.11"}, "machine": {"cores": 2}}))
    server_csv(tmp_path / SESSION_SERVER_CSV, [T0 - 5 * S, T0 - S, T0 + 3 * S, T0 + 10 * S, T0 + 20 * S])
    session = UiSession(tmp_path)
    cell = session.start_test(mode="gevent", server="dev", user_classes=["EchoUser"], options=options(),
                              host="http://127.0.0.1:5000", workers=2, now_ns=T0, command=["locust"])
    running = json.loads((cell.path / "run.json").read_text())
    assert running["status"] == "running" and running["run_id"] == "ui-20261126-031500"
    assert running["scenario"] == "echo" and running["mode"] == "gevent" and running["ui"]["workers"] == 2
    assert running["load"]["payload_bytes"] == 256 and running["load"]["emit_rate"] == 25.0
    assert running["load"]["senders_per_room"] == 2 and running["load"]["open_model"] is True
    assert running["ui"]["target_sampled"] is True

    session.stop_test(now_ns=T0 + 10 * S)
    final = json.loads((cell.path / "run.json").read_text())
    assert final["status"] == "ok" and final["load_started_ns"] == T0 and final["load_ended_ns"] == T0 + 10 * S
    assert final["load"]["duration_s"] == 10.0 and final["load"]["warmup_s"] == 2.0
    # server.csv: 2 s before the start (the RSS baseline) to 1 s after the stop.
    rows = (cell.path / "server.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [T0 - S, T0 + 3 * S, T0 + 10 * S]
    problems: list[str] = []
    notes: list[str] = []
    assert read_run_json(cell.path, problems, notes).cell == cell.name and problems == []

    second = session.start_test(mode="gevent", server="dev", user_classes=["ChurnUser"], options=options(),
                                host="http://127.0.0.1:5000", workers=2, now_ns=T0 + 60 * S)
    assert second.path != cell.path and second.name.startswith("gevent-dev--churn-")
    session.stop_test(now_ns=T0 + 70 * S)
    # Another host typed into the form: the session's sampling is not that target's.
    other = session.start_test(mode="asgi", server="uvicorn", user_classes=["EchoUser"], options=options(),
                               host="http://127.0.0.1:6000", workers=2, now_ns=T0 + 80 * S)
    session.stop_test(now_ns=T0 + 90 * S)
    assert other.record.extra["ui"]["target_sampled"] is False and not (other.path / "server.csv").exists()
    assert [p.name for p in session.cells()] == [cell.name, second.name, other.name]
    assert session.cell_path(cell.name) == cell.path
    for bad in ("../x", "", ".hidden", "no-such-cell", f"{cell.name}/run.json"):
        assert session.cell_path(bad) is None


def test_a_snapshot_report_says_partial_and_leaves_the_test_running(tmp_path: Path) -> None:
    session = UiSession(tmp_path)
    cell = session.start_test(mode="threading", server="dev", user_classes=["EchoUser"], options=options(),
                              host="http://127.0.0.1:5000", workers=1, now_ns=T0)
    session.snapshot(cell, now_ns=T0 + 4 * S)
    shot = json.loads((cell.path / "run.json").read_text())
    assert shot["status"] == "partial" and "still running" in shot["reason"] and shot["load_ended_ns"] == T0 + 4 * S
    assert cell.running and cell.record.status == "running" and cell.record.load_ended_ns is None


def test_a_new_start_closes_an_unstopped_test(tmp_path: Path) -> None:
    session = UiSession(tmp_path)
    first = session.start_test(mode="gevent", server="dev", user_classes=["EchoUser"], options=options(),
                               host=None, workers=1, now_ns=T0)
    session.start_test(mode="gevent", server="dev", user_classes=["EchoUser"], options=options(),
                       host=None, workers=1, now_ns=T0 + 5 * S)
    record = json.loads((first.path / "run.json").read_text())
    assert record["status"] == "partial" and "new test started" in record["reason"]


def test_closing_a_session_marks_running_cells_partial(tmp_path: Path) -> None:
    session = UiSession(tmp_path)
    done = session.start_test(mode="gevent", server="dev", user_classes=["EchoUser"], options=options(),
                              host=None, workers=1, now_ns=T0)
    session.stop_test(now_ns=T0 + 3 * S)
    UiSession(tmp_path).start_test(mode="gevent", server="dev", user_classes=["IdleUser"], options=options(),
                                   host=None, workers=1, now_ns=T0 + 10 * S)
    closed = close_running_cells(tmp_path, reason="session ended", now_ns=T0 + 15 * S)
    assert len(closed) == 1 and closed[0].startswith("gevent-dev--idle-")
    record = json.loads((tmp_path / closed[0] / "run.json").read_text())
    assert record["status"] == "partial" and record["reason"] == "session ended"
    assert record["load"]["duration_s"] == 5.0
    assert json.loads((done.path / "run.json").read_text())["status"] == "ok"
    assert close_running_cells(tmp_path, reason="again", now_ns=T0 + 20 * S) == []


@pytest.mark.parametrize("content", ["", "a,b\n1,2\n"])
def test_copy_server_rows_needs_a_t_ns_column(tmp_path: Path, content: str) -> None:
    (tmp_path / "in.csv").write_text(content)
    assert copy_server_rows(tmp_path / "in.csv", tmp_path / "out.csv", 0, 10) == 0
    assert copy_server_rows(tmp_path / "missing.csv", tmp_path / "out.csv", 0, 10) == 0


def test_copy_server_rows_skips_a_half_written_line(tmp_path: Path) -> None:
    server_csv(tmp_path / "in.csv", [T0, T0 + S])
    with (tmp_path / "in.csv").open("a") as handle:
        handle.write(f"{T0 + 2 * S},1.0")
    assert copy_server_rows(tmp_path / "in.csv", tmp_path / "out.csv", T0, T0 + 5 * S) == 2


def test_run_json_needs_only_what_the_locust_image_carries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Locust image has sioharness/core/, loadtests/, reports/ and sioharness/webui/, not the orchestration."""
    import builtins

    real_import = builtins.__import__
    absent = ("sioharness.bench", "sioharness.dockertools", "benchmarks")

    def image_import(name, *args, **kwargs):
        if name in absent or name.startswith(tuple(f"{prefix}." for prefix in absent)):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", image_import)
    cell = UiSession(tmp_path).start_test(mode="gevent", server="dev", user_classes=["EchoUser"],
                                          options=options(), host=None, workers=1, now_ns=T0)
    record = json.loads((cell.path / "run.json").read_text())
    assert record["versions"]["locust"] and record["machine"]["cores"]
