"""Several cells side by side: ranking within a scenario, ratios against a reference."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reports import ReportInputError, analyze_cell, compare
from reports.build import CellReport, write_comparison
from reports.synthetic import BASE_NS, NS_PER_S, samples_frame, write_run_json, write_shard
from tests.reports_fixtures.known_cell import write_known_cell

P99 = 595.0  # the known cell's echo p99 at latency_scale 1


def _churn_cell(cell: Path, mode: str, connects: int) -> Path:
    """``connects`` connect+disconnect pairs spread over a 10 s run (no warm-up)."""
    t = BASE_NS + (np.arange(connects) * (10 * NS_PER_S // connects))
    frame = samples_frame(np.concatenate([t, t + 1000]), ["connect"] * connects + ["disconnect"] * connects,
                          ["connect"] * connects + ["disconnect"] * connects, 500.0)
    write_shard(cell, frame)
    write_run_json(cell, started_ns=BASE_NS, ended_ns=BASE_NS + 10 * NS_PER_S, scenario="churn", mode=mode,
                   cell=f"{mode}-dev--churn", load_started_ns=BASE_NS, load_ended_ns=BASE_NS + 10 * NS_PER_S)
    return cell


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[CellReport]:
    run = tmp_path_factory.mktemp("run")
    cells = [
        write_known_cell(run / "threading-dev--echo", mode="threading", latency_scale=1.0),
        write_known_cell(run / "eventlet-dev--echo", mode="eventlet", latency_scale=2.0),
        write_known_cell(run / "gevent-dev--echo", mode="gevent", latency_scale=0.5),
        _churn_cell(run / "threading-dev--churn", "threading", 50),
        _churn_cell(run / "gevent-dev--churn", "gevent", 400),
    ]
    out = []
    for cell in cells:
        data, metrics, summary = analyze_cell(cell)
        out.append(CellReport(path=cell, data=data, metrics=metrics, summary=summary))
    return out


def _scenario(comparison, name: str):
    return next(s for s in comparison.scenarios if s.scenario == name)


def test_cells_are_ranked_within_their_scenario(reports: list[CellReport]) -> None:
    comparison = compare([r.summary for r in reports])
    assert [s.scenario for s in comparison.scenarios] == ["churn", "echo"]
    echo = _scenario(comparison, "echo")
    assert [r["cell"] for r in echo.rows] == ["gevent-dev--echo", "threading-dev--echo", "eventlet-dev--echo"]
    assert [r["rank"] for r in echo.rows] == [1, 2, 3]
    assert [r["primary"] for r in echo.rows] == pytest.approx([P99 * 0.5, P99, P99 * 2])
    churn = _scenario(comparison, "churn")
    assert churn.primary["path"] == ["connections", "connects_per_s"]
    assert [r["cell"] for r in churn.rows] == ["gevent-dev--churn", "threading-dev--churn"]  # higher first
    assert [r["primary"] for r in churn.rows] == pytest.approx([40.0, 5.0])


def test_ratios_default_to_the_best_cell(reports: list[CellReport]) -> None:
    echo = _scenario(compare([r.summary for r in reports]), "echo")
    assert echo.reference == "gevent-dev--echo" and not echo.reference_chosen
    assert [r["vs_reference"]["p99_us"] for r in echo.rows] == pytest.approx([1.0, 2.0, 4.0])


def test_ratios_against_a_chosen_reference(reports: list[CellReport]) -> None:
    comparison = compare([r.summary for r in reports], reference="threading-dev")
    echo = _scenario(comparison, "echo")
    assert echo.reference == "threading-dev--echo" and echo.reference_chosen
    assert [r["vs_reference"]["primary"] for r in echo.rows] == pytest.approx([0.5, 1.0, 2.0])
    churn = _scenario(comparison, "churn")
    assert churn.reference == "threading-dev--churn"
    assert [r["vs_reference"]["connects_per_s"] for r in churn.rows] == pytest.approx([8.0, 1.0])
    # The echo cells share server.csv and ack counts, so their CPU cost ratio is exactly 1.
    assert [r["vs_reference"]["cpu_s_per_1k_acks"] for r in echo.rows] == pytest.approx([1.0, 1.0, 1.0])


def test_unknown_or_ambiguous_reference(reports: list[CellReport]) -> None:
    with pytest.raises(ReportInputError, match="--reference: 'asgi' matches no cell"):
        compare([r.summary for r in reports], reference="asgi")
    twice = [reports[0].summary, {**reports[0].summary, "cell": "threading-gunicorn--echo"}]
    with pytest.raises(ReportInputError, match="matches 2 cells of scenario 'echo'"):
        compare(twice, reference="threading")


def test_comparison_files(reports: list[CellReport], tmp_path: Path) -> None:
    comparison, files = write_comparison(reports, tmp_path, reference="threading-dev",
                                         errors=[{"cell": "broken", "problem": "broken: no sample shards"}])
    assert [f.name for f in files] == ["compare.json", "compare.md", "compare.html"]
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["schema"] == 1
    assert data["errors"] == [{"cell": "broken", "problem": "broken: no sample shards"}]
    md = (tmp_path / "compare.md").read_text()
    for report in reports:
        assert f"| {report.summary['cell']} |" in md
    assert "broken: no sample shards" in md
    html = (tmp_path / "compare.html").read_text()
    # echo: ranking bars, p99 curves, acks/s, CPU, RSS; churn (no acked event): no curves.
    assert html.count("data:image/png;base64,") == 5 + 4


def test_same_cell_from_two_runs_is_told_apart(reports: list[CellReport]) -> None:
    first = reports[0].summary
    second = {**first, "run": {**first["run"], "run_id": "run-b"},
              "latency": {**first["latency"], "echo": {**first["latency"]["echo"], "p99_us": 1.0}}}
    first = {**first, "run": {**first["run"], "run_id": "run-a"}}
    echo = _scenario(compare([first, second], reference="run-a/threading-dev--echo"), "echo")
    assert [r["cell"] for r in echo.rows] == ["run-b/threading-dev--echo", "run-a/threading-dev--echo"]
    assert echo.reference == "run-a/threading-dev--echo"
    assert echo.rows[0]["vs_reference"]["primary"] == pytest.approx(1.0 / P99)


def test_cell_without_the_primary_figure_is_listed_last_unranked(reports: list[CellReport]) -> None:
    echo_cells = [r.summary for r in reports if r.summary["scenario"] == "echo"]
    dead = {**echo_cells[0], "cell": "asgi-uvicorn--echo", "status": "failed", "primary": None,
            "main_event": None, "latency": {}}
    echo = _scenario(compare([dead, *echo_cells]), "echo")
    assert echo.primary["path"] == ["latency", "echo", "p99_us"]
    assert [r["cell"] for r in echo.rows][-1] == "asgi-uvicorn--echo"
    assert [r["rank"] for r in echo.rows] == [1, 2, 3, None]
    assert echo.rows[-1]["primary"] is None and echo.rows[-1]["vs_reference"]["primary"] is None
