"""Figures of synthetic folders come out exactly as constructed (tests/reports_fixtures/known_cell.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reports import analyze_cell
from reports.metrics import compute_metrics
from reports.read_cell import load_cell
from reports.synthetic import BASE_NS, NS_PER_S, samples_frame, write_run_json, write_shard
from tests.reports_fixtures.known_cell import (
    ACK_TIMEOUT,
    ECHO_OK,
    MIB,
    REFUSED,
    TIMED_OUT,
    W0,
    WINDOW_S,
    write_known_cell,
)

EXACT = 1e-6  # microseconds: exact to a millionth of the resolution asked for


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cell = write_known_cell(tmp_path_factory.mktemp("known") / "gevent-dev--echo")
    _, _, summary = analyze_cell(cell)
    return summary


def test_window_is_run_start_plus_warmup_to_run_end(known: dict) -> None:
    window = known["window"]
    assert window["start_ns"] == W0
    assert window["duration_s"] == WINDOW_S
    assert window["warmup_s"] == 2.0
    assert window["warmup_source"] == "run.json load.warmup_s"
    assert known["status"] == "ok" and known["partial"] is False and known["problems"] == []


def test_latency_percentiles_are_exact_and_skip_warmup_and_failures(known: dict) -> None:
    echo = known["latency"]["echo"]
    assert echo["kind"] == "ack"
    assert (echo["count"], echo["ok"], echo["failed"]) == (ECHO_OK + 4, ECHO_OK, 4)
    assert echo["p50_us"] == pytest.approx(350.0, abs=EXACT)
    assert echo["p90_us"] == pytest.approx(550.0, abs=EXACT)
    assert echo["p99_us"] == pytest.approx(595.0, abs=EXACT)
    assert echo["p999_us"] == pytest.approx(599.5, abs=EXACT)
    assert echo["max_us"] == 600.0  # the 1 s warm-up acks and 5 s failures are out
    assert echo["mean_us"] == pytest.approx(350.0, abs=EXACT)
    connect = known["latency"]["connect"]
    assert connect["p50_us"] == pytest.approx(1099.5, abs=EXACT)
    assert connect["max_us"] == 1199.0
    fanout = known["latency"]["push:fanout"]
    assert (fanout["kind"], fanout["name"], fanout["count"]) == ("push", "fanout", 490)
    assert fanout["p50_us"] == pytest.approx(2244.5, abs=EXACT)


def test_percentiles_match_numpy_linear_on_random_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    latencies = rng.lognormal(np.log(800), 0.9, 20_000)
    t = BASE_NS + np.sort(rng.integers(0, 10 * NS_PER_S, len(latencies)))
    write_shard(tmp_path, samples_frame(t, "ack", "echo", latencies))
    write_run_json(tmp_path, started_ns=BASE_NS, ended_ns=BASE_NS + 10 * NS_PER_S)
    echo = compute_metrics(load_cell(tmp_path)).latency.loc["echo"]
    expected = np.quantile(latencies, [0.5, 0.9, 0.99, 0.999], method="linear")
    got = [echo["p50_us"], echo["p90_us"], echo["p99_us"], echo["p999_us"]]
    assert got == pytest.approx(expected, rel=1e-12)
    assert echo["max_us"] == latencies.max()


def test_connection_rates_and_failures_by_error(known: dict) -> None:
    c = known["connections"]
    assert c["connects"] == 200 and c["connect_attempts"] == 210
    assert c["connects_per_s"] == pytest.approx(20.0)
    assert c["disconnects_per_s"] == pytest.approx(15.0)
    assert c["connect_failures"] == 10
    assert c["connect_failure_ratio"] == pytest.approx(10 / 210)
    assert c["connect_errors"] == {REFUSED: 6, TIMED_OUT: 4}
    assert c["disconnect_failures"] == 0


def test_event_throughput_and_errors(known: dict) -> None:
    t = known["throughput"]
    assert t["acks_per_s"] == pytest.approx((ECHO_OK + 100) / WINDOW_S)
    assert t["pushes_per_s"] == pytest.approx(49.0)
    assert t["ack_failures"] == 4
    assert known["errors"] == {REFUSED: 6, ACK_TIMEOUT: 4, TIMED_OUT: 4}
    assert known["error_ratio"] == pytest.approx(14 / 1465)
    assert known["errors_by_name"] == [
        {"kind": "connect", "name": "connect", "error": REFUSED, "count": 6},
        {"kind": "ack", "name": "echo", "error": ACK_TIMEOUT, "count": 4},
        {"kind": "connect", "name": "connect", "error": TIMED_OUT, "count": 4},
    ]


def test_many_distinct_errors_are_capped_not_lost(tmp_path: Path) -> None:
    t = BASE_NS + np.arange(60) * 1000
    write_shard(tmp_path, samples_frame(t, "ack", "echo", 1.0, ok=False, error=[f"E{i:02d}" for i in range(60)]))
    write_run_json(tmp_path, started_ns=BASE_NS, ended_ns=BASE_NS + NS_PER_S)
    errors = compute_metrics(load_cell(tmp_path)).errors
    assert len(errors) == 50
    assert errors["(11 other errors)"] == 11
    assert sum(errors.values()) == 60


def test_fanout_loss(known: dict) -> None:
    f = known["fanout"]
    assert (f["expected"], f["received"], f["lost"]) == (500, 490, 10)
    assert f["loss_ratio"] == pytest.approx(0.02)
    assert f["delivery_p50_us"] == pytest.approx(2244.5, abs=EXACT)
    assert f["by_event"]["broadcast"]["sends"] == 100


def test_server_cost(known: dict) -> None:
    s = known["server"]
    assert s["cpu_s"] == pytest.approx(5.0)
    assert s["cpu_cores"] == pytest.approx(0.5)
    assert s["cpu_s_per_1k_acks"] == pytest.approx(5.0 / (ECHO_OK + 100) * 1000)
    assert s["cpu_s_per_1k_connects"] == pytest.approx(25.0)
    assert s["peak_rss_bytes"] == 150 * MIB
    assert s["peak_clients"] == 100
    assert s["rss_per_client_bytes"] == pytest.approx(1 * MIB)
    g = known["loadgen"]
    assert g["cpu_s"] == pytest.approx(3.0)
    assert g["cpu_s_per_1k_connects"] == pytest.approx(15.0)
    assert g["peak_rss_bytes"] == 80 * MIB


def test_primary_figure_is_p99_of_the_scenario_event(known: dict) -> None:
    assert known["main_event"] == "echo"
    assert known["primary"]["path"] == ["latency", "echo", "p99_us"]
    assert known["primary"]["value"] == pytest.approx(595.0, abs=EXACT)
    assert known["primary"]["better"] == "lower"


def _acks_for(tmp_path: Path, seconds: float, **run: object) -> None:
    """100 acks/s from 4 s after the runner's started_ns (target start-up), for ``seconds``."""
    load_start = BASE_NS + 4 * NS_PER_S
    n = round(seconds * 100)
    write_shard(tmp_path, samples_frame(load_start + np.arange(n) * (NS_PER_S // 100), "ack", "echo", 500.0))
    fields = {"ended_ns": load_start + 13 * NS_PER_S, **run}
    write_run_json(tmp_path, started_ns=BASE_NS, warmup_s=2.0, load={"users": 1, "duration_s": 10.0, "warmup_s": 2.0},
                   **fields)


def test_window_follows_the_load_not_the_runner_bookkeeping(tmp_path: Path) -> None:
    """started_ns is stamped before the target is launched and ended_ns after it is stopped:
    the load is the samples' span, 10 s from the first sample here."""
    load_start = BASE_NS + 4 * NS_PER_S
    _acks_for(tmp_path, 10.0)
    m = compute_metrics(load_cell(tmp_path))
    assert m.window.load_start_ns == load_start
    assert (m.window.start_ns, m.window.end_ns) == (load_start + 2 * NS_PER_S, load_start + 10 * NS_PER_S)
    assert m.throughput["acks_per_s"] == pytest.approx(100.0)


def test_window_ends_with_the_samples_when_locust_stops_early(tmp_path: Path) -> None:
    """Locust's -t timer starts before its first request: the samples end 0.5 s before
    first sample + duration, and the rate must not count that half second."""
    _acks_for(tmp_path, 9.5)
    m = compute_metrics(load_cell(tmp_path))
    assert m.window.end_source == "last sample + mean gap"
    assert m.window.duration_s == pytest.approx(7.5)
    assert m.throughput["acks_per_s"] == pytest.approx(100.0)
    # The last second is half covered: its 50 acks are a rate of 100/s, not a dip to 50.
    assert list(m.rates["acks"]) == pytest.approx([100.0] * 10)


def test_window_of_an_interrupted_run_ends_at_ended_ns(tmp_path: Path) -> None:
    load_start = BASE_NS + 4 * NS_PER_S
    _acks_for(tmp_path, 10.0, ended_ns=load_start + 6 * NS_PER_S, status="partial", reason="interrupted")
    m = compute_metrics(load_cell(tmp_path))
    assert m.window.end_ns == load_start + 6 * NS_PER_S
    assert m.window.end_source == "run.json ended_ns"
    assert m.throughput["acks"] == 400


def test_window_of_a_stalled_run_keeps_the_silent_end(tmp_path: Path) -> None:
    """Samples stop 6 s before the planned end: that silence is load time, not to be cut away."""
    _acks_for(tmp_path, 4.0)
    m = compute_metrics(load_cell(tmp_path))
    assert m.window.duration_s == pytest.approx(8.0)
    assert m.throughput["acks_per_s"] == pytest.approx(200 / 8.0)
    assert any("no samples in the last 6.0 s" in n for n in m.notes)


def test_window_uses_the_recorded_load_bounds(tmp_path: Path) -> None:
    load_start = BASE_NS + 4 * NS_PER_S
    _acks_for(tmp_path, 10.0, load_started_ns=load_start - NS_PER_S, load_ended_ns=load_start + 11 * NS_PER_S)
    m = compute_metrics(load_cell(tmp_path))
    assert (m.window.load_start_ns, m.window.end_ns) == (load_start - NS_PER_S, load_start + 11 * NS_PER_S)
    assert m.window.end_source == "run.json load_ended_ns"
    assert m.throughput["acks"] == 900  # from load start + 2 s warm-up = 1 s after the first sample


def test_warmup_override_changes_the_window(tmp_path: Path) -> None:
    cell = write_known_cell(tmp_path / "cell")
    data = load_cell(cell)
    whole = compute_metrics(data, warmup_s=0)
    assert whole.window.duration_s == 12.0
    assert whole.window.warmup_source == "--warmup"
    assert whole.latency.loc["echo", "max_us"] == 1e6  # the warm-up acks are back in
    assert whole.latency.loc["echo", "ok"] == ECHO_OK + 50


def test_concurrency_and_rates_over_time(tmp_path: Path) -> None:
    """Connects complete at 0, 1, 2 s; disconnects at 3, 4 s of a 10 s run: peak 3, mean (1+2+3+2+1*6)/10."""
    s = BASE_NS
    frame = samples_frame(
        [s + k * NS_PER_S for k in (0, 1, 2, 3, 4)],
        ["connect", "connect", "connect", "disconnect", "disconnect"],
        ["connect", "connect", "connect", "disconnect", "disconnect"],
        0.0,
    )
    write_shard(tmp_path, frame)
    write_run_json(tmp_path, started_ns=s, ended_ns=s + 10 * NS_PER_S, scenario="churn")
    m = compute_metrics(load_cell(tmp_path))
    assert m.connections["peak_concurrent"] == 3
    assert m.connections["mean_concurrent"] == pytest.approx(1.4)
    assert list(m.concurrency["connected"]) == [1, 2, 3, 2, 1, 1, 1, 1, 1, 1]
    assert list(m.rates["connects"]) == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert list(m.rates["disconnects"]) == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert m.primary["path"] == ["connections", "connects_per_s"]
    assert m.primary["value"] == pytest.approx(0.3)


def test_rates_over_time_count_every_ack(known: dict, tmp_path: Path) -> None:
    m = compute_metrics(load_cell(write_known_cell(tmp_path / "cell")))
    assert len(m.rates) == 12
    assert m.rates["acks"].sum() == 50 + ECHO_OK + 100
    assert m.rates["acks"].iloc[2:].sum() == ECHO_OK + 100
    assert m.rates["pushes"].sum() == 490
    assert set(m.latency_over_time["key"]) >= {"echo", "connect", "push:fanout"}
    curve = m.percentile_curves.loc[m.percentile_curves["key"] == "echo"]
    assert curve["latency_us"].is_monotonic_increasing
    assert curve["latency_us"].iloc[-1] == 600.0


def _two_busy_events(cell: Path, declared: str | None) -> dict:
    """Equally busy acked events a and b (b slower), connects too; the class's primary declared or not."""
    t = BASE_NS + np.arange(200) * (NS_PER_S // 100)
    frames = [samples_frame(t, "ack", "a_event", 400.0), samples_frame(t, "ack", "b_event", 900.0),
              samples_frame(t[:50], "connect", "connect", 300.0), samples_frame(t[:50] + 1, "disconnect",
                                                                                 "disconnect", 100.0)]
    import pandas as pd

    write_shard(cell, pd.concat(frames, ignore_index=True))
    write_run_json(cell, started_ns=BASE_NS, ended_ns=BASE_NS + 2 * NS_PER_S, scenario="mine")
    if declared is not None:
        (cell / "fanout-w1.json").write_text(f'{{"worker": "w1", "pairs": {{}}, "primary": "{declared}"}}')
    return analyze_cell(cell)[2]


def test_a_declared_primary_event_ranks_the_cell(tmp_path: Path) -> None:
    # Without a declaration the busiest event wins, ties by name: a_event.
    assert _two_busy_events(tmp_path / "x-app--mine", None)["main_event"] == "a_event"
    summary = _two_busy_events(tmp_path / "y-app--mine", "b_event")
    assert summary["main_event"] == "b_event"
    assert summary["primary"]["path"] == ["latency", "b_event", "p99_us"]


def test_a_class_declaring_connects_is_ranked_by_its_connect_rate(tmp_path: Path) -> None:
    summary = _two_busy_events(tmp_path / "z-app--mine", "connects/s")
    assert summary["primary"]["key"] == "connections.connects_per_s" and summary["primary"]["better"] == "higher"


def test_a_hostile_declaration_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    cell = tmp_path / "w-app--mine"
    (cell).mkdir()
    (cell / "fanout-w2.json").write_text('{"worker": "w2", "pairs": {}, "primary": ["not", "a", "name"]}')
    summary = _two_busy_events(cell, None)
    assert summary["main_event"] == "a_event"
    assert any("fanout-w2.json unreadable" in p for p in summary["problems"])


def test_the_load_line_names_reference_options_only_where_they_shape_the_load() -> None:
    from reports.sections import _load_text

    load = {"users": 10, "payload_bytes": 64, "room_size": 10}
    assert _load_text({"scenario": "echo", "load": load}) == "10 users, payload 64 B"
    assert _load_text({"scenario": "broadcast", "load": load}) == "10 users, payload 64 B, room size 10"
    assert _load_text({"scenario": "myapp", "load": load}) == "10 users", "a user's own classes choose their own"
    assert _load_text({"scenario": "echo+myapp", "load": load}) == "10 users"
