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
from collections.abc import Sequence
from typing import TextIO

from reports.launch import EXIT_BAD_INPUT, EXIT_OK, build_reports

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "main"]


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


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the command; returns the exit status."""
    args = _parser().parse_args(argv)
    return build_reports(args.dirs, reference=args.reference, warmup_s=args.warmup, out=args.out,
                         html=not args.no_html, quiet=args.quiet, stdout=stdout, stderr=stderr)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
