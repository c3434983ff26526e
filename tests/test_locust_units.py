"""Pure logic of the Locust side: pacing, settings, recorder, watchdog.

Nothing here imports locust: importing it monkey-patches the whole pytest
process. The Locust runs themselves are subprocesses (test_locust_scenarios).
"""
from __future__ import annotations

import argparse
import json
import time

import pyarrow.parquet as pq
import pytest

from loadtests.pacing import Pacer
from loadtests.runtime.fanout import FanoutLedger
from loadtests.runtime.options import LoadSettings
from loadtests.runtime.recorder import Recorder
from loadtests.runtime.watchdog import Watchdog, deadline_seconds, parse_timespan, run_time_from_argv
from sioharness.core.schema import SAMPLE_SCHEMA, SHARD_GLOB

MS = 1_000_000


def test_closed_pacer_never_catches_up():
    pacer = Pacer(rate=100.0)  # 10 ms
    assert pacer.next_due(0) == 0
    assert pacer.next_due(1 * MS) == 10 * MS
    # The emit at 10 ms took 35 ms: the next one is due now, not three late slots.
    assert pacer.next_due(45 * MS) == 20 * MS
    assert pacer.next_due(45 * MS) == 55 * MS


def test_open_pacer_keeps_the_schedule_and_sends_the_backlog():
    pacer = Pacer(rate=100.0, open_model=True)
    assert [pacer.next_due(0) for _ in range(1)] == [0]
    # A 35 ms stall: the missed slots are still due, each at its own time.
    assert [pacer.next_due(45 * MS) for _ in range(5)] == [10 * MS, 20 * MS, 30 * MS, 40 * MS, 50 * MS]


def test_pacer_phase_spreads_the_first_slot_and_rate_zero_is_unpaced():
    assert Pacer(rate=10.0, phase=0.5).next_due(0) == 50 * MS
    assert not Pacer(rate=0.0).paced


def test_ledger_settles_only_when_no_send_is_in_flight_and_deliveries_caught_up():
    ledger = FanoutLedger()
    ledger.inflight["r"] += 1
    ledger.delivered["r"] += 2  # deliveries can arrive before the sender reads its ack
    assert not ledger.settled("r")
    ledger.inflight["r"] -= 1
    ledger.expected["r"] += 3
    assert not ledger.settled("r")
    ledger.delivered["r"] += 1
    assert ledger.settled("r")
    assert ledger.totals() == (3, 3)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"open_model": True}, "--open-model needs an --emit-rate > 0"),
        ({"room_size": 0}, "--room-size must be >= 1"),
        ({"senders_per_room": 5, "room_size": 4}, "--senders-per-room must be 1..room size"),
        ({"namespace": "bench"}, "--namespace must start with '/'"),
        ({"transport": "carrier-pigeon"}, "--transport must be one of websocket, polling"),
        ({"payload_bytes": "lots"}, "--payload-bytes must be an integer"),
    ],
)
def test_settings_reject_bad_values_naming_the_option(overrides, fragment):
    options = argparse.Namespace(**overrides)
    with pytest.raises(ValueError, match=fragment):
        LoadSettings.from_options(options)


def test_settings_take_web_ui_strings_and_fill_defaults():
    options = argparse.Namespace(payload_bytes="128", emit_rate="2.5", open_model="true", results_dir="",
                                 auth_token="t")
    settings = LoadSettings.from_options(options)
    assert (settings.payload_bytes, settings.emit_rate, settings.open_model) == (128, 2.5, True)
    assert settings.results_dir == "" and settings.room_size == 10
    assert settings.auth == {"token": "t"}
    assert LoadSettings.from_options(None) == LoadSettings()


def test_recorder_writes_one_row_per_event_in_the_schema(tmp_path):
    recorder = Recorder(tmp_path / "cell")
    recorder.on_request(request_type="ack", name="broadcast", response_time=0.4567, response_length=99,
                        exception=None,
                        context={"kind": "ack", "t_ns": 123, "user": 7, "expected": 12, "bytes": 99})
    recorder.on_request(request_type="connect", name="connect", response_time=2.0, response_length=0,
                        exception=ConnectionRefusedError("nope"), context={"kind": "connect", "t_ns": 5})
    # An event without our context (Locust's SocketIOUser style) still maps to a kind.
    recorder.on_request(request_type="WSC", name="echo", response_time=1.0, response_length=3,
                        exception=None, context={}, start_time=1.5)
    shard = recorder.flush()
    assert recorder.flush() is None  # nothing buffered: no empty shard
    assert shard is not None and shard.match(SHARD_GLOB)
    # No temp file left: the shard and the recorder's accounting only.
    accounting = f"recorder-{recorder.tag}.json"
    assert sorted(p.name for p in (tmp_path / "cell").iterdir()) == sorted([shard.name, accounting])
    assert json.loads((tmp_path / "cell" / f"recorder-{recorder.tag}.json").read_text()) == {
        "worker": recorder.worker, "taken": 3, "written": 3, "pending": 0, "dropped": 0, "errors": []}
    table = pq.read_table(shard)
    assert table.schema.equals(SAMPLE_SCHEMA)
    rows = table.to_pylist()
    assert rows[0] == {"t_ns": 123, "kind": "ack", "name": "broadcast", "latency_us": pytest.approx(456.7),
                       "ok": True, "bytes": 99, "worker": recorder.worker, "user": 7, "expected": 12,
                       "error": None}
    assert (rows[1]["ok"], rows[1]["error"]) == (False, "ConnectionRefusedError: nope")
    assert (rows[2]["kind"], rows[2]["t_ns"], rows[2]["user"]) == ("ack", 1_500_000_000, -1)
    assert recorder.recorded == recorder.written == 3


def test_recorder_flushes_early_when_the_buffer_is_full(tmp_path):
    recorder = Recorder(tmp_path, max_rows=2)
    for i in range(5):
        recorder.on_request(request_type="ack", name="echo", response_time=1.0, context={"t_ns": i})
    assert len(recorder.shards) == 2
    recorder.flush()
    assert sum(pq.read_metadata(p).num_rows for p in recorder.shards) == 5


def test_watchdog_flushes_then_exits_at_the_deadline():
    calls: list[str] = []
    exited: list[int] = []
    dog = Watchdog([lambda: calls.append("flush")], exit=exited.append)
    dog.arm(0.2)
    deadline = time.monotonic() + 10
    while not exited and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exited == [3]
    assert calls == ["flush"]
    assert dog.expired


def test_watchdog_disarmed_does_not_fire_and_a_hung_flush_does_not_block_the_exit():
    exited: list[int] = []
    dog = Watchdog([], exit=exited.append)
    dog.arm(0.1)
    dog.disarm()
    time.sleep(0.4)
    assert exited == []

    def hang() -> None:
        time.sleep(30)

    dog = Watchdog([hang], exit=exited.append, flush_timeout=0.2)
    dog.arm(0.05)
    deadline = time.monotonic() + 10
    while not exited and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exited == [3]


def test_deadline_arithmetic_and_run_time_recovery():
    assert deadline_seconds(run_time=10, stop_timeout=5, grace=15) == 30
    assert deadline_seconds(run_time=None, stop_timeout=5, grace=15) is None
    assert deadline_seconds(run_time=10, stop_timeout=5, grace=15, run_deadline=7) == 7
    assert run_time_from_argv(["--headless", "-t", "1m30s", "EchoUser"], {}) == 90
    assert run_time_from_argv(["--run-time", "20"], {}) == 20
    assert run_time_from_argv([], {"LOCUST_RUN_TIME": "5s"}) == 5
    assert run_time_from_argv([], {}) is None
    assert parse_timespan("2h") == 7200
    assert parse_timespan("soon") is None
    assert parse_timespan("") is None
