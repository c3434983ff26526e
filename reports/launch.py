"""The one way reports are built, from the command line (``python -m reports``) and from every runner.

``bench`` (the matrix), ``sioharness.bench.ab``, ``sioharness.dockertools.run`` and ``python -m
reports`` call :func:`build_reports` in their own process: one code path
finds the cells, writes each cell's report, ranks them, and reports what it
could not use. (The web UI builds its one cell's report with the same
:func:`reports.build.build_cell_report`, in a child process so the Locust
process serving the page never stalls.)
"""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from reports.build import CellReport, comparison_dir, find_cells, write_cell_report, write_comparison
from reports.errors import ReportInputError
from reports.metrics import compute_metrics
from reports.progress import Progress
from reports.read_cell import load_cell
from reports.sections import headline
from reports.summary import build_summary

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _check_reference(reference: str, cells: Sequence[Path]) -> None:
    """Fail before the slow part when --reference cannot match any cell folder."""
    names = {c.name for c in cells} | {f"{c.parent.name}/{c.name}" for c in cells}
    names |= {c.name.rsplit("--", 1)[0] for c in cells} | {c.name.split("-", 1)[0] for c in cells}
    if reference not in names:
        known = ", ".join(sorted(c.name for c in cells))
        raise ReportInputError("--reference", f"{reference!r} matches no cell (cells: {known})")


def build_reports(dirs: Sequence[str | Path], *, reference: str | None = None, warmup_s: float | None = None,
                  out: str | Path | None = None, html: bool = True, quiet: bool = False,
                  stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Reports for every cell under ``dirs`` and, with more than one, their comparison; the exit status.

    0 when every report was written (partial ones included, with a warning on
    ``stderr``), 2 when some input could not be used (one line per problem).
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    progress = Progress(stderr, enabled=not quiet)
    out = Path(out) if out else None
    try:
        cells = find_cells([str(d) for d in dirs])
        if reference is not None and len(cells) > 1:
            _check_reference(reference, cells)
    except ReportInputError as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_BAD_INPUT

    reports: list[CellReport] = []
    errors: list[dict[str, str]] = []
    for i, cell in enumerate(cells, 1):
        started = time.perf_counter()
        progress.say(f"[{i}/{len(cells)}] {cell}")
        try:
            data = load_cell(cell, progress=progress.shard, warmup_s=warmup_s)
            progress.say(f"  {data.sample_count:,} samples; computing figures")
            metrics = compute_metrics(data, warmup_s=warmup_s)
            report = CellReport(path=cell, data=data, metrics=metrics, summary=build_summary(data, metrics))
            progress.say("  writing reports")
            target = cell if out is None else out / _unique_name(cell, cells)
            write_cell_report(report, target, html=html)
        except ReportInputError as exc:
            progress.say("  failed")
            print(f"error: {exc}", file=stderr)
            errors.append({"cell": cell.name, "problem": str(exc)})
            continue
        reports.append(report)
        progress.say(f"  done in {time.perf_counter() - started:.1f} s")
        summary = report.summary
        print(headline(summary), file=stdout)
        for path in report.files:
            print(f"  {path}", file=stdout)
        if summary["partial"]:
            print(f"warning: {summary['cell']}: partial report ({len(summary['problems'])} problem(s), "
                  f"first: {summary['problems'][0]})", file=stderr)

    if len(cells) > 1 and reports:
        try:
            _, files = write_comparison(reports, out or comparison_dir(cells), reference=reference,
                                        errors=errors, html=html)
        except ReportInputError as exc:
            print(f"error: {exc}", file=stderr)
            return EXIT_BAD_INPUT
        print(f"comparison of {len(reports)} cell(s):", file=stdout)
        for path in files:
            print(f"  {path}", file=stdout)
    return EXIT_BAD_INPUT if errors else EXIT_OK


def _unique_name(cell: Path, cells: Sequence[Path]) -> str:
    """``cell`` alone, or ``run-id/cell`` when two runs share the cell name."""
    clash = sum(c.name == cell.name for c in cells) > 1
    return f"{cell.parent.name}/{cell.name}" if clash else cell.name
