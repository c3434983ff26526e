"""GC pauses: the recorder's CSV, the --gc setting, and the overlap of slow samples with pauses (no network)."""
from __future__ import annotations

import gc
import time
from pathlib import Path

import numpy as np
import pytest

from reports.gc_pauses import max_per_bin, merge_intervals, overlap_share, overlapping, read_gc_pauses
from sioharness.core import gc_pauses
from sioharness.core.gc_pauses import GC_CSV_COLUMNS, GcPauseRecorder, record_gc_pauses
from target_app.gc_setting import GcSetting
from target_app.settings import parse_settings

MS = 1_000_000


# --- overlap -----------------------------------------------------------------------------

def test_intervals_merge_into_disjoint_spans() -> None:
    starts, ends = merge_intervals(np.array([50, 0, 10, 100]), np.array([60, 20, 15, 100]))
    assert starts.tolist() == [0, 50, 100]
    assert ends.tolist() == [20, 60, 100]


def test_a_sample_overlaps_when_its_send_to_answer_interval_meets_a_pause() -> None:
    pause_start, pause_end = np.array([100, 300]), np.array([110, 400])
    begin = np.array([0, 90, 105, 111, 250, 400, 401, 50])
    end = np.array([99, 100, 106, 299, 260, 500, 900, 1000])
    # before; touches the start; inside; between; between; touches the end; after; spans both
    assert overlapping(begin, end, pause_start, pause_end).tolist() == [
        False, True, True, False, False, True, False, True]


def test_overlap_share_counts_slow_samples_in_flight_during_a_pause() -> None:
    # Four samples of 5 ms sent 0, 20, 40, 60 ms after t0; one 10 ms pause at 38 ms.
    t0 = 1_700_000_000_000_000_000
    t = t0 + np.array([0, 20, 40, 60]) * MS
    hits, share = overlap_share(t, np.full(4, 5000.0), np.array([t0 + 38 * MS]), np.array([10 * MS]))
    assert (hits, share) == (1, 0.25)
    # A pause that ends 1 ms before the next sample leaves every sample alone.
    assert overlap_share(t, np.full(4, 5000.0), np.array([t0 + 6 * MS]), np.array([13 * MS])) == (0, 0.0)
    assert overlap_share(t[:0], np.array([]), np.array([t0]), np.array([MS])) == (0, None)
    assert overlap_share(t, np.full(4, 5000.0), np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == (0, 0.0)


def test_max_per_bin_keeps_the_worst_sample_of_each_bucket() -> None:
    start = 1_700_000_000_000_000_000
    t = start + np.array([0, 10, 60, 149, 151]) * MS
    frame = max_per_bin(t, np.array([1.0, 7.0, 2.0, 3.0, 9.0]), start, start + 150 * MS, 50 * MS)
    assert frame["t_s"].tolist() == [0.0, 0.05, 0.1]
    assert frame["max_us"].tolist() == [7.0, 2.0, 3.0]  # the sample at 151 ms is after the end


# --- the recorder's CSV -------------------------------------------------------------------

def test_recorded_pauses_round_trip_through_gc_csv(tmp_path: Path) -> None:
    path = tmp_path / "gc.csv"
    before = time.time_ns()
    recorder = GcPauseRecorder(path, flush_interval_s=60.0).start()
    try:
        for _ in range(3):
            gc.collect()
        # The callback queues; only a flush writes (no I/O inside a collection).
        assert path.read_text().splitlines() == [",".join(GC_CSV_COLUMNS)]
        assert recorder.flush() >= 3
    finally:
        recorder.stop()
    after = time.time_ns()
    pauses, files = read_gc_pauses(tmp_path, notes := [])
    assert files == ["gc.csv"] and not notes
    assert pauses is not None and len(pauses) == recorder.written >= 3
    assert (pauses["generation"] == 2).sum() >= 3  # gc.collect() collects the oldest generation
    assert pauses["t_ns"].between(before, after).all()
    assert (pauses["duration_ns"] > 0).all()
    assert (pauses["t_ns"] + pauses["duration_ns"] <= after).all()


def test_stopped_recorder_leaves_the_collector_alone(tmp_path: Path) -> None:
    recorder = GcPauseRecorder(tmp_path / "gc.csv").start()
    recorder.stop()
    written = recorder.written
    gc.collect()
    assert recorder.flush() == 0 and recorder.written == written
    assert recorder._callback not in gc.callbacks


def test_a_full_queue_counts_what_it_drops(tmp_path: Path) -> None:
    recorder = GcPauseRecorder(tmp_path / "gc.csv", flush_interval_s=60.0, max_pending=2).start()
    try:
        for _ in range(5):
            gc.collect()
    finally:
        recorder.stop()
    assert recorder.written == 2 and recorder.dropped >= 3


def test_unusable_rows_are_left_out_and_said(tmp_path: Path) -> None:
    (tmp_path / "gc.csv").write_text("t_ns,duration_ns,generation,collected,uncollectable\n"
                                     "1700000000000000000,5000,0,1,0\nnot-a-number,1,0,0,0\n1700000000000001000,-4,0,0,0\n")
    pauses, _ = read_gc_pauses(tmp_path, notes := [])
    assert pauses is not None and len(pauses) == 1
    assert notes == ["gc.csv: 2 unusable row(s) left out"]
    (tmp_path / "gc.csv").write_text("when,how_long\n1,2\n")
    pauses, _ = read_gc_pauses(tmp_path, notes := [])
    assert pauses is None and "no column t_ns" in notes[0]


def test_record_gc_pauses_writes_where_the_runner_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc_pauses, "_recorder", None)
    monkeypatch.delenv(gc_pauses.GC_LOG_ENV, raising=False)
    assert record_gc_pauses() is None  # no path, no $SIO_GC_LOG: nothing to do
    monkeypatch.setenv(gc_pauses.GC_LOG_ENV, str(tmp_path / "gc.csv"))
    recorder = record_gc_pauses()
    try:
        assert recorder is not None and recorder.path == tmp_path / "gc.csv"
        assert record_gc_pauses() is recorder  # once per process
    finally:
        assert recorder is not None
        recorder.stop()


# --- the target's --gc setting --------------------------------------------------------------

@pytest.mark.parametrize("text, canonical, variant", [
    ("default", "default", ""),
    ("freeze", "freeze", "gc-freeze"),
    ("OFF", "off", "gc-off"),
    ("thresholds:700,10,10", "thresholds:700,10,10", "gc-t700-10-10"),
    ("thresholds:50000", "thresholds:50000", "gc-t50000"),
])
def test_gc_settings_parse_to_a_setting_and_a_cell_variant(text: str, canonical: str, variant: str) -> None:
    setting = GcSetting.parse(text)
    assert (str(setting), setting.variant) == (canonical, variant)


@pytest.mark.parametrize("text, message", [
    ("fast", "gc must be default, freeze, off, or thresholds"),
    ("thresholds", "gc must be"),
    ("thresholds:a,b", "1 to 3 integers"),
    ("thresholds:0", "--gc off disables collection"),
    ("thresholds:1,2,3,4", "1 to 3 integers"),
])
def test_bad_gc_settings_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_settings(["--gc", text])


def test_gc_flags_reach_the_settings_and_gunicorns_workers(tmp_path: Path) -> None:
    settings = parse_settings(["--gc", "freeze", "--gc-log", str(tmp_path / "gc.csv")])
    assert (settings.gc, settings.gc_log) == ("freeze", str(tmp_path / "gc.csv"))
    assert settings.to_env()["TARGET_GC"] == "freeze"
    assert parse_settings([], {"TARGET_GC": "off"}).gc == "off"
    with pytest.raises(ValueError, match="its folder does not exist"):
        parse_settings(["--gc-log", str(tmp_path / "missing" / "gc.csv")])


def test_the_setting_is_applied_to_the_collector() -> None:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    try:
        GcSetting.parse("thresholds:5000,20,30").apply()
        assert gc.get_threshold() == (5000, 20, 30)
        GcSetting.parse("off").apply()
        assert not gc.isenabled()
    finally:
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()
