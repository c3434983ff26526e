"""A cell's GC pauses in its reports: the section, summary.json's ``gc``, the timeline plot, the comparison."""
from __future__ import annotations

import json
from pathlib import Path

from reports import build_cell_report
from reports.build import write_comparison
from reports.synthetic import NS_PER_S
from tests.reports_fixtures.html_checks import assert_complete_cell_report, report_tags
from tests.reports_fixtures.known_cell import W0, S, known_samples, write_known_cell

MS = 1_000_000


def write_gc_csv(cell: Path, rows: list[tuple[int, int, int]], name: str = "gc.csv") -> None:
    lines = ["t_ns,duration_ns,generation,collected,uncollectable"]
    lines += [f"{t},{duration},{generation},7,0" for t, duration, generation in rows]
    (cell / name).write_text("\n".join(lines) + "\n")


def named_as_folder(cell: Path) -> Path:
    """Give the known cell's run.json the folder's name, variant and all, as the runner does."""
    run = json.loads((cell / "run.json").read_text())
    (cell / "run.json").write_text(json.dumps(run | {"cell": cell.name}))
    return cell


def gc_cell(path: Path) -> Path:
    """The known cell (echo acks of 100-600 us, 10 s steady window) with pauses of 30 ms every second.

    Its p99 is 595 us: the 10 slowest echo samples are above it, one every 1 s of the window
    (known_cell.py spreads them evenly); pauses start in the warm-up too, which must not count.
    """
    cell = named_as_folder(write_known_cell(path, gc="freeze"))
    write_gc_csv(cell, GC_ROWS)
    return cell


GC_ROWS = [(S + i * NS_PER_S + 500 * MS, 30 * MS, 2) for i in range(12)] + [
    (W0 + i * 100 * MS, 50_000, 0) for i in range(100)]


def brute_force_overlaps(p99_us: float, pauses: list[tuple[int, int]]) -> int:
    """Steady echo samples slower than ``p99_us`` whose [sent, answered] meets a pause, one by one."""
    samples = known_samples()
    steady = samples.loc[(samples["t_ns"] >= W0) & (samples["name"] == "echo") & samples["ok"]
                         & (samples["latency_us"] > p99_us)]
    hits = 0
    for t, latency_us in zip(steady["t_ns"], steady["latency_us"], strict=True):
        answered = t + round(latency_us * 1000)
        hits += any(start <= answered and start + length >= t for start, length in pauses)
    return hits


def test_a_cell_with_gc_csv_gets_its_pauses_and_the_overlap_figure(tmp_path: Path) -> None:
    report = build_cell_report(gc_cell(tmp_path / "gevent-dev--echo--gc-freeze"))
    gc = report.summary["gc"]
    assert gc["setting"] == "freeze" and gc["files"] == ["gc.csv"] and gc["key"] == "echo"
    # The steady window [2 s, 12 s) holds 10 of the 12 long pauses and all 100 short ones.
    assert gc["pauses"] == 110 and gc["by_generation"] == {"0": 100, "2": 10}
    assert gc["max_ms"] == 30.0
    assert abs(gc["total_ms"] - (10 * 30 + 100 * 0.05)) < 1e-9
    assert gc["above_p99"] == 10
    # Only pauses of 1 ms or more count: the 50 us ones cannot explain a tail.
    assert gc["overlap_min_ms"] == 1.0
    assert gc["above_p99_overlapping"] == brute_force_overlaps(595.0, [(t, d) for t, d, _ in GC_ROWS if d >= MS])
    assert gc["above_p99_overlap_share"] == gc["above_p99_overlapping"] / 10
    assert 0 < gc["all_overlap_share"] < 1
    markdown = (report.path / "report.md").read_text()
    section = markdown.split("### GC pauses")[1].split("###")[0]
    assert "setting: freeze" in section and "110 pauses in the steady window" in section
    assert "during a pause of 1 ms or more" in section
    assert f"{gc['above_p99_overlapping']} (" in section and "slower than its p99 (0.595 ms)" in section
    assert_complete_cell_report(report.path / "report.html")
    alts = [a.get("alt") for tag, a in report_tags(report.path / "report.html") if tag == "img"]
    assert "Latency and GC pauses (max per 50 ms)" in alts


def test_slow_samples_inside_pauses_are_counted(tmp_path: Path) -> None:
    cell = write_known_cell(tmp_path / "gevent-dev--echo")
    # One pause covering the whole steady window: every sample was in flight during it.
    write_gc_csv(cell, [(W0, 10 * NS_PER_S, 2)])
    gc = build_cell_report(cell, html=False).summary["gc"]
    assert gc["above_p99_overlap_share"] == 1.0 and gc["all_overlap_share"] == 1.0


def test_short_pauses_are_not_held_against_slow_samples(tmp_path: Path) -> None:
    cell = write_known_cell(tmp_path / "gevent-dev--echo")
    # A 0.5 ms pause every millisecond of the window: every sample meets one, none long enough to explain it.
    write_gc_csv(cell, [(W0 + i * MS, MS // 2, 0) for i in range(10_000)])
    gc = build_cell_report(cell, html=False).summary["gc"]
    assert gc["pauses"] == 10_000 and gc["above_p99"] == 10
    assert gc["above_p99_overlapping"] == 0 and gc["all_overlap_share"] == 0.0


def test_a_cell_without_gc_csv_says_how_to_record_one(tmp_path: Path) -> None:
    report = build_cell_report(write_known_cell(tmp_path / "gevent-dev--echo"))
    assert report.summary["gc"] is None
    section = (report.path / "report.md").read_text().split("### GC pauses")[1].split("###")[0]
    assert "No GC pauses recorded" in section and "record_gc_pauses()" in section
    assert_complete_cell_report(report.path / "report.html")  # the timeline still draws the latency


def test_the_comparison_shows_gc_columns_when_cells_recorded_pauses(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with_gc = build_cell_report(gc_cell(run / "gevent-dev--echo--gc-freeze"), html=False)
    without = build_cell_report(write_known_cell(run / "gevent-dev--echo", gc="default"), html=False)
    comparison, _ = write_comparison([with_gc, without], run, html=False)
    rows = {r["cell"]: r for r in comparison.scenarios[0].rows}
    assert rows["gevent-dev--echo--gc-freeze"]["gc_pauses"] == 110
    assert rows["gevent-dev--echo"]["gc_pauses"] is None
    header = (run / "compare.md").read_text().split("\n")
    assert any("GC pauses" in line and ">p99 in GC" in line for line in header)
    saved = {r["cell"]: r for r in json.loads((run / "compare.json").read_text())["scenarios"][0]["rows"]}
    assert saved["gevent-dev--echo--gc-freeze"]["gc_max_ms"] == 30.0
    assert saved["gevent-dev--echo--gc-freeze"]["gc_tail_share"] == with_gc.summary["gc"]["above_p99_overlap_share"]
