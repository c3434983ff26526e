"""Reports computed shard by shard give the figures a whole-column computation gives, exactly.

The cell is written as a soak leaves it (a shard per recording process every
flush, names appearing shard after shard), with rows every check must drop;
``benchmarks/report_speed.py`` measures the same code on 100 million samples.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reports import ReportInputError, analyze_cell, shard_reader, shards
from reports.exact import exact_pandas_quantiles, order_by_bin
from reports.gc_pauses import gc_view, merge_intervals, overlapping
from reports.metrics import _median_gap, bin_seconds, compute_metrics
from reports.read_cell import load_cell
from reports.scan import PauseMap
from reports.summary import build_summary
from reports.synthetic import BASE_NS, NS_PER_S, generate_cell, samples_frame, write_shard
from tests.reports_fixtures import frame_figures

MS = 1_000_000


def _soak_cell(path: Path) -> Path:
    """60,000 samples over 40 s by two recording processes flushing every 2 s, with gc.csv,
    plus a shard of rows to drop and a late shard bringing new names."""
    cell = path / "gevent-dev--echo"
    generate_cell(cell, n_samples=60_000, duration_s=40.0, warmup_s=3.0, shards=2, flush_s=2.0,
                  scenario="echo", gc_pauses=True, load_bounds=True)
    t = BASE_NS + np.array([5, 6, 7, 8, 9, 10], dtype=np.int64) * NS_PER_S
    write_shard(cell, samples_frame(
        t, ["bogus", "ack", "ack", "ack", "push", "error"], ["echo", "echo", "echo", "room_message", "room_message",
                                                             "connection"],
        [1.0, -5.0, float("inf"), 700.0, 900.0, 0.0], ok=[True, True, True, True, True, False],
        error=[None, None, None, None, None, "ConnectionResetError: lost"]), tag="zz", seq=0)
    write_shard(cell, samples_frame([BASE_NS + 10**6 * NS_PER_S], "ack", "echo", 500.0), tag="zz", seq=1)
    return cell


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _soak_cell(tmp_path_factory.mktemp("soak"))


def test_latency_figures_are_the_whole_column_figures(soak: Path) -> None:
    data, metrics, summary = analyze_cell(soak)
    assert data.prescan is None  # taken by compute_metrics: the figures came from the first read
    samples = data.samples
    steady = frame_figures.steady(samples, metrics.window)
    assert len(samples) == metrics.samples_total and len(steady) == metrics.samples_steady
    expected = frame_figures.latency_table(steady)
    got = metrics.latency.loc[expected.index]
    columns = ["count", "ok", "min_us", "max_us", "p50_us", "p90_us", "p99_us", "p999_us"]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_exact=True, check_dtype=False,
                                  check_names=False)
    np.testing.assert_allclose(got["mean_us"], expected["mean_us"], rtol=1e-13)
    pd.testing.assert_frame_equal(metrics.percentile_curves, frame_figures.percentile_curves(steady),
                                  check_exact=True)
    timeline = frame_figures.latency_timeline(samples, metrics.window, bin_seconds(metrics.window))
    pd.testing.assert_frame_equal(metrics.latency_over_time, timeline, check_exact=True, check_dtype=False)
    assert summary["stall_check"]["median_gap_s"] == frame_figures.median_completion_gap_s(samples, metrics.window)
    # The dropped rows are named; the names a late shard brings are there, in pandas' order (above).
    assert any("1 sample(s) with unknown kind ['bogus']" in p for p in summary["problems"])
    assert any("2 successful sample(s) with a negative or non-finite" in p for p in summary["problems"])
    assert any("dropped 1 sample(s) with t_ns outside the run's span" in p for p in summary["problems"])
    assert {"room_message", "push:room_message"} <= set(metrics.latency_over_time["key"])


def test_gc_view_is_the_whole_column_gc_view(soak: Path) -> None:
    data, metrics, _ = analyze_cell(soak)
    assert metrics.gc is not None and metrics.gc.summary is not None
    expected = gc_view(data.path, data.samples, metrics.window, metrics.latency, metrics.main_event, data.run, [])
    assert expected.summary is not None
    assert metrics.gc.summary == expected.summary
    assert metrics.gc.summary["above_p99"] > 0 and metrics.gc.summary["above_p99_overlapping"] > 0
    pd.testing.assert_frame_equal(metrics.gc.timeline, expected.timeline, check_exact=True)
    pd.testing.assert_frame_equal(metrics.gc.pauses, expected.pauses, check_exact=True)


def _figures(data_metrics: tuple) -> tuple[str, dict[str, pd.DataFrame]]:
    data, metrics = data_metrics
    frames = {name: getattr(metrics, name) for name in ("latency", "rates", "concurrency", "latency_over_time",
                                                        "percentile_curves", "error_breakdown")}
    return json.dumps(build_summary(data, metrics), sort_keys=True, default=str), frames


def test_one_read_and_two_reads_give_the_same_report(soak: Path) -> None:
    """run.json gives the window: the figures are counted during the first read; the same
    figures come from a second read (another warm-up, or counts thrown away)."""
    once = load_cell(soak)
    assert once.prescan is not None
    twice = load_cell(soak)
    twice.prescan = None
    a_summary, a_frames = _figures((once, compute_metrics(once)))
    b_summary, b_frames = _figures((twice, compute_metrics(twice)))
    assert a_summary == b_summary
    for name, frame in a_frames.items():
        pd.testing.assert_frame_equal(frame, b_frames[name], check_exact=True)
    # Another warm-up than run.json's: a second read, with that warm-up.
    other = load_cell(soak)
    assert compute_metrics(other, warmup_s=0).window.warmup_s == 0


def test_shards_streamed_or_grouped_otherwise_give_the_same_report(soak: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shard streamed batch by batch (as one over HOLD_BYTES is), read one per group, in
    small chunks: the same figures."""
    expected = _figures(analyze_cell(soak)[:2])
    monkeypatch.setattr(shard_reader, "HOLD_BYTES", 0)
    monkeypatch.setattr(shard_reader, "GROUP_BYTES", 1)
    monkeypatch.setattr(shard_reader, "BATCH_ROWS", 500)
    monkeypatch.setattr(shards, "CHUNK_ROWS", 700)
    got = _figures(analyze_cell(soak)[:2])
    assert got[0] == expected[0]
    for name, frame in expected[1].items():
        pd.testing.assert_frame_equal(got[1][name], frame, check_exact=True)


def test_a_shard_changed_between_two_reads_is_an_input_error(tmp_path: Path) -> None:
    cell = tmp_path / "gevent-dev--echo"
    generate_cell(cell, n_samples=5_000, duration_s=10.0, warmup_s=0.0, shards=1, flush_s=2.0)
    data = load_cell(cell)
    assert data.prescan is None  # no load bounds in run.json: the figures need a second read
    shard = sorted(cell.glob("samples-*.parquet"))[2]
    shard.write_bytes(b"not parquet any more")
    with pytest.raises(ReportInputError, match="changed while the report was read"):
        compute_metrics(data)


def test_a_categorical_shard_names_only_the_kinds_its_rows_use(tmp_path: Path) -> None:
    """A shard written from pandas categoricals carries unused categories in its dictionary."""
    frame = samples_frame(BASE_NS + np.arange(3) * NS_PER_S, ["ack", "ack", "bogus"], "echo", 500.0)
    frame["kind"] = pd.Categorical(frame["kind"], categories=["ack", "bogus", "unused-kind"])
    generate_cell(tmp_path, n_samples=2_000, duration_s=5.0, warmup_s=0.0, shards=1)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "samples-cat-0000.parquet")
    summary = analyze_cell(tmp_path)[2]
    assert any("with unknown kind ['bogus']" in p for p in summary["problems"]), summary["problems"]


def test_pause_map_finds_exactly_the_samples_in_flight_during_a_pause() -> None:
    rng = np.random.default_rng(5)
    start = BASE_NS
    pause_t = start + np.sort(rng.integers(0, 20 * NS_PER_S, 300))
    pause_end = pause_t + rng.choice([1 * MS, 3 * MS, 30 * MS, 400 * MS], 300)
    pauses = PauseMap(*merge_intervals(pause_t, pause_end))
    sent = start + rng.integers(-NS_PER_S, 21 * NS_PER_S, 50_000)
    latency_us = rng.choice([0.0, 5.0, 4193.0, 4194.0, 4195.0, 9000.0, 2e6], 50_000) + rng.random(50_000)
    got = pauses.overlapping(sent, latency_us, np.ones(len(sent), dtype=bool))
    answered = sent + np.round(latency_us * 1000).astype(np.int64)
    assert np.array_equal(got, overlapping(sent, answered, pause_t, pause_end))
    assert 0 < got.sum() < len(got)
    only_some = rng.random(len(sent)) < 0.5
    assert np.array_equal(pauses.overlapping(sent, latency_us, only_some), got & only_some)


@pytest.mark.parametrize("gap_ns", [[0, 1, 140_000], [3 * NS_PER_S, 5 * NS_PER_S], [2**32 - 2, 2**32 - 1, 2**32]])
def test_median_gap_is_numpy_median(gap_ns: list[int]) -> None:
    rng = np.random.default_rng(len(gap_ns))
    for n in (1, 2, 3, 10, 1001, 4000):
        done = BASE_NS + np.cumsum(rng.choice(gap_ns, n)).astype(np.int64)
        expected = float(np.median(np.diff(done))) if n > 1 else 0.0
        assert _median_gap(done) == expected


def test_exact_quantiles_are_pandas_and_bins_regroup_every_value() -> None:
    rng = np.random.default_rng(9)
    for n in (1, 2, 7, 1000, 4097):
        values = rng.lognormal(6, 1.2, n)
        qs = [0.5, 0.9, 0.99, 0.999]
        expected = pd.Series(values).groupby(np.zeros(n, dtype=int)).quantile(qs).to_numpy()
        assert exact_pandas_quantiles(values.copy(), qs) == list(expected)
    bins = rng.integers(0, 50, 10_000).astype(np.uint16)
    values = rng.random(10_000)
    flags = (rng.random(10_000) < 0.5).astype(np.uint8)
    halves = [values[:6000], values[6000:]], [bins[:6000], bins[6000:]], [flags[:6000], flags[6000:]]
    by_bin, flags_by_bin, starts = order_by_bin(*halves, n_bins=50)
    for b in range(50):
        mine = np.sort(by_bin[starts[b]:starts[b + 1]])
        assert np.array_equal(mine, np.sort(values[bins == b]))
    assert sorted(zip(by_bin, flags_by_bin, strict=True)) == sorted(zip(values, flags, strict=True))
