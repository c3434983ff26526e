"""``python -m reports RESULTS_DIR [RESULTS_DIR ...]``: build reports from results folders.

Each DIR is a cell folder (``results/<run-id>/<cell>/``) or a run folder
holding cells. Every cell gets summary.json, report.md and report.html; with
more than one cell, compare.json, compare.md and compare.html rank them.

Exit status: 0 when every report was written (partial reports included, with
a warning), 2 when some input could not be used (one line per problem on
stderr, never a traceback).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from reports.build import CellReport, comparison_dir, find_cells, write_cell_report, write_comparison
from reports.errors import ReportInputError
from reports.metrics import compute_metrics
from reports.read_cell import load_cell
from reports.sections import headline
from reports.summary import build_summary

EXIT_OK = 0
EXIT_BAD_INPUT = 2


class Progress:
    """Progress on stderr: a rewritten line on a terminal, a few plain lines otherwise."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self._last_quarter = -1
        self._open = False  # a rewritten line is on screen

    def say(self, message: str) -> None:
        if self.enabled:
            self._end_line()
            print(message, file=self.stream, flush=True)

    def shard(self, done: int, total: int, name: str) -> None:
        """``load_cell``'s progress callback."""
        if not self.enabled or total < 2:
            return
        if self.tty:
            self.stream.write(f"\r  reading shards {done}/{total} ({name})\x1b[K")
            self.stream.flush()
            self._open = True
            return
        quarter = done * 4 // total
        if total >= 8 and quarter != self._last_quarter:
            self._last_quarter = quarter
            print(f"  reading shards {done}/{total}", file=self.stream, flush=True)

    def _end_line(self) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False
        self._last_quarter = -1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description="Build summary.json, report.md and report.html from results folders, "
                    "and compare cells side by side.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="a cell folder (results/<run-id>/<cell>/) or a run folder holding cells")
    parser.add_argument("--warmup", type=float, metavar="S", default=None,
                        help="seconds cut from the run start before steady-state figures "
                             "(default: run.json load.warmup_s, else 0)")
    parser.add_argument("--reference", metavar="CELL", default=None,
                        help="cell to compute comparison ratios against: a cell name, run-id/cell, "
                             "a mode-server prefix (threading-dev) or a mode (default: each scenario's best cell)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="write reports here (OUT/<cell>/ per cell, comparison in OUT/) instead of "
                             "into the results folders")
    parser.add_argument("--no-html", action="store_true", help="skip report.html and compare.html (faster)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def _check_reference(reference: str, cells: Sequence[Path]) -> None:
    """Fail before the slow part when --reference cannot match any cell folder."""
    names = {c.name for c in cells} | {f"{c.parent.name}/{c.name}" for c in cells}
    names |= {c.name.rsplit("--", 1)[0] for c in cells} | {c.name.split("-", 1)[0] for c in cells}
    if reference not in names:
        known = ", ".join(sorted(c.name for c in cells))
        raise ReportInputError("--reference", f"{reference!r} matches no cell (cells: {known})")


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the command; returns the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = _parser().parse_args(argv)
    progress = Progress(stderr, enabled=not args.quiet)
    out = Path(args.out) if args.out else None
    try:
        cells = find_cells(args.dirs)
        if args.reference is not None and len(cells) > 1:
            _check_reference(args.reference, cells)
    except ReportInputError as exc:
        print(f"error: {exc}", file=stderr)
        return EXIT_BAD_INPUT

    reports: list[CellReport] = []
    errors: list[dict[str, str]] = []
    for i, cell in enumerate(cells, 1):
        started = time.perf_counter()
        progress.say(f"[{i}/{len(cells)}] {cell}")
        try:
            data = load_cell(cell, progress=progress.shard, warmup_s=args.warmup)
            progress.say(f"  {data.sample_count:,} samples; computing figures")
            metrics = compute_metrics(data, warmup_s=args.warmup)
            report = CellReport(path=cell, data=data, metrics=metrics, summary=build_summary(data, metrics))
            progress.say("  writing reports")
            target = cell if out is None else out / _unique_name(cell, cells)
            write_cell_report(report, target, html=not args.no_html)
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
            _, files = write_comparison(reports, out or comparison_dir(cells), reference=args.reference,
                                        errors=errors, html=not args.no_html)
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


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
