"""``python -m reports``: exit 0 with reports written, or 2 with one line per bad input."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reports.__main__ import main
from tests.reports_fixtures.known_cell import write_known_cell

ROOT = Path(__file__).resolve().parent.parent
# HTML is left out here (--no-html) to keep these tests quick; test_reports_html and
# test_reports_compare write and check report.html and compare.html.
CELL_FILES = ("summary.json", "report.md")
COMPARE_FILES = ("compare.json", "compare.md")


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    write_known_cell(tmp_path / "run" / "threading-dev--echo", mode="threading", latency_scale=2.0)
    write_known_cell(tmp_path / "run" / "gevent-dev--echo", mode="gevent")
    return tmp_path / "run"


def test_run_folder_gets_cell_reports_and_a_comparison(run_dir: Path) -> None:
    code, out, err = run(str(run_dir), "--reference", "threading-dev", "--quiet", "--no-html")
    assert code == 0, err
    assert err == ""
    for cell in ("threading-dev--echo", "gevent-dev--echo"):
        for name in CELL_FILES:
            assert (run_dir / cell / name).stat().st_size > 0
    for name in COMPARE_FILES:
        assert (run_dir / name).stat().st_size > 0
    assert not (run_dir / "compare.html").exists()
    assert "gevent-dev--echo: ok, echo p99 0.595 ms" in out
    rows = json.loads((run_dir / "compare.json").read_text())["scenarios"][0]["rows"]
    assert [r["cell"] for r in rows] == ["gevent-dev--echo", "threading-dev--echo"]
    assert rows[0]["vs_reference"]["p99_us"] == pytest.approx(0.5)


def test_out_folder_leaves_the_results_untouched(run_dir: Path, tmp_path: Path) -> None:
    code, _, err = run(str(run_dir / "gevent-dev--echo"), str(run_dir / "threading-dev--echo"),
                       "--out", str(tmp_path / "out"), "--warmup", "0", "--no-html")
    assert code == 0, err
    assert not (run_dir / "gevent-dev--echo" / "summary.json").exists()
    summary = json.loads((tmp_path / "out" / "gevent-dev--echo" / "summary.json").read_text())
    assert summary["window"]["warmup_s"] == 0.0 and summary["window"]["warmup_source"] == "--warmup"
    assert (tmp_path / "out" / "compare.md").exists()
    assert not (tmp_path / "out" / "compare.html").exists()
    assert "[1/2]" in err and "done in" in err  # progress goes to stderr


def test_missing_folder_is_one_line(tmp_path: Path) -> None:
    code, out, err = run(str(tmp_path / "nope"))
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: {tmp_path / 'nope'}: no such folder"]


def test_folder_without_results(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run(str(tmp_path / "empty"), "-q")
    assert code == 2
    assert err.splitlines() == [f"error: {tmp_path / 'empty'}: not a results folder: no run.json or "
                                "samples-*.parquet here, and no cell folders inside"]


def test_one_bad_cell_does_not_stop_the_others(run_dir: Path) -> None:
    bad = run_dir / "eventlet-dev--echo"
    bad.mkdir()
    (bad / "run.json").write_text('{"schema": 1')
    code, out, err = run(str(run_dir), "-q", "--no-html")
    assert code == 2
    assert error_lines(err) == [
        f"error: {bad / 'run.json'}: not valid JSON: Expecting ',' delimiter at line 1 column 13"]
    assert (run_dir / "gevent-dev--echo" / "report.md").exists()
    data = json.loads((run_dir / "compare.json").read_text())
    assert [e["cell"] for e in data["errors"]] == ["eventlet-dev--echo"]
    assert "Traceback" not in err


def test_partial_report_exits_0_with_a_warning(run_dir: Path) -> None:
    cell = run_dir / "gevent-dev--echo"
    (cell / "server.csv").unlink()
    code, _, err = run(str(cell), "-q", "--no-html")
    assert code == 0
    (line,) = err.splitlines()
    assert line.startswith("warning: gevent-dev--echo: partial report (1 problem(s), first: server.csv missing: "
                           "no server CPU or memory figures")
    assert json.loads((cell / "summary.json").read_text())["partial"] is True
    assert "PARTIAL REPORT" in (cell / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--reference", "asgi"], "error: --reference: 'asgi' matches no cell"),
    (["--warmup", "60"], "a warm-up of 60 s (--warmup) leaves no steady window: the load ran 12.000 s"),
])
def test_bad_options_are_one_line(run_dir: Path, args: list[str], message: str) -> None:
    code, _, err = run(str(run_dir), "-q", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_module_entry_point(run_dir: Path, tmp_path: Path) -> None:
    """The real ``python -m reports`` process: reports on success, one line and exit 2 on bad input."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    ok = subprocess.run([sys.executable, "-m", "reports", str(run_dir / "gevent-dev--echo"), "-q", "--no-html"],
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (run_dir / "gevent-dev--echo" / "summary.json").exists()
    bad = subprocess.run([sys.executable, "-m", "reports", str(tmp_path / "missing")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [f"error: {tmp_path / 'missing'}: no such folder"]
