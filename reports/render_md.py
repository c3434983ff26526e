"""``report.md``: the cell report as GitHub-flavoured Markdown, for a CI job summary."""
from __future__ import annotations

from typing import Any

from reports.compare import Comparison
from reports.sections import Section, Table, cell_sections, compare_sections

REPORT_MD = "report.md"


def md_cell(text: str) -> str:
    """A table cell: pipes escaped, newlines flattened, so one value never breaks the table."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_table(table: Table) -> list[str]:
    numeric = table.numeric or [False] * len(table.columns)
    header = "| " + " | ".join(md_cell(c) or " " for c in table.columns) + " |"
    rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    body = ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in table.rows]
    return [header, rule, *body]


def md_paragraphs(paragraphs: list[str], prefix: str = "") -> list[str]:
    """Paragraphs separated by blank lines; runs of ``- `` items stay one list."""
    lines: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        lines.append(prefix + paragraph)
        next_is_item = i + 1 < len(paragraphs) and paragraphs[i + 1].startswith("- ")
        if not (paragraph.startswith("- ") and next_is_item):
            lines.append(prefix.rstrip())
    return lines


def md_section(section: Section, level: int = 3) -> list[str]:
    lines = [f"{'#' * level} {section.title}", ""]
    if section.alert:
        # A blockquote stands out in a CI job summary.
        lines.extend(md_paragraphs([f"**{section.alert[0]}**", *section.alert[1:]], "> ")[:-1])
        lines.append("")
    lines.extend(md_paragraphs(section.text))
    for table in section.tables:
        lines.extend(md_table(table))
        lines.append("")
    if section.code:
        lines.append("```text")
        lines.extend(section.code)
        lines.append("```")
        lines.append("")
    lines.extend(md_paragraphs(section.footer))
    return lines


def render_cell_md(summary: dict[str, Any]) -> str:
    """The Markdown report of one cell, from its summary object."""
    badge = {"ok": "OK", "partial": "PARTIAL", "failed": "FAILED"}.get(summary["status"], summary["status"])
    lines = [f"## Load-test report: {summary['cell']} ({badge})", ""]
    for section in cell_sections(summary):
        lines.extend(md_section(section))
    return "\n".join(lines).rstrip() + "\n"


def render_compare_md(comparison: Comparison) -> str:
    """The Markdown comparison of several cells: one ranked table per scenario."""
    lines = ["## Load-test comparison", ""]
    for section in compare_sections(comparison):
        lines.extend(md_section(section))
    return "\n".join(lines).rstrip() + "\n"
