"""Analysis of load-test results folders: summary.json, report.md, report.html, comparisons.

Typical use::

    from reports import build_cell_report
    report = build_cell_report("results/20261126-031500-quick/gevent-dev--echo")
    report.summary["latency"]["echo"]["p99_us"]

or from a shell: ``python -m reports results/20261126-031500-quick``.
"""
from reports.build import CellReport, analyze_cell, build_cell_report, find_cells, write_comparison
from reports.compare import Comparison, compare
from reports.errors import ReportInputError
from reports.metrics import CellMetrics, compute_metrics
from reports.read_cell import CellData, load_cell
from reports.summary import SUMMARY_SCHEMA, build_summary

__all__ = [
    "SUMMARY_SCHEMA",
    "CellData",
    "CellMetrics",
    "CellReport",
    "Comparison",
    "ReportInputError",
    "analyze_cell",
    "build_cell_report",
    "build_summary",
    "compare",
    "compute_metrics",
    "find_cells",
    "load_cell",
    "write_comparison",
]
