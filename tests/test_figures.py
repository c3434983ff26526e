"""One table of summary figures (sioharness/core/figures.py): compare, check's baseline and the A/B read it."""
from __future__ import annotations

from reports.compare import RATIO_FIGURES, compare
from sioharness.bench.ab import metric_values
from sioharness.bench.check import baseline_metrics
from sioharness.core.figures import ACKS, CONNECTS, FIGURES, cell_kind, lookup


def echo_summary(**extra: object) -> dict:
    return {"cell": "gevent-dev--echo", "scenario": "echo", "status": "ok", "main_event": "echo",
            "primary": {"key": "latency.echo.p99_us", "path": ["latency", "echo", "p99_us"], "label": "echo p99",
                        "better": "lower"},
            "latency": {"echo": {"p50_us": 400.0, "p99_us": 900.0, "p999_us": 1500.0}},
            "throughput": {"acks_per_s": 2000.0, "pushes_per_s": 0.0},
            "connections": {"connects_per_s": 2.0}, "server": {"cpu_s_per_1k_acks": 0.3, "peak_rss_bytes": 9e7},
            "run": {"mode": "gevent", "server": "dev"}} | extra


def churn_summary() -> dict:
    return {"cell": "gevent-dev--churn", "scenario": "churn", "status": "ok", "main_event": "echo",
            "primary": {"key": "connections.connects_per_s", "path": ["connections", "connects_per_s"],
                        "label": "connect rate", "better": "higher"},
            "latency": {"echo": {"p50_us": 500.0}, "connect": {"p50_us": 2000.0, "p99_us": 9000.0}},
            "throughput": {"acks_per_s": 300.0}, "connections": {"connects_per_s": 300.0},
            "server": {"cpu_s_per_1k_acks": 1.0, "cpu_s_per_1k_connects": 1.1}, "run": {}}


def test_the_ab_judges_what_a_cell_is_about_in_the_tables_order() -> None:
    echo = metric_values(echo_summary())
    assert list(echo) == ["server CPU s per 1k acks", "acks/s", "echo p50", "echo p99"]
    assert echo["acks/s"] == ("throughput.acks_per_s", "higher", 2000.0)
    churn = metric_values(churn_summary())
    assert list(churn) == ["server CPU s per 1k connects", "connects/s", "connect p50", "connect p99"]


def test_a_baseline_keeps_the_robust_figures_of_the_cells_kind() -> None:
    assert baseline_metrics(echo_summary()) == {
        "throughput.acks_per_s": "higher", "latency.echo.p50_us": "lower", "server.cpu_s_per_1k_acks": "lower"}
    assert baseline_metrics(churn_summary()) == {
        "connections.connects_per_s": "higher", "latency.echo.p50_us": "lower",
        "server.cpu_s_per_1k_connects": "lower"}
    assert (cell_kind(echo_summary()), cell_kind(churn_summary())) == (ACKS, CONNECTS)


def test_every_figure_is_a_compare_column_read_at_the_scenarios_main_event() -> None:
    dotted = echo_summary(main_event="chat.message",
                          latency={"chat.message": {"p50_us": 1.0, "p99_us": 2.0, "p999_us": 3.0}},
                          primary={"key": "x", "path": ["latency", "chat.message", "p99_us"], "label": "p99",
                                   "better": "lower"})
    comparison = compare([echo_summary(), dotted | {"cell": "threading-dev--echo"}])
    rows = {row["cell"]: row for row in comparison.scenarios[0].rows}
    assert {f.key for f in FIGURES} <= set(rows["gevent-dev--echo"])
    assert rows["gevent-dev--echo"]["p50_us"] == 400.0
    # an event name with dots is one step of the path
    assert lookup(dotted, "latency.{main}.p99_us") == 2.0
    assert lookup(dotted, ["latency", "chat.message", "p50_us"]) == 1.0
    assert set(RATIO_FIGURES) - {"primary"} == {f.key for f in FIGURES if f.ratio}
