"""From folders to written reports: the steps the command line runs, usable from code too."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.compare import Comparison, cell_labels, compare
from reports.errors import ReportInputError
from reports.metrics import CellMetrics, compute_metrics
from reports.read_cell import CellData, ProgressCallback, is_cell_dir, load_cell
from reports.render_html import REPORT_HTML, render_cell_html, render_compare_html
from reports.render_md import REPORT_MD, render_cell_md, render_compare_md
from reports.summary import SUMMARY_FILE, build_summary
from sioharness.core.files import write_json, write_text


@dataclass
class CellReport:
    """One cell's figures and the files written for it."""

    path: Path
    data: CellData
    metrics: CellMetrics
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def find_cells(folders: Sequence[str | Path]) -> list[Path]:
    """Cell folders named directly, or found one level inside run folders.

    Raises ``ReportInputError`` for a folder that is neither.
    """
    cells: list[Path] = []
    for folder in map(Path, folders):
        if not folder.exists():
            raise ReportInputError(folder, "no such folder")
        if not folder.is_dir():
            raise ReportInputError(folder, "not a folder (expected results/<run-id>/ or results/<run-id>/<cell>/)")
        if is_cell_dir(folder):
            cells.append(folder)
            continue
        inside = sorted(p for p in folder.iterdir() if is_cell_dir(p))
        if not inside:
            runs = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(map(is_cell_dir, p.iterdir())))
            hint = f" (it holds run folders: name one, e.g. {folder / runs[-1]})" if runs else ""
            raise ReportInputError(
                folder, f"not a results folder: no run.json or samples-*.parquet here, and no cell folders inside{hint}"
            )
        cells.extend(inside)
    # The same folder named twice (directly and through its run folder) is reported once.
    unique: dict[Path, Path] = {}
    for cell in cells:
        unique.setdefault(cell.resolve(), cell)
    return list(unique.values())


def analyze_cell(path: str | Path, *, warmup_s: float | None = None,
                 progress: ProgressCallback | None = None) -> tuple[CellData, CellMetrics, dict[str, Any]]:
    """Load a cell, compute its figures and its summary object, writing nothing."""
    data = load_cell(path, progress=progress, warmup_s=warmup_s)
    metrics = compute_metrics(data, warmup_s=warmup_s)
    return data, metrics, build_summary(data, metrics)


def _write(path: Path, write: Any, content: Any) -> Path:
    try:
        write(path, content)
    except OSError as exc:
        raise ReportInputError(
            path, f"cannot write ({exc.strerror or exc}); choose another folder with --out") from None
    return path


def write_cell_report(report: CellReport, out_dir: Path, *, html: bool = True) -> list[Path]:
    """Write summary.json, report.md and (unless ``html`` is False) report.html into ``out_dir``."""
    files = [
        _write(out_dir / SUMMARY_FILE, write_json, report.summary),
        _write(out_dir / REPORT_MD, write_text, render_cell_md(report.summary)),
    ]
    if html:
        files.append(_write(out_dir / REPORT_HTML, write_text, render_cell_html(report.summary, report.metrics)))
    report.files = files
    return files


def build_cell_report(path: str | Path, *, out_dir: str | Path | None = None, warmup_s: float | None = None,
                      progress: ProgressCallback | None = None, html: bool = True) -> CellReport:
    """Analyze one cell folder and write its reports (into the folder itself by default)."""
    data, metrics, summary = analyze_cell(path, warmup_s=warmup_s, progress=progress)
    report = CellReport(path=Path(path), data=data, metrics=metrics, summary=summary)
    write_cell_report(report, Path(out_dir) if out_dir is not None else Path(path), html=html)
    return report


def comparison_dir(cells: Sequence[Path]) -> Path:
    """Where a comparison goes by default: the folder all the cells share (their run folder)."""
    return Path(os.path.commonpath([c.resolve().parent for c in cells]))


def write_comparison(reports: Sequence[CellReport], out_dir: Path, *, reference: str | None = None,
                     errors: Sequence[dict[str, str]] = (), html: bool = True) -> tuple[Comparison, list[Path]]:
    """Write compare.json, compare.md and (unless ``html`` is False) compare.html into ``out_dir``."""
    summaries = [r.summary for r in reports]
    comparison = compare(summaries, reference=reference, errors=list(errors))
    metrics = dict(zip(cell_labels(summaries), (r.metrics for r in reports), strict=True))
    files = [
        _write(out_dir / "compare.json", write_json, comparison.to_json()),
        _write(out_dir / "compare.md", write_text, render_compare_md(comparison)),
    ]
    if html:
        files.append(_write(out_dir / "compare.html", write_text, render_compare_html(comparison, metrics)))
    return comparison, files
