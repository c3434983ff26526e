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

from reports.errors import ReportInputError
from sioharness.core.cells import CellName
from sioharness.core.figures import FIGURES, lookup

COMPARE_SCHEMA = 1
COMPARE_FILES = ("compare.json", "compare.md", "compare.html")

# Figures that get a "vs reference" ratio column (sioharness/core/figures.py says which).
RATIO_FIGURES: tuple[str, ...] = ("primary", *(f.key for f in FIGURES if f.ratio))


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
    for figure in FIGURES:
        row[figure.key] = _number(lookup(summary, figure.path_for(main_event)))
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
