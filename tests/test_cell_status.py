"""sioharness.bench.cell_status: one ladder decides a cell's status from what it left behind, for every runner."""
from __future__ import annotations

from pathlib import Path

import pytest

from reports.synthetic import write_locust_stats_json, write_recorder_file
from sioharness.bench.cell_status import CellEnding, LiveFigures, cell_status, final_figures
from sioharness.core.exit_codes import EXIT_NOTHING_MEASURED, EXIT_SAMPLES_LOST

FINE = LiveFigures(requests=1000, failures=0)


def test_a_clean_ending_is_ok(tmp_path: Path) -> None:
    write_recorder_file(tmp_path, taken=1000, written=1000)
    assert cell_status(tmp_path, CellEnding("ok", None, exit_codes=[0, 0, 0]), FINE) == ("ok", None)


def test_a_workers_exit_status_for_lost_samples_fails_the_cell(tmp_path: Path) -> None:
    """A Docker worker's exit status is all a full disk may leave: its accounting could not be written."""
    status, reason = cell_status(tmp_path, CellEnding("ok", None, exit_codes=[0, 0, EXIT_SAMPLES_LOST]), FINE)
    assert status == "failed" and reason is not None and reason.startswith("samples lost")


def test_the_recorders_accounting_fails_the_cell_when_no_exit_status_says_so(tmp_path: Path) -> None:
    write_recorder_file(tmp_path, taken=1000, written=1000, tag="w1")
    write_recorder_file(tmp_path, taken=900, written=700, dropped=200, tag="w2")
    status, reason = cell_status(tmp_path, CellEnding("ok", None, exit_codes=[0]), FINE)
    assert status == "failed" and "200 of 1,900 by the recorders' accounting" in str(reason)


@pytest.mark.parametrize(("ending", "live", "expected"), [
    (CellEnding("partial", "interrupted", target_fault="instance 1 died"), FINE, "interrupted"),
    (CellEnding("ok", None, exit_codes=[EXIT_SAMPLES_LOST], target_fault="instance 1 died"), FINE,
     "instance 1 died"),
    (CellEnding("ok", None, exit_codes=[EXIT_SAMPLES_LOST], processes=2, lost_workers=["w2"]), FINE,
     "1 of 2 Locust worker processes lost"),
    (CellEnding("ok", None, exit_codes=[EXIT_NOTHING_MEASURED]), FINE, "Locust measured nothing"),
    (CellEnding("ok", None, exit_codes=[3]), FINE, "locust exited with code 3"),
    (CellEnding("ok", None, exit_codes=[0]), None, "locust recorded no requests"),
    (CellEnding("ok", None, exit_codes=[0]), LiveFigures(0, 0), "locust recorded no requests"),
])
def test_the_first_rung_that_went_wrong_names_the_reason(tmp_path: Path, ending: CellEnding,
                                                         live: LiveFigures | None, expected: str) -> None:
    status, reason = cell_status(tmp_path, ending, live)
    assert status != "ok" and expected in str(reason)


def test_every_failed_call_is_nothing_measured_with_the_names(tmp_path: Path) -> None:
    write_locust_stats_json(tmp_path, [("ack", "echo", 500, 500)])
    status, reason = cell_status(tmp_path, CellEnding("ok", None, exit_codes=[1]), LiveFigures(500, 500))
    assert status == "failed" and "answered none of the run's acked calls" in str(reason) and "(echo)" in str(reason)


def test_final_figures_prefer_the_json_written_at_shutdown(tmp_path: Path) -> None:
    assert final_figures(tmp_path) is None
    (tmp_path / "locust_stats.csv").write_text(
        "Type,Name,Request Count,Failure Count,Requests/s\n,Aggregated,90,1,9.5\n")
    assert final_figures(tmp_path) == LiveFigures(90, 1, 9.5)
    write_locust_stats_json(tmp_path, [("ack", "echo", 100, 2)])
    assert final_figures(tmp_path) == LiveFigures(100, 2, 0.0)
