"""The run record (run.json): one type for every writer and reader."""
from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from reports.read_cell import read_run_json
from sioharness.bench import cell as bench_cell
from sioharness.bench.profile import LoadShape, Scenario, TargetSpec
from sioharness.core.run_record import RUN_JSON, RecordedLoad, RunRecord, RunRecordError
from sioharness.dockertools import run as docker_run
from sioharness.webui.session import UiSession

T0 = 1_764_000_000_000_000_000
S = 1_000_000_000


def round_trips(path: Path) -> RunRecord:
    """Read a written run.json back, write it again, and check nothing changed."""
    raw = json.loads((path / RUN_JSON).read_text())
    record = RunRecord.from_json(raw)
    assert record.to_json() == raw
    problems: list[str] = []
    assert read_run_json(path, problems, []) == record
    return record


def test_native_cell_record_round_trips(tmp_path: Path) -> None:
    load = LoadShape(users=7, duration_s=5, warmup_s=1, emit_rate=3, open_model=True, processes=2)
    plan = bench_cell.CellPlan(run_id="r", target=TargetSpec("gevent", "dev"), scenario=Scenario("echo", load),
                               run_dir=tmp_path, extra_run_info={"profile": "quick"})
    record = bench_cell._run_record(plan, status="ok", reason=None, started_ns=T0, ended_ns=T0 + 9 * S,
                                    command=["locust"], target_url="http://127.0.0.1:5000",
                                    extra={"load_started_ns": T0 + S, "pinned_cores": {"target": [0]}})
    record.write(tmp_path)
    back = round_trips(tmp_path)
    assert back.cell == "gevent-dev--echo" and back.load_started_ns == T0 + S
    # Every recorded parameter of the table is kept, the runner's and the Locust options alike.
    assert back.load.to_json() == {"users": 7, "spawn_rate": 50.0, "duration_s": 5, "emit_rate": 3,
                                   "payload_bytes": 64, "room_size": 10, "senders_per_room": 1, "warmup_s": 1,
                                   "open_model": True, "namespace": "/", "transport": "websocket", "processes": 2,
                                   "call_timeout": 10.0, "drain_timeout": 3.0, "expected_from": "auto",
                                   "fail_fast_after": 5.0, "flush_interval": 2.0, "watchdog_grace": 15.0}
    assert back.load == RecordedLoad.of(load)
    assert back.extra == {"profile": "quick", "pinned_cores": {"target": [0]}}
    assert back.versions["locust"] and back.machine["cores"]


def test_web_ui_record_round_trips(tmp_path: Path) -> None:
    options = SimpleNamespace(num_users=8, spawn_rate=4.0, run_time=None, payload_bytes=256, emit_rate=25.0,
                              room_size=5, senders_per_room=2, namespace="/bench", transport="websocket",
                              open_model=True, call_timeout=5.0, results_dir="")
    session = UiSession(tmp_path)
    cell = session.start_test(mode="gevent", server="dev", user_classes=["EchoUser"], options=options,
                              host=None, workers=1, now_ns=T0)
    assert round_trips(cell.path).status == "running"
    session.stop_test(now_ns=T0 + 10 * S)
    back = round_trips(cell.path)
    assert back.status == "ok" and back.load.senders_per_room == 2 and back.load.duration_s == 10.0
    assert back.extra["ui"]["user_classes"] == ["EchoUser"]


def test_docker_record_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_run, "compose_version", lambda: "2.0.0")
    plan = docker_run.DockerRunPlan(mode="gevent", scenario="echo", load=LoadShape(users=6, duration_s=10),
                                    workers=3, run_id="d", results_root=tmp_path)
    record = docker_run.run_record(plan, status="ok", reason=None, started_ns=T0, ended_ns=T0 + 12 * S,
                                   base_image="img", versions={"python": "3.11"}, extra={"master_exit_code": 0})
    record.write(tmp_path)
    back = round_trips(tmp_path)
    # The Docker path records the whole load shape, as the native runner does.
    assert back.load.transport == "websocket" and back.load.namespace == "/" and back.load.processes == 3
    assert back.extra["docker"] == {"base_image": "img", "workers": 3, "compose": "2.0.0", "master_exit_code": 0}


@pytest.mark.parametrize("change, message", [
    ({"schema": 2}, "schema 2 is not supported"),
    ({"mode": 3}, "'mode' must be a string"),
    ({"started_ns": 1_764_000_000}, "is not epoch nanoseconds"),
    ({"ended_ns": T0 - 1}, "'ended_ns'"),
    ({"load": []}, "'load' must be an object"),
    ({"load": {"warmup_s": -1}}, "'load.warmup_s' must be a number >= 0"),
    ({"load": {"users": "five"}}, "'load.users' must be an integer"),
    ({"load": {"duration_s": float("inf")}}, "'load.duration_s' must be a finite number"),
    ({"command": "locust -f x"}, "'command' must be a list of strings"),
])
def test_a_bad_field_is_named(change: dict, message: str) -> None:
    good = RunRecord(run_id="r", cell="c", status="ok", started_ns=T0, ended_ns=T0 + S).to_json()
    RunRecord.from_json(good)
    with pytest.raises(RunRecordError, match=message.replace("(", r"\(")):
        RunRecord.from_json(good | change)


def test_extra_fields_cannot_overwrite_the_records_own() -> None:
    with pytest.raises(RunRecordError, match="would overwrite"):
        RunRecord(extra={"status": "ok"}).to_json()


def test_updated_sorts_known_fields_from_extra() -> None:
    record = RunRecord(mode="external").updated({"mode": "gevent", "load_ended_ns": T0, "faults": []})
    assert record.mode == "gevent" and record.load_ended_ns == T0 and record.extra == {"faults": []}


def test_iso_times_come_from_the_nanoseconds() -> None:
    data = RunRecord(started_ns=T0, ended_ns=T0 + S).to_json()
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0 / S))
    assert data["started_at"].startswith(expected) and data["ended_at"] is not None
