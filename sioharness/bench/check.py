"""``python -m sioharness.bench.check RUN_DIR``: pass or fail a run for CI.

Reads every cell's ``summary.json`` and applies

- thresholds (a TOML file of rules: a dotted path into summary.json and a
  ``max`` or ``min``, optionally limited to a scenario or target), and
- a baseline (figures from an earlier run; a figure fails when it is worse
  than the baseline by more than the tolerance, as a ratio).

It prints what passed and failed, writes a Markdown job summary, and exits 0
(all passed), 1 (something failed) or 2 (bad input). ``--write-baseline``
turns a run into a baseline file instead.

Threshold file::

    [[rule]]
    metric = "error_ratio"          # dotted path into summary.json
    max = 0.01
    [[rule]]
    scenario = "echo"               # optional: only cells of this scenario
    target = "gevent-dev"           # optional: only this target (mode-server)
    metric = "latency.echo.p99_us"
    max = 50000
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sioharness.core.cells import CellName
from sioharness.core.commands import command_line
from sioharness.core.figures import judged, lookup, number
from sioharness.core.files import write_json, write_text
from sioharness.core.untrusted import UntrustedFileError, read_bytes, read_json

#: the largest thresholds file and compare.md read
MAX_RULES_BYTES = 2**20
MAX_COMPARE_BYTES = 4 * 2**20

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
# Two identical quick runs on this 2-core machine differed by up to 1.37x in a
# median; 0.5 flags a regression of 1.5x or worse without flaking on noise.
DEFAULT_TOLERANCE = 0.5
BASELINE_SCHEMA = 1


class CheckInputError(ValueError):
    """A file the check cannot use; the message names it."""


@dataclass(frozen=True)
class Rule:
    metric: str
    max: float | None = None
    min: float | None = None
    scenario: str | None = None
    target: str | None = None

    def applies(self, cell: str, summary: dict[str, Any]) -> bool:
        return (self.scenario in (None, "*", scenario_of(summary, cell))
                and self.target in (None, "*", CellName.parse(cell).target))


@dataclass(frozen=True)
class Outcome:
    cell: str
    check: str  # "threshold", "baseline" or "status"
    metric: str
    value: float | None
    limit: str
    passed: bool
    note: str = ""


def scenario_of(summary: dict[str, Any], cell: str) -> str:
    return summary.get("scenario") or CellName.parse(cell).scenario


def load_rules(path: Path) -> list[Rule]:
    try:
        data = tomllib.loads(read_bytes(path, MAX_RULES_BYTES).decode("utf-8"))
    except OSError as exc:
        raise CheckInputError(f"{path}: cannot read thresholds ({exc.strerror})") from None
    except UntrustedFileError as exc:
        raise CheckInputError(f"{path}: cannot read thresholds ({exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CheckInputError(f"{path}: not valid TOML ({exc})") from None
    unknown_tables = sorted(set(data) - {"rule"})
    if unknown_tables:
        raise CheckInputError(f"{path}: unknown key(s) {', '.join(unknown_tables)} (rules are [[rule]] tables)")
    entries = data.get("rule", [])
    if not isinstance(entries, list) or not entries:
        raise CheckInputError(f"{path}: no [[rule]] table: a thresholds file that checks nothing is refused")
    rules = []
    for i, entry in enumerate(entries):
        unknown = set(entry) - {"metric", "max", "min", "scenario", "target"}
        if unknown or "metric" not in entry or ("max" not in entry and "min" not in entry):
            raise CheckInputError(f"{path}: rule {i + 1} needs 'metric' and 'max' or 'min'"
                                  + (f"; unknown key(s) {', '.join(sorted(unknown))}" if unknown else ""))
        for key in ("max", "min"):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise CheckInputError(f"{path}: rule {i + 1}: {key} must be a number, got {value!r}")
        for key in ("metric", "scenario", "target"):
            if key in entry and not isinstance(entry[key], str):
                raise CheckInputError(f"{path}: rule {i + 1}: {key} must be a string, got {entry[key]!r}")
        rules.append(Rule(**entry))
    return rules


def _read_json(path: Path, cannot: str) -> Any:
    """A JSON file read as untrusted; a CheckInputError ``{path}: {cannot} (why)`` when it cannot be."""
    try:
        return read_json(path)
    except OSError as exc:
        raise CheckInputError(f"{path}: {cannot} ({exc.strerror or exc})") from None
    except UntrustedFileError as exc:
        raise CheckInputError(f"{path}: {cannot} ({exc})") from None


def load_baseline(path: Path) -> dict[str, Any]:
    """A baseline file, checked: an object with cells of figures, each a number and which way is better."""
    baseline = _read_json(path, "cannot read baseline")
    cells = baseline.get("cells") if isinstance(baseline, dict) else None
    if not isinstance(cells, dict) or not cells:
        raise CheckInputError(f"{path}: a baseline needs a non-empty 'cells' object (make one with --write-baseline)")
    for cell, figures in cells.items():
        if not isinstance(figures, dict):
            raise CheckInputError(f"{path}: cells.{cell} must be an object of figures")
        for figure, entry in figures.items():
            value = entry.get("value") if isinstance(entry, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or entry.get("better") not in ("higher", "lower"):
                raise CheckInputError(f"{path}: baseline figure cells.{cell}.{figure} needs a numeric 'value' "
                                      f"and 'better' = \"higher\" or \"lower\", got {entry!r:.80}")
    return baseline


def load_summaries(run_dir: Path) -> dict[str, dict[str, Any]]:
    if not run_dir.is_dir():
        raise CheckInputError(f"{run_dir}: no such results folder")
    summaries = {}
    for path in sorted(run_dir.glob("*/summary.json")):
        summary = _read_json(path, "cannot read")
        if not isinstance(summary, dict):
            raise CheckInputError(f"{path}: not a summary (a JSON object), but a {type(summary).__name__}")
        summaries[path.parent.name] = summary
    if not summaries:
        raise CheckInputError(f"{run_dir}: no cell has a summary.json; build the reports first "
                              f"({command_line('report', str(run_dir))})")
    return summaries


def cells_without_summary(run_dir: Path) -> list[str]:
    """Cell folders (they hold a run.json) that have no summary.json: never skipped in silence."""
    return sorted(p.parent.name for p in run_dir.glob("*/run.json") if not (p.parent / "summary.json").is_file())


def check_thresholds(summaries: dict[str, dict[str, Any]], rules: Sequence[Rule]) -> list[Outcome]:
    outcomes = []
    for rule in rules:
        if not any(rule.applies(cell, summary) for cell, summary in summaries.items()):
            where = ", ".join(f"{k} {v!r}" for k, v in (("scenario", rule.scenario), ("target", rule.target)) if v)
            outcomes.append(Outcome("(no cell)", "threshold", rule.metric, None, "matches a cell", False,
                                    f"rule {rule.metric}{' for ' + where if where else ''} matched nothing"))
    for cell, summary in summaries.items():
        for rule in rules:
            if not rule.applies(cell, summary):
                continue
            value = lookup(summary, rule.metric)
            limits = ([f"<= {rule.max:g}"] if rule.max is not None else []) + \
                     ([f">= {rule.min:g}"] if rule.min is not None else [])
            if not isinstance(value, (int, float)):
                outcomes.append(Outcome(cell, "threshold", rule.metric, None, " and ".join(limits), False,
                                        "figure missing from summary.json"))
                continue
            passed = (rule.max is None or value <= rule.max) and (rule.min is None or value >= rule.min)
            outcomes.append(Outcome(cell, "threshold", rule.metric, float(value), " and ".join(limits), passed))
    return outcomes


def check_status(summaries: dict[str, dict[str, Any]]) -> list[Outcome]:
    return [Outcome(cell, "status", "status", None, "ok", s.get("status") == "ok",
                    "" if s.get("status") == "ok" else str(lookup(s, "run.reason") or s.get("status")))
            for cell, s in summaries.items()]


def baseline_metrics(summary: dict[str, Any]) -> dict[str, str]:
    """The figures a baseline keeps for a cell: path -> "higher" or "lower" (which is better).

    Robust figures only (sioharness/core/figures.py marks them): the main event's median
    latency, throughput and server CPU per operation, per acknowledged event
    or per connection as the cell is ranked. A p99 over a few seconds is a
    handful of samples; it moved 4x between two identical quick runs here, so
    it is left to the absolute thresholds.
    """
    return {path: str(figure.better) for figure, path, _ in judged(summary, "baseline").values()}


def make_baseline(summaries: dict[str, dict[str, Any]], source: str) -> dict[str, Any]:
    cells = {}
    for cell, summary in summaries.items():
        if summary.get("status") != "ok":
            continue
        cells[cell] = {path: {"value": value, "better": better}
                       for path, better in baseline_metrics(summary).items()
                       if (value := number(summary, path)) is not None}
    any_summary = next(iter(summaries.values()))
    return {"schema": BASELINE_SCHEMA, "source": source, "machine": lookup(any_summary, "run.machine"),
            "versions": lookup(any_summary, "run.versions"), "cells": cells}


def check_baseline(summaries: dict[str, dict[str, Any]], baseline: dict[str, Any], tolerance: float) -> list[Outcome]:
    outcomes = []
    for cell, figures in baseline.get("cells", {}).items():
        summary = summaries.get(cell)
        if summary is None:
            outcomes.append(Outcome(cell, "baseline", "cell", None, "present", False, "cell missing from this run"))
            continue
        for path, entry in figures.items():
            base, better = entry["value"], entry["better"]
            value = number(summary, path)
            limit = f"at most {tolerance:.0%} worse than {base:.4g} ({better} is better)"
            if value is None:
                outcomes.append(Outcome(cell, "baseline", path, None, limit, False, "figure missing"))
                continue
            ratio = value / base if base else float("inf") if value else 1.0
            worse_by = (1 / ratio if ratio else float("inf")) if better == "higher" else ratio
            passed = worse_by <= 1 + tolerance
            outcomes.append(Outcome(cell, "baseline", path, float(value), limit, passed, f"{ratio:.2f}x baseline"))
    return outcomes


def render_text(outcomes: Sequence[Outcome]) -> str:
    lines = []
    for o in outcomes:
        value = "-" if o.value is None else f"{o.value:.4g}"
        lines.append(f"{'PASS' if o.passed else 'FAIL'}  {o.cell:<34} {o.check:<9} {o.metric:<32} "
                     f"{value:>10}  ({o.limit}){'  ' + o.note if o.note else ''}")
    failed = sum(not o.passed for o in outcomes)
    lines.append(f"{len(outcomes) - failed} passed, {failed} failed")
    return "\n".join(lines)


def render_markdown(outcomes: Sequence[Outcome], run_dir: Path) -> str:
    failed = [o for o in outcomes if not o.passed]
    head = ("✅ benchmark check passed" if not failed
            else f"❌ benchmark check failed ({len(failed)} of {len(outcomes)})")
    lines = [f"## {head}", "", f"Run: `{run_dir.name}`", "",
             "| result | cell | check | figure | value | limit | note |", "|---|---|---|---|---:|---|---|"]
    for o in sorted(outcomes, key=lambda o: o.passed):
        value = "" if o.value is None else f"{o.value:.4g}"
        result = "pass" if o.passed else "**FAIL**"
        lines.append(f"| {result} | {o.cell} | {o.check} | `{o.metric}` | {value} | {o.limit} | {o.note} |")
    compare = run_dir / "compare.md"
    with contextlib.suppress(OSError, UntrustedFileError):
        lines += ["", read_bytes(compare, MAX_COMPARE_BYTES).decode("utf-8", errors="replace")]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sioharness.bench.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="results/<run-id> with reports built")
    parser.add_argument("--thresholds", type=Path, help="TOML file of threshold rules")
    parser.add_argument("--baseline", type=Path, help="baseline JSON to compare against")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"allowed regression against the baseline, as a ratio "
                             f"(default {DEFAULT_TOLERANCE}: 50%% worse)")
    parser.add_argument("--job-summary", type=Path, default=os.environ.get("GITHUB_STEP_SUMMARY") or None,
                        help="Markdown summary to append to (default: $GITHUB_STEP_SUMMARY, else RUN_DIR/check.md)")
    parser.add_argument("--write-baseline", type=Path, metavar="FILE", help="write FILE from this run and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tolerance < 0:
        print("check: --tolerance must be >= 0", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        summaries = load_summaries(args.run_dir)
        if args.write_baseline:
            baseline = make_baseline(summaries, args.run_dir.name)
            write_json(args.write_baseline, baseline)
            print(f"check: wrote baseline of {len(baseline['cells'])} cells to {args.write_baseline}")
            return EXIT_PASS
        outcomes = check_status(summaries)
        outcomes += [Outcome(cell, "status", "summary.json", None, "present", False,
                             "no summary.json: the reports were not built for this cell")
                     for cell in cells_without_summary(args.run_dir)]
        if args.thresholds:
            outcomes += check_thresholds(summaries, load_rules(args.thresholds))
        if args.baseline:
            outcomes += check_baseline(summaries, load_baseline(args.baseline), args.tolerance)
    except CheckInputError as exc:
        print(f"check: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(render_text(outcomes))
    markdown = render_markdown(outcomes, args.run_dir)
    if args.job_summary:
        try:
            with open(args.job_summary, "a", encoding="utf-8") as handle:
                handle.write(markdown)
        except OSError as exc:  # bad input, not a failed check: exit 2
            print(f"check: --job-summary {args.job_summary}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    else:
        write_text(args.run_dir / "check.md", markdown)
    return EXIT_PASS if all(o.passed for o in outcomes) else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
