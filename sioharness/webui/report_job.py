"""``python -m sioharness.webui.report_job CELL_DIR``: write one cell's full report.

The web UI runs this in a child process, so building the report (pandas,
matplotlib) never stalls the Locust process that serves the UI and, in a
single-process run, generates the load. Prints a JSON line with the files
written; exit status 2 with ``error: <problem>`` on stderr when the folder
cannot be reported.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from reports.build import build_cell_report
from reports.errors import ReportInputError


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m sioharness.webui.report_job CELL_DIR", file=sys.stderr)
        return 2
    try:
        report = build_cell_report(args[0])
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = report.summary
    print(json.dumps({"files": [p.name for p in report.files], "status": summary.get("status"),
                      "partial": summary.get("partial"), "problems": summary.get("problems", [])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
