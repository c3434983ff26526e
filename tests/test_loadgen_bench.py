"""The load-generator benchmark's arithmetic and its Artillery driver, without running a load."""
from __future__ import annotations

import stat
import subprocess
import sys

import psutil
import pytest
import yaml

from benchmarks import artillery, loadgen
from benchmarks.recorder_cost import GcClock, listener_seconds_per_sample


def _echo(client: str, cpu: float, **extra: float) -> dict:
    return {"phase": "echo", "client": client, "cpu_us_per_ack": cpu, "acks_per_s": 1000.0, **extra}


def test_ratios_are_of_medians_and_say_how_many_times_better_lean_is():
    measurements = [
        _echo("lean", 30, recorder_share=0.04), _echo("locust", 130), _echo("artillery", 80),
        _echo("lean", 20, recorder_share=0.06), _echo("locust", 140), _echo("artillery", 100),
        _echo("lean", 25, recorder_share=0.05), _echo("locust", 120), _echo("artillery", 90),
    ]
    rows = {row["metric"]: row for row in loadgen.summarize(measurements, ["echo"])}
    cpu = rows["cpu_us_per_ack"]
    assert (cpu["lean"], cpu["locust"], cpu["artillery"]) == (25, 130, 90)
    assert cpu["lean_vs_locust"] == pytest.approx(130 / 25)
    assert cpu["lean_vs_artillery"] == pytest.approx(90 / 25)
    assert rows["acks_per_s"]["lean_vs_locust"] == pytest.approx(1.0)  # higher is better: lean over rival
    assert rows["recorder_share"]["lean"] == pytest.approx(0.05)
    assert rows["recorder_share"]["lean_vs_locust"] is None  # a share is not compared

    checks = dict((text.split(" (")[0], ok) for text, ok in loadgen.verdicts(list(rows.values())))
    assert checks == {
        "lean client CPU per ack <= 1/4 of Locust's SocketIOUser's": True,   # 5.2x
        "lean client CPU per ack <= 1/3 of Artillery's socketio engine's": True,  # 3.6x
        "recorder <= 5% of the lean client's CPU": True,
    }
    table = loadgen.format_table(list(rows.values()))
    assert "5.20x" in table and "3.60x" in table and "5.0%" in table


def test_a_missed_goal_and_a_missing_rival_are_told_apart():
    rows = loadgen.summarize([_echo("lean", 40, recorder_share=0.07), _echo("locust", 132)], ["echo"])
    checks = loadgen.verdicts(rows)
    assert [ok for _, ok in checks] == [False, False]  # 3.3x < 4x; recorder 7% > 5%; no Artillery verdict
    assert "Artillery" not in " ".join(text for text, _ in checks)
    assert "n/a" in loadgen.format_table(rows)


def test_artillery_scenario_is_flat_out_acked_echo_over_websocket():
    document = yaml.safe_load(artillery.scenario("http://127.0.0.1:5000", users=50, payload_bytes=64))
    assert document["config"]["target"] == "http://127.0.0.1:5000"
    assert document["config"]["phases"] == [{"duration": 1, "arrivalCount": 50}]
    assert document["config"]["socketio"] == {"transports": ["websocket"]}
    (flow,) = document["scenarios"][0]["flow"]
    (step,) = flow["loop"]
    assert step["emit"] == {"channel": "echo", "data": "x" * 64}
    assert step["acknowledge"] == {}
    assert document["scenarios"][0]["engine"] == "socketio"


def test_artillery_errors_are_summed_from_its_reports():
    log = ("errors.ETIMEDOUT: ........ 3\nsocketio.emit: ...... 20384\n"
           "errors.Failed match: ......... 2\nvusers.failed: ........ 5\n")
    assert artillery.errors_in(log) == 5


def test_artillery_is_found_in_its_install_folder_or_explained(tmp_path, monkeypatch):
    monkeypatch.delenv(artillery.ENV_COMMAND, raising=False)
    command, why = artillery.find(str(tmp_path))
    if command is None and "node" in why:
        pytest.skip("node is not installed here")
    assert command is None and str(tmp_path) in why and "npm install" in why
    binary = tmp_path / "node_modules" / ".bin" / "artillery"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    assert artillery.find(str(tmp_path)) == ([str(binary)], "")


def test_tree_cpu_counts_the_children():
    busy = ("import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
            "print('burnt', flush=True)\ntime.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {busy!r}]);"
                               "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    root = psutil.Process(parent.pid)
    try:
        # The child says when it has burnt its 0.3 s of CPU (it shares the parent's stdout), however
        # long a busy machine took to start it; then it sleeps, so the count holds still.
        assert parent.stdout is not None and parent.stdout.readline().strip() == "burnt"
        assert artillery.tree_cpu_s(root) >= 0.25
    finally:
        for proc in [*root.children(recursive=True), root]:
            proc.kill()
        parent.wait()


def test_recorder_listener_cost_and_gc_clock_measure_something():
    per_sample = listener_seconds_per_sample(64, n=2_000)
    assert 0 < per_sample < 1e-3
    clock = GcClock()
    clock("start", {"generation": 0})
    clock("stop", {"generation": 0, "collected": 0})
    assert clock.collections == 1 and clock.seconds >= 0


def test_help_formats_and_a_missing_artillery_is_a_usage_error(capsys, monkeypatch, tmp_path):
    with pytest.raises(SystemExit) as done:
        loadgen.parse_args(["--help"])
    assert done.value.code == 0 and "--artillery" in capsys.readouterr().out
    monkeypatch.delenv(artillery.ENV_COMMAND, raising=False)
    with pytest.raises(SystemExit) as done:
        loadgen.parse_args(["--clients", "lean,artillery", "--artillery", str(tmp_path)])
    assert done.value.code == 2 and "--clients artillery" in capsys.readouterr().err
    args = loadgen.parse_args(["--artillery", str(tmp_path)])  # not asked for: left out
    assert args.client_list == ["lean", "locust"]


def test_the_reply_phase_compares_request_with_call_by_median() -> None:
    from benchmarks.loadgen import summarize_reply, verdicts

    runs = [{"phase": "reply", "client": style, "cpu_us_per_round_trip": cpu, "round_trips_per_s": 1000.0}
            for style, cpu in (("call", 50.0), ("request", 54.0), ("call", 40.0), ("request", 60.0),
                               ("call", 45.0), ("request", 44.0))]
    summary = summarize_reply(runs)
    assert summary is not None and summary["n"] == 3
    assert summary["request_over_call"] == pytest.approx(54.0 / 45.0)
    [(text, ok)] = verdicts([], summary)
    assert not ok and "request/call = 1.200" in text
    assert summarize_reply([]) is None
