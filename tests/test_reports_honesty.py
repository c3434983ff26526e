"""The reports tell the truth about bad or incomplete runs: wild timestamps, lost
connections, stalls, memory kept after the load, samples lost by the recorder."""
from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from reports import analyze_cell, build_cell_report
from reports.metrics import MAX_TIME_BINS
from reports.summary import status_of
from reports.synthetic import (
    BASE_NS,
    NS_PER_S,
    samples_frame,
    write_locust_stats_json,
    write_recorder_file,
    write_run_json,
    write_server_csv,
    write_shard,
)

S = BASE_NS
MIB = 2**20
YEAR_NS = 365 * 24 * 3600 * NS_PER_S
INT64_MAX = np.iinfo(np.int64).max
USERS = 10
RUN_S = 12
ACK_RATE = 100  # acks per second, all users together


def _acks(start_s: float, end_s: float, *, hole: tuple[float, float] | None = None) -> np.ndarray:
    """Ack start times at ACK_RATE per second in [start_s, end_s), none inside ``hole``."""
    offsets = np.arange(round(start_s * ACK_RATE), round(end_s * ACK_RATE)) / ACK_RATE
    if hole is not None:
        offsets = offsets[(offsets < hole[0]) | (offsets >= hole[1])]
    return S + np.round(offsets * NS_PER_S).astype(np.int64)


def _frames(*, hole: tuple[float, float] | None = None, lost_at_s: float | None = None,
            acks: bool = True) -> list:
    """USERS clients connected at +0.05 s for the whole run (or lost at ``lost_at_s``), echo acks."""
    frames = [samples_frame(np.full(USERS, S + NS_PER_S // 20), "connect", "connect", 1000.0, user=np.arange(USERS))]
    if acks:
        frames.append(samples_frame(_acks(0.1, RUN_S, hole=hole), "ack", "echo", 500.0, bytes=64))
    if lost_at_s is not None:
        frames.append(samples_frame(np.full(USERS, S + round(lost_at_s * NS_PER_S)), "error", "connection", 0.0,
                                    ok=False, error="ConnectionResetError: connection lost", user=np.arange(USERS)))
    return frames


def _server(cell: Path, *, connected: object = USERS) -> None:
    t = np.arange(S - 2 * NS_PER_S, S + (RUN_S + 2) * NS_PER_S, NS_PER_S // 2)
    elapsed = (t - t[0]) / NS_PER_S
    write_server_csv(cell, t, 0.1 * elapsed, 0.0, 80 * MIB, connected=connected)


def _cell(cell: Path, frames: list, *, run: bool = True, server: bool = True, **run_fields: object) -> Path:
    for i, frame in enumerate(frames):
        write_shard(cell, frame, tag=f"w{i}")
    if run:
        fields = {"started_ns": S - 2 * NS_PER_S, "ended_ns": S + (RUN_S + 1) * NS_PER_S,
                  "load_started_ns": S, "load_ended_ns": S + RUN_S * NS_PER_S, **run_fields}
        write_run_json(cell, users=USERS, **fields)
    if server:
        _server(cell)
    return cell


def _bounded(fn, *, max_s: float = 30.0, max_mib: float = 150.0):
    """Run fn; assert it took bounded time and memory (numpy and pandas report to tracemalloc)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert elapsed < max_s, f"took {elapsed:.1f} s"
    assert peak < max_mib * MIB, f"peak {peak / MIB:.0f} MiB"
    return result


def _span_problem(summary: dict) -> str:
    lines = [p for p in summary["problems"] if "outside the run's span" in p]
    assert len(lines) == 1, summary["problems"]
    return lines[0]


# --- 1. timestamps outside the run's span ----------------------------------------------

@pytest.mark.parametrize("wild_t", [S + YEAR_NS, INT64_MAX], ids=["a-year-ahead", "int64-max"])
@pytest.mark.parametrize("with_run_json", [True, False], ids=["run-json", "no-run-json"])
def test_a_wild_timestamp_is_dropped_and_named(tmp_path: Path, wild_t: int, with_run_json: bool) -> None:
    frames = [*_frames(), samples_frame([wild_t], "ack", "echo", 500.0)]
    cell = _cell(tmp_path / "cell", frames, run=with_run_json)
    _, metrics, summary = _bounded(lambda: analyze_cell(cell))
    line = _span_problem(summary)
    assert line.startswith("dropped 1 sample(s) with t_ns outside the run's span")
    assert str(wild_t) in line and "after the span" in line
    assert summary["partial"] is True and summary["status"] == "partial"
    assert summary["samples"]["out_of_span"] == 1
    assert summary["throughput"]["acks_per_s"] == pytest.approx(ACK_RATE, rel=0.02)
    assert len(metrics.rates) <= RUN_S + 1


def test_load_ended_ns_a_year_ahead_is_ignored(tmp_path: Path) -> None:
    cell = _cell(tmp_path / "cell", _frames(), load_ended_ns=S + YEAR_NS)
    _, metrics, summary = _bounded(lambda: analyze_cell(cell))
    assert any(p.startswith("run.json load_ended_ns is 31,535,987.0 s after its ended_ns")
               for p in summary["problems"]), summary["problems"]
    assert summary["status"] == "partial"
    assert summary["window"]["end_source"] != "run.json load_ended_ns"
    assert summary["throughput"]["acks_per_s"] == pytest.approx(ACK_RATE, rel=0.02)
    assert len(metrics.rates) <= RUN_S + 1


def test_a_year_long_run_with_seconds_of_samples_is_binned_within_bounds(tmp_path: Path) -> None:
    """run.json agrees with itself on a year: nothing to ignore, but no series may hold a year
    of one-second buckets, and the silent, connected year is a stall."""
    cell = _cell(tmp_path / "cell", _frames(), ended_ns=S + YEAR_NS + NS_PER_S, load_ended_ns=S + YEAR_NS)
    report = _bounded(lambda: build_cell_report(cell, out_dir=tmp_path / "out"), max_mib=250.0)
    metrics, summary = report.metrics, report.summary
    assert len(metrics.rates) <= MAX_TIME_BINS and len(metrics.concurrency) <= MAX_TIME_BINS
    assert metrics.bin_s == pytest.approx(YEAR_NS / NS_PER_S / MAX_TIME_BINS, rel=0.01)
    assert any("s buckets (at most 20,000 buckets)" in n for n in summary["notes"])
    assert any(n.startswith("no samples in the last") for n in summary["notes"])
    assert summary["partial"] is True
    assert [p for p in summary["problems"] if p.startswith("stall: no answer for 31,535,988.0 s from +12.0 s")]
    # The totals over the rows still count every ack.
    assert metrics.rates["acks"].to_numpy() @ np.full(len(metrics.rates), metrics.bin_s) == pytest.approx(
        len(_acks(0.1, RUN_S)))


def test_server_rows_outside_the_span_are_dropped(tmp_path: Path) -> None:
    cell = _cell(tmp_path / "cell", _frames(), server=False)
    t = np.append(np.arange(S, S + RUN_S * NS_PER_S, NS_PER_S), [S + YEAR_NS, INT64_MAX // 2])
    write_server_csv(cell, t, np.arange(len(t)) * 0.1, 0.0, 80 * MIB)
    _, metrics, summary = _bounded(lambda: analyze_cell(cell))
    line = _span_problem(summary)
    assert line.startswith("dropped 2 server.csv row(s) with t_ns outside the run's span")
    assert metrics.server_timeline is not None and len(metrics.server_timeline) == RUN_S
    assert metrics.server_timeline["t_s"].max() < RUN_S


# --- 2. lost connections lower the level -----------------------------------------------

def test_lost_connections_lower_the_connected_level(tmp_path: Path) -> None:
    """10 users connected at +0.1 s, all lost at +5 s of a 12 s run: mean about 10 * 5 / 12."""
    cell = _cell(tmp_path / "cell", _frames(lost_at_s=5.0, acks=False), server=False)
    t = np.arange(S - 2 * NS_PER_S, S + (RUN_S + 2) * NS_PER_S, NS_PER_S // 2)
    write_server_csv(cell, t, 0.0, 0.0, 80 * MIB, connected=np.where(t < S + 5 * NS_PER_S, USERS, 0))
    _, metrics, summary = analyze_cell(cell)
    c = summary["connections"]
    assert c["mean_concurrent"] == pytest.approx(USERS * (5.0 - 0.051) / RUN_S, abs=1e-3)
    assert c["peak_concurrent"] == USERS
    assert list(metrics.concurrency["connected"]) == [USERS] * 5 + [0] * 7
    # The server's own count, beside the clients': rows at 0, 0.5, ..., 11.5 s, connected before 5 s.
    assert c["server_peak_concurrent"] == USERS
    assert c["server_mean_concurrent"] == pytest.approx(USERS * 10 / 24)
    text = (build_cell_report(cell, out_dir=tmp_path / "out", html=False).files[1]).read_text()
    assert "As the server counts them (server.csv connected): peak 10, mean 4.17." in text


# --- 3. stalls ---------------------------------------------------------------------------

def test_a_hole_while_connected_is_one_stall(tmp_path: Path) -> None:
    cell = _cell(tmp_path / "cell", _frames(hole=(5.0, 8.0)))
    report = build_cell_report(cell, out_dir=tmp_path / "out")
    summary = report.summary
    (stall,) = summary["stalls"]
    assert stall["start_s"] == pytest.approx(5.0, abs=0.02)
    assert stall["length_s"] == pytest.approx(3.0, abs=0.02)
    assert summary["stall_check"]["threshold_s"] == 1.0
    assert summary["stall_check"]["median_gap_s"] == pytest.approx(1 / ACK_RATE)
    assert [p for p in summary["problems"] if p.startswith("stall:")] == [
        "stall: no answer for 3.0 s from +5.0 s (clients connected; threshold 1.0 s)"]
    assert summary["status"] == "partial"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Stalls: 1 stretch(es), 3.0 s in all" in md


def test_a_steady_run_has_no_stall(tmp_path: Path) -> None:
    _, _, summary = analyze_cell(_cell(tmp_path / "cell", _frames()))
    assert summary["stalls"] == [] and summary["stall_check"]["checked"] is True
    assert summary["status"] == "ok", summary["problems"]


def test_a_hole_while_nobody_is_connected_is_no_stall(tmp_path: Path) -> None:
    frames = _frames(hole=(5.0, 8.0))
    frames.append(samples_frame(np.full(USERS, S + 5 * NS_PER_S), "disconnect", "disconnect", 300.0))
    frames.append(samples_frame(np.full(USERS, S + 8 * NS_PER_S - NS_PER_S // 100), "connect", "connect", 1000.0))
    _, _, summary = analyze_cell(_cell(tmp_path / "cell", frames))
    assert summary["stalls"] == []
    assert summary["status"] == "ok", summary["problems"]


def test_an_idle_run_is_not_checked_for_stalls(tmp_path: Path) -> None:
    _, _, summary = analyze_cell(_cell(tmp_path / "cell", _frames(acks=False), scenario="idle"))
    assert summary["stall_check"]["checked"] is False and summary["stalls"] == []
    assert summary["status"] == "ok", summary["problems"]


# --- 4. memory over time -------------------------------------------------------------------

def _memory_cell(cell: Path, *, after_mib: float | None) -> Path:
    """Load S..S+20 s, 2 s warm-up. 10 connects/s and 100 acks/s, each at the middle of its slot,
    so at S + k s exactly 10k connects and 100k acks have completed. RSS: 40 MiB before the load,
    50 MiB + 4 KiB per connect during it, ``after_mib`` after it."""
    run_s = 20
    connects = S + ((np.arange(10 * run_s) + 0.5) * NS_PER_S / 10).astype(np.int64)
    acks = S + ((np.arange(100 * run_s) + 0.5) * NS_PER_S / 100).astype(np.int64)
    write_shard(cell, samples_frame(connects, "connect", "connect", 0.0), tag="w0")
    write_shard(cell, samples_frame(acks, "ack", "echo", 0.0), tag="w1")
    write_run_json(cell, started_ns=S - 5 * NS_PER_S, ended_ns=S + (run_s + 6) * NS_PER_S, warmup_s=2.0,
                   load_started_ns=S, load_ended_ns=S + run_s * NS_PER_S)
    end_s = run_s + (6 if after_mib is not None else 0)
    k = np.arange(-3, end_s)
    rss = np.where(k < 0, 40 * MIB, 50 * MIB + 4096 * 10 * k)
    if after_mib is not None:
        rss = np.where(k >= run_s, after_mib * MIB, rss)
    write_server_csv(cell, S + k * NS_PER_S, 0.0, 0.0, rss)
    return cell


def test_rss_growth_per_connect_and_ack_and_memory_not_returned(tmp_path: Path) -> None:
    cell = _memory_cell(tmp_path / "cell", after_mib=200.0)
    report = build_cell_report(cell, out_dir=tmp_path / "out", html=False)
    server = report.summary["server"]
    assert server["rss_growth_bytes_per_1k_connects"] == pytest.approx(4096 * 1000)
    assert server["rss_growth_bytes_per_1k_acks"] == pytest.approx(4096 * 1000 / 10)
    assert server["rss_before_bytes"] == 40 * MIB
    assert server["rss_after_bytes"] == 200 * MIB
    assert server["rss_kept_bytes"] == 160 * MIB
    assert any(n.startswith("memory not returned: RSS after the load is 160.0 MiB above before it")
               for n in report.summary["notes"])
    md = report.files[1].read_text()
    assert "RSS growth / 1k connects" in md and "4,000.0 KiB" in md and "400.0 KiB" in md


def test_memory_returned_or_not_sampled_after_the_load(tmp_path: Path) -> None:
    _, _, returned = analyze_cell(_memory_cell(tmp_path / "a", after_mib=45.0))
    assert returned["server"]["rss_kept_bytes"] == 5 * MIB
    assert not any(n.startswith("memory not returned") for n in returned["notes"])
    _, _, unsampled = analyze_cell(_memory_cell(tmp_path / "b", after_mib=None))
    assert unsampled["server"]["rss_after_bytes"] is None and unsampled["server"]["rss_kept_bytes"] is None
    assert unsampled["server"]["rss_before_bytes"] == 40 * MIB


# --- 5. samples lost by the recorder ----------------------------------------------------------

def _rows(frames: list) -> int:
    return sum(len(f) for f in frames)


def test_recorder_accounting_showing_loss_fails_the_cell(tmp_path: Path) -> None:
    frames = _frames()
    cell = _cell(tmp_path / "cell", frames)
    rows = _rows(frames)
    write_recorder_file(cell, taken=rows + 100, written=rows, pending=40, dropped=60, tag="w0",
                        errors=["OSError: [Errno 28] No space left on device", "OSError: again"])
    _, _, summary = analyze_cell(cell)
    assert summary["status"] == "failed" and summary["partial"] is True
    expected = (f"recorder lost 100 of {rows + 100:,} samples (40 still pending, 60 dropped; "
                "disk full? first error: OSError: [Errno 28] No space left on device)")
    assert summary["problems"] == [expected]
    assert summary["samples_lost"] == [expected]
    samples = summary["samples"]
    assert (samples["recorder_taken"], samples["recorder_written"]) == (rows + 100, rows)
    assert (samples["recorder_pending"], samples["recorder_dropped"], samples["recorder_files"]) == (40, 60, 1)


def test_recorder_accounting_in_order_is_ok(tmp_path: Path) -> None:
    frames = _frames()
    cell = _cell(tmp_path / "cell", frames)
    write_recorder_file(cell, taken=_rows(frames) - 10, written=_rows(frames) - 10, tag="w0")
    write_recorder_file(cell, taken=10, written=10, tag="w1", worker="synthetic:2")
    _, _, summary = analyze_cell(cell)
    assert summary["status"] == "ok", summary["problems"]
    assert summary["samples"]["recorder_taken"] == summary["samples"]["recorder_written"] == _rows(frames)


def test_shards_holding_less_than_the_recorder_wrote_fail_the_cell(tmp_path: Path) -> None:
    frames = _frames()
    cell = _cell(tmp_path / "cell", frames)
    write_recorder_file(cell, taken=_rows(frames) + 50, written=_rows(frames) + 50)
    _, _, summary = analyze_cell(cell)
    assert summary["status"] == "failed"
    assert summary["problems"] == [f"the recorders wrote {_rows(frames) + 50:,} samples but the readable shards "
                                   f"hold {_rows(frames):,}: 50 lost (shards skipped or missing)"]


@pytest.mark.parametrize("content", ["{not json", '{"taken": 5, "written": 4}', '{"taken": 1, "written": 2, '
                                     '"pending": 0, "dropped": 0, "errors": []}', "[]"])
def test_malformed_recorder_file_is_a_problem(tmp_path: Path, content: str) -> None:
    cell = _cell(tmp_path / "cell", _frames())
    (cell / "recorder-w9.json").write_text(content)
    _, _, summary = analyze_cell(cell)
    (line,) = summary["problems"]
    assert line.startswith("recorder-w9.json unreadable (")
    assert summary["status"] == "partial"


def test_locust_counting_more_than_the_recorder_fails_the_cell(tmp_path: Path) -> None:
    frames = _frames()
    cell = _cell(tmp_path / "cell", frames)
    acks = len(frames[1])
    write_locust_stats_json(cell, [("connect", "connect", USERS, 0), ("ack", "echo", acks + 7, 0),
                                   ("", "Aggregated", acks + USERS + 7, 0)])
    _, _, summary = analyze_cell(cell)
    assert summary["status"] == "failed"
    assert summary["problems"] == [f"Locust counted {acks + 7:,} ack echo requests but the recorder wrote "
                                   f"{acks:,}: 7 samples lost"]
    echo = next(r for r in summary["locust"] if r["name"] == "echo")
    assert (echo["locust_requests"], echo["recorder_count"], echo["gap"]) == (acks + 7, acks, 7)


def test_recorder_holding_more_than_locust_is_partial_not_failed(tmp_path: Path) -> None:
    frames = _frames()
    cell = _cell(tmp_path / "cell", frames)
    acks = len(frames[1])
    write_locust_stats_json(cell, [("connect", "connect", USERS, 0), ("ack", "echo", acks - 3, 0)])
    _, _, summary = analyze_cell(cell)
    assert summary["status"] == "partial"
    (line,) = summary["problems"]
    assert line.startswith(f"the recorder wrote {acks:,} ack echo samples but Locust counted {acks - 3:,} requests")


def test_locust_compares_with_every_row_written_even_ones_the_report_dropped(tmp_path: Path) -> None:
    """A sample out of the run's span is dropped from the figures but was recorded: no Locust gap."""
    frames = [*_frames(), samples_frame([S + YEAR_NS], "ack", "echo", 500.0)]
    cell = _cell(tmp_path / "cell", frames)
    acks = len(frames[1]) + 1
    write_locust_stats_json(cell, [("connect", "connect", USERS, 0), ("ack", "echo", acks, 0)])
    _, _, summary = analyze_cell(cell)
    assert all(r["gap"] == 0 for r in summary["locust"])
    assert summary["status"] == "partial" and summary["samples_lost"] == []
    _span_problem(summary)


def test_status_rule() -> None:
    from sioharness.core.run_record import RunRecord

    assert status_of(None, False) == "ok"
    assert status_of(None, True) == "partial"
    assert status_of(None, True, samples_lost=True) == "failed"
    assert status_of(RunRecord(status="ok"), False, samples_lost=True) == "failed"
    assert status_of(RunRecord(status="partial"), False) == "partial"
    assert status_of(RunRecord(status="failed"), False) == "failed"


def test_the_target_handling_more_calls_than_samples_fails_the_cell(tmp_path: Path) -> None:
    frames = _frames()
    acks = len(frames[1])
    cell = _cell(tmp_path / "cell", frames, target_events={"echo": acks + 11})
    _, _, summary = analyze_cell(cell)
    assert summary["status"] == "failed"
    assert (f"the target handled {acks + 11:,} echo calls but the recorder has {acks:,} samples of them: "
            "11 samples lost") in summary["problems"]


def test_target_counts_that_match_the_samples_are_quiet(tmp_path: Path) -> None:
    frames = _frames()
    cell = _cell(tmp_path / "cell", frames, target_events={"echo": len(frames[1])})
    _, _, summary = analyze_cell(cell)
    assert not any("target" in p for p in summary["problems"]), summary["problems"]
