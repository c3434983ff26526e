"""Several cells side by side: one ranked row per cell, ratios against a reference.

Cells are ranked within their scenario (an echo p99 and a churn connect rate
do not share a scale) by the scenario's primary figure: connects per second
for churn (higher is better), RSS per client for idle, otherwise the p99 of
the main acknowledged event (lower is better). Ratios are ``cell / reference``
for each key figure; the reference is the ``--reference`` cell of that
scenario, or its best-ranked cell when none is chosen.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.cells import CellName
from reports.errors import ReportInputError

COMPARE_SCHEMA = 1
COMPARE_FILES = ("compare.json", "compare.md", "compare.html")

# Figures of a row: name -> path into a summary ("main" is the main event's key).
FIGURES: dict[str, tuple[str, ...]] = {
    "connects_per_s": ("connections", "connects_per_s"),
    "disconnects_per_s": ("connections", "disconnects_per_s"),
    "connect_p99_us": ("latency", "connect", "p99_us"),
    "acks_per_s": ("throughput", "acks_per_s"),
    "pushes_per_s": ("throughput", "pushes_per_s"),
    "p50_us": ("latency", "main", "p50_us"),
    "p99_us": ("latency", "main", "p99_us"),
    "p999_us": ("latency", "main", "p999_us"),
    "error_ratio": ("error_ratio",),
    "loss_ratio": ("fanout", "loss_ratio"),
    "cpu_s_per_1k_acks": ("server", "cpu_s_per_1k_acks"),
    "cpu_s_per_1k_connects": ("server", "cpu_s_per_1k_connects"),
    "peak_rss_bytes": ("server", "peak_rss_bytes"),
    "rss_per_client_bytes": ("server", "rss_per_client_bytes"),
    # The target's GC pauses (reports.gc_pauses): absent without gc.csv.
    "gc_pauses": ("gc", "pauses"),
    "gc_max_ms": ("gc", "max_ms"),
    "gc_tail_share": ("gc", "above_p99_overlap_share"),
}
# Figures that get a "vs reference" ratio column.
RATIO_FIGURES: tuple[str, ...] = (
    "primary", "connects_per_s", "acks_per_s", "p99_us", "cpu_s_per_1k_acks", "cpu_s_per_1k_connects",
    "peak_rss_bytes", "rss_per_client_bytes",
)


def lookup(summary: dict[str, Any], path: tuple[str, ...] | list[str], main_event: str | None = None) -> Any:
    """The value at ``path`` in a summary, or None when any step is missing.

    A ``"main"`` step stands for ``main_event`` (default: the summary's own).
    """
    node: Any = summary
    for step in path:
        if step == "main":
            step = main_event or summary.get("main_event") or ""
        if not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class ScenarioComparison:
    """The ranked rows of one scenario."""

    scenario: str
    primary: dict[str, Any] | None
    """``{"key", "path", "label", "better"}`` shared by the scenario's cells."""
    main_event: str | None
    reference: str | None
    reference_chosen: bool
    rows: list[dict[str, Any]]


@dataclass
class Comparison:
    scenarios: list[ScenarioComparison]
    errors: list[dict[str, str]] = field(default_factory=list)
    """Cells that could not be reported: ``{"cell", "problem"}``."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": COMPARE_SCHEMA,
            "scenarios": [
                {"scenario": s.scenario, "primary": s.primary, "main_event": s.main_event, "reference": s.reference,
                 "reference_chosen": s.reference_chosen, "rows": s.rows}
                for s in self.scenarios
            ],
            "errors": self.errors,
            "notes": self.notes,
        }


def cell_labels(summaries: list[dict[str, Any]]) -> list[str]:
    """Cell names, prefixed with the run id where two runs share a cell name."""
    names = Counter(s["cell"] for s in summaries)
    labels = []
    for s in summaries:
        run_id = (s.get("run") or {}).get("run_id")
        labels.append(f"{run_id}/{s['cell']}" if names[s["cell"]] > 1 and run_id else s["cell"])
    if len(set(labels)) != len(labels):
        # Same run and cell given twice: number them so rows stay distinct.
        seen: Counter[str] = Counter()
        unique = []
        for label in labels:
            seen[label] += 1
            unique.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
        labels = unique
    return labels


def _matches(reference: str, label: str, summary: dict[str, Any]) -> bool:
    cell = summary["cell"]
    mode_server = CellName.parse(cell).target
    return reference in (label, cell, mode_server, (summary.get("run") or {}).get("mode"))


def compare(summaries: list[dict[str, Any]], *, reference: str | None = None,
            errors: list[dict[str, str]] | None = None) -> Comparison:
    """Rank cells within each scenario and compute ratios against the reference.

    ``reference`` may be a cell name, a ``run-id/cell`` label, a
    ``mode-server`` prefix (``threading-dev``: that cell in every scenario) or
    a mode. Raises ``ReportInputError`` when it matches no cell or more than
    one cell of a scenario.
    """
    labels = cell_labels(summaries)
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for label, summary in zip(labels, summaries, strict=True):
        groups.setdefault(summary.get("scenario") or "(unknown scenario)", []).append((label, summary))

    if reference is not None and not any(
            _matches(reference, label, s) for label, s in zip(labels, summaries, strict=True)):
        raise ReportInputError("--reference", f"{reference!r} matches no cell (cells: {', '.join(labels)})")

    notes: list[str] = []
    scenarios = []
    for scenario in sorted(groups):
        cells = groups[scenario]
        primary = _scenario_primary(cells)
        main_event = _scenario_main_event(cells, primary)
        rows = [_row(label, s, primary, main_event) for label, s in cells]
        _rank(rows, primary)
        ref_label, chosen = _reference_of(scenario, cells, rows, reference, notes)
        _ratios(rows, ref_label)
        scenarios.append(ScenarioComparison(scenario, primary, main_event, ref_label, chosen, rows))
    return Comparison(scenarios=scenarios, errors=list(errors or []), notes=notes)


def _scenario_primary(cells: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The primary figure most cells of a scenario use (they can differ when a cell failed)."""
    figures = [s["primary"] for _, s in cells if s.get("primary")]
    if not figures:
        return None
    key, _ = Counter(f["key"] for f in figures).most_common(1)[0]
    chosen = next(f for f in figures if f["key"] == key)
    return {k: chosen[k] for k in ("key", "path", "label", "better")}


def _scenario_main_event(cells: list[tuple[str, dict[str, Any]]], primary: dict[str, Any] | None) -> str | None:
    if primary is not None and primary["path"][0] == "latency":
        return primary["path"][1]
    events = Counter(s["main_event"] for _, s in cells if s.get("main_event"))
    return events.most_common(1)[0][0] if events else None


def _row(label: str, summary: dict[str, Any], primary: dict[str, Any] | None, main_event: str | None) -> dict[str, Any]:
    """One cell's figures, read at the scenario's paths so every row compares like with like."""
    run = summary.get("run") or {}
    row: dict[str, Any] = {
        "rank": None,
        "cell": label,
        "mode": run.get("mode"),
        "server": run.get("server"),
        "status": summary.get("status"),
        "partial": summary.get("partial"),
        "main_event": main_event,
        "primary": _number(lookup(summary, primary["path"])) if primary else None,
    }
    for name, path in FIGURES.items():
        row[name] = _number(lookup(summary, path, main_event)) if main_event or "main" not in path else None
    return row


def _rank(rows: list[dict[str, Any]], primary: dict[str, Any] | None) -> None:
    """Sort rows best first by the primary figure; cells without it go last, unranked."""
    if primary is None:
        return
    sign = -1.0 if primary["better"] == "higher" else 1.0
    rows.sort(key=lambda r: (r["primary"] is None, sign * (r["primary"] or 0.0), r["cell"]))
    for i, row in enumerate(rows, 1):
        row["rank"] = i if row["primary"] is not None else None


def _reference_of(scenario: str, cells: list[tuple[str, dict[str, Any]]], rows: list[dict[str, Any]],
                  reference: str | None, notes: list[str]) -> tuple[str | None, bool]:
    if reference is None:
        best = next((r["cell"] for r in rows if r["rank"] == 1), None)
        return best, False
    matches = [label for label, s in cells if _matches(reference, label, s)]
    if len(matches) > 1:
        raise ReportInputError("--reference", f"{reference!r} matches {len(matches)} cells of scenario "
                                              f"{scenario!r} ({', '.join(matches)}); name one cell")
    if not matches:
        notes.append(f"scenario {scenario}: no cell matches reference {reference!r}; no ratios")
        return None, True
    return matches[0], True


def _ratios(rows: list[dict[str, Any]], ref_label: str | None) -> None:
    ref = next((r for r in rows if r["cell"] == ref_label), None)
    for row in rows:
        ratios: dict[str, float | None] = {}
        for name in RATIO_FIGURES:
            value, base = row.get(name), (ref or {}).get(name)
            ratios[name] = value / base if value is not None and base not in (None, 0.0) else None
        row["vs_reference"] = ratios
