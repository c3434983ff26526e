"""``report.html``: one self-contained file (inline CSS, PNGs as data URIs, no scripts).

It opens offline from a CI artifact or an e-mail attachment: nothing is
fetched from anywhere.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from reports import plots
from reports.compare import Comparison, ScenarioComparison
from reports.gc_plot import gc_timeline
from reports.metrics import CellMetrics
from reports.plots import Plot
from reports.sections import Section, Table, cell_sections, compare_sections

REPORT_HTML = "report.html"

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1000px;
       padding: 1rem 1.5rem 3rem; color: #1d1d1f; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
nav a { margin-right: .8rem; }
table { border-collapse: collapse; margin: .6rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .25rem .55rem; vertical-align: top; white-space: nowrap; }
th { background: #f4f4f6; text-align: left; }
td.num, th.num { text-align: right; white-space: nowrap; }
figure { margin: .8rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #666; font-size: .85rem; }
pre { background: #f6f6f8; padding: .6rem; overflow-x: auto; font-size: .8rem; }
.status { display: inline-block; padding: .1rem .6rem; border-radius: .8rem; font-weight: 600; }
.status.ok { background: #dff3e3; color: #1a6b2c; }
.status.partial { background: #fff1cc; color: #7a5a00; }
.status.failed, .status.error { background: #fde0e0; color: #8a1c1c; }
.problems { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4rem .8rem; }
ul { margin: .3rem 0; }
.scroll { overflow-x: auto; }
"""


def html_table(table: Table) -> str:
    numeric = table.numeric or [False] * len(table.columns)
    head = "".join(f'<th{" class=num" if n else ""}>{escape(c)}</th>'
                   for c, n in zip(table.columns, numeric, strict=False))
    body = "".join(
        "<tr>"
        + "".join(f'<td{" class=num" if n else ""}>{escape(v)}</td>' for v, n in zip(row, numeric, strict=False))
        + "</tr>"
        for row in table.rows
    )
    show_head = any(table.columns)
    table_html = f"<table>{f'<thead><tr>{head}</tr></thead>' if show_head else ''}<tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table_html}</div>'


def html_figure(plot: Plot) -> str:
    return (
        f'<figure><img src="{plot.uri}" alt="{escape(plot.title)}" width="{plot.width}" height="{plot.height}">'
        f"<figcaption>{escape(plot.title)}</figcaption></figure>"
    )


def html_text(paragraphs: Sequence[str], css_class: str = "") -> str:
    """Plain-text paragraphs; runs of ``- `` lines become one list."""
    out: list[str] = []
    items: list[str] = []
    cls = f' class="{css_class}"' if css_class else ""

    def flush() -> None:
        if items:
            out.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for p in paragraphs:
        if p.startswith("- "):
            items.append(p[2:])
        else:
            flush()
            out.append(f"<p>{escape(p)}</p>")
    flush()
    return f"<div{cls}>{''.join(out)}</div>" if cls else "".join(out)


def html_section(section: Section, figures: Sequence[Plot] = ()) -> str:
    parts = [f'<section id="{escape(section.key)}"><h2>{escape(section.title)}</h2>']
    if section.alert:
        parts.append(html_text(section.alert, "problems"))
    parts.append(html_text(section.text))
    parts.extend(html_table(t) for t in section.tables)
    if section.code:
        parts.append("<pre>" + escape("\n".join(section.code)) + "</pre>")
    parts.append(html_text(section.footer))
    parts.extend(html_figure(p) for p in figures)
    parts.append("</section>")
    return "".join(parts)


def html_page(title: str, status: str | None, subtitle: str, sections: Sequence[str],
              nav: Sequence[tuple[str, str]]) -> str:
    badge = f' <span class="status {escape(status)}">{escape(status)}</span>' if status else ""
    links = "".join(f'<a href="#{escape(k)}">{escape(t)}</a>' for k, t in nav)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}{badge}</h1><p>{escape(subtitle)}</p><nav>{links}</nav></header>"
        + "".join(sections)
        + "</body></html>\n"
    )


def latency_plot_keys(metrics: CellMetrics) -> list[str]:
    """Names to plot: the main event first, then the busiest others."""
    table = metrics.latency
    ordered = list(table.sort_values("ok", ascending=False, kind="stable").index)
    if metrics.main_event in ordered:
        ordered.remove(metrics.main_event)
        ordered.insert(0, metrics.main_event)
    return [str(k) for k in ordered if table.at[k, "ok"] > 0]


def cell_plots(metrics: CellMetrics) -> dict[str, list[Plot]]:
    """The plots of each section of a cell report."""
    warmup = metrics.window.warmup_s
    keys = latency_plot_keys(metrics)
    return {
        "latency": [
            plots.percentile_curves(metrics.percentile_curves, keys),
            plots.latency_over_time(metrics.latency_over_time, keys, warmup),
        ],
        "connections": [
            plots.connections_over_time(metrics.rates, metrics.concurrency, metrics.locust_users, warmup),
        ],
        "gc": [gc_timeline(metrics.gc)] if metrics.gc is not None else [],
        "throughput": [plots.throughput_over_time(metrics.rates, warmup, metrics.stalls)],
        "server": [plots.server_over_time(metrics.server_timeline, warmup, metrics.loadgen_timeline)],
    }


def render_cell_html(summary: dict[str, Any], metrics: CellMetrics) -> str:
    """The self-contained HTML report of one cell."""
    sections = cell_sections(summary)
    figures = cell_plots(metrics)
    run = summary["run"]
    subtitle = " · ".join(
        str(v) for v in (run.get("run_id"), run.get("mode"), run.get("server"), summary.get("scenario"),
                         run.get("started_at")) if v
    )
    return html_page(
        f"Load-test report: {summary['cell']}",
        summary["status"],
        subtitle,
        [html_section(s, figures.get(s.key, ())) for s in sections],
        [(s.key, s.title) for s in sections],
    )


def _scale_primary(primary: dict[str, Any] | None, value: float | None) -> float | None:
    if value is None or not primary:
        return value
    last = primary["path"][-1]
    return value / 1000 if last.endswith("_us") else value / 1024 if last.endswith("_bytes") else value


def _primary_unit(primary: dict[str, Any]) -> str:
    last = primary["path"][-1]
    return "ms" if last.endswith("_us") else "KiB" if last.endswith("_bytes") else "per second"


def scenario_plots(scenario: ScenarioComparison, metrics: dict[str, CellMetrics]) -> list[Plot]:
    """Overlays of the cells of one scenario, in ranking order."""
    rows = [r for r in scenario.rows if r["cell"] in metrics]
    out: list[Plot] = []
    if scenario.primary:
        out.append(plots.ranking_bars(
            [r["cell"] for r in scenario.rows],
            [_scale_primary(scenario.primary, r["primary"]) for r in scenario.rows],
            f"{scenario.primary['label']} by cell", _primary_unit(scenario.primary),
        ))
    if scenario.main_event:
        curves = []
        for r in rows:
            c = metrics[r["cell"]].percentile_curves
            curves.append((r["cell"], c.loc[c["key"] == scenario.main_event]))
        out.append(plots.overlay_curves(curves, f"{scenario.main_event} latency by percentile"))
    churn = bool(scenario.primary and scenario.primary["path"][-1] == "connects_per_s")
    column, label = ("connects", "connects/s") if churn or not scenario.main_event else ("acks", "acks/s")
    out.append(plots.overlay_series(
        [(r["cell"], metrics[r["cell"]].rates.index.to_numpy(), metrics[r["cell"]].rates[column].to_numpy())
         for r in rows],
        f"{label} over time", label, step=True,
    ))
    timelines = [(r["cell"], metrics[r["cell"]].server_timeline) for r in rows]
    servers = [(c, t) for c, t in timelines if t is not None]
    out.append(plots.overlay_series(
        [(c, t["t_s"].to_numpy(), t["cpu_cores"].to_numpy()) for c, t in servers],
        "Server CPU over time", "CPU (cores)",
    ))
    out.append(plots.overlay_series(
        [(c, t["t_s"].to_numpy(), t["rss_bytes"].to_numpy() / 2**20) for c, t in servers],
        "Server RSS over time", "RSS (MiB)",
    ))
    return out


def render_compare_html(comparison: Comparison, metrics: dict[str, CellMetrics]) -> str:
    """The self-contained comparison page: ranked tables and overlay plots per scenario."""
    sections = compare_sections(comparison)
    by_key = {f"scenario-{s.scenario}": s for s in comparison.scenarios}
    parts = [
        html_section(s, scenario_plots(by_key[s.key], metrics) if s.key in by_key else ())
        for s in sections
    ]
    cells = sum(len(s.rows) for s in comparison.scenarios)
    return html_page(
        "Load-test comparison", None,
        f"{cells} cell(s) in {len(comparison.scenarios)} scenario(s)",
        parts, [(s.key, s.title) for s in sections],
    )
