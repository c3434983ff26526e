"""A cell's summary as titled sections of text and tables, ready for any renderer.

Markdown and HTML both render these, so the two reports never disagree on a
figure or a label. Everything here reads ``summary.json``'s object only, so a
report can be re-rendered from an old summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reports import fmt
from reports.compare import Comparison
from reports.gc_pauses import section_parts as gc_section_parts
from sioharness.core.figures import FIGURES
from sioharness.core.scenarios import shaped_by

# Order and titles of a cell report's sections; every one is always present.
CELL_SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("latency", "Latency"),
    ("gc", "GC pauses"),
    ("connections", "Connections"),
    ("throughput", "Event throughput"),
    ("fanout", "Fan-out"),
    ("server", "Server cost"),
    ("errors", "Errors"),
    ("locust", "Locust cross-check"),
    ("logs", "Logs"),
)


@dataclass
class Table:
    """Rows of already formatted cells; ``numeric`` columns are right-aligned."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] | None = None


@dataclass
class Section:
    key: str
    title: str
    alert: list[str] = field(default_factory=list)
    """Shown first and highlighted: why a report is partial."""
    text: list[str] = field(default_factory=list)
    """Paragraphs of plain text."""
    tables: list[Table] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    """Preformatted lines (log excerpts)."""
    footer: list[str] = field(default_factory=list)
    """Paragraphs after the tables."""


def cell_sections(summary: dict[str, Any]) -> list[Section]:
    """Every section of a cell report, in order."""
    builders = {
        "overview": _overview, "latency": _latency, "gc": _gc, "connections": _connections,
        "throughput": _throughput, "fanout": _fanout, "server": _server,
        "errors": _errors, "locust": _locust, "logs": _logs,
    }
    return [builders[key](Section(key, title), summary) for key, title in CELL_SECTIONS]


#: the longest headline printed whole
HEADLINE_CHARS = 200


def headline(summary: dict[str, Any]) -> str:
    """One line: cell, status and primary figure (a name from the folder shortened to fit a terminal)."""
    text = f"{summary['cell']}: {summary['status']}, {fmt.primary(summary.get('primary'))}"
    return text if len(text) <= HEADLINE_CHARS else text[:HEADLINE_CHARS - 1] + "\u2026"


def _load_text(run: dict[str, Any]) -> str:
    load = run.get("load") or {}
    # Payload and room options shape the reference scenarios only: a user's own classes choose their own.
    shaping = shaped_by(str(run.get("scenario") or ""))
    parts = []
    if load.get("users") is not None:
        parts.append(f"{load['users']} users")
    if load.get("spawn_rate") is not None:
        parts.append(f"spawn {load['spawn_rate']}/s")
    if load.get("duration_s") is not None:
        parts.append(f"{load['duration_s']} s")
    if load.get("emit_rate") is not None:
        parts.append(f"emit {load['emit_rate']}/s per user")
    if load.get("payload_bytes") is not None and "payload_bytes" in shaping:
        parts.append(f"payload {load['payload_bytes']} B")
    if load.get("room_size") is not None and "room_size" in shaping:
        parts.append(f"room size {load['room_size']}")
    return ", ".join(parts) if parts else "load shape not recorded"


def _overview(section: Section, s: dict[str, Any]) -> Section:
    run = s["run"]
    window = s["window"]
    samples = s["samples"]
    if s.get("samples_lost"):
        section.alert.append("FAILED: samples were lost before the report could read them; every figure lacks "
                             "them. Problems:")
        section.alert.extend(f"- {p}" for p in s["problems"])
    elif s["partial"]:
        section.alert.append("PARTIAL REPORT: figures use only the valid part of the input. Problems:")
        section.alert.extend(f"- {p}" for p in s["problems"])
    identity = [
        ("cell", s["cell"]), ("status", s["status"]), ("run", run.get("run_id") or fmt.MISSING),
        ("mode", run.get("mode") or fmt.MISSING), ("server", run.get("server") or fmt.MISSING),
        ("scenario", s.get("scenario") or fmt.MISSING), ("load", _load_text(run)),
        ("started", run.get("started_at") or fmt.MISSING),
        ("steady window", f"{fmt.seconds(window['duration_s'])} s after a {window['warmup_s']:g} s warm-up "
                          f"({window['warmup_source']})"),
        ("samples", f"{fmt.count(samples['total'])} read, {fmt.count(samples['steady'])} in the steady window, "
                    f"from {samples['shards_read']} shard(s)"
                    + (f"; {len(samples['shards_skipped'])} skipped" if samples["shards_skipped"] else "")
                    + (f"; {fmt.count(samples['out_of_span'])} outside the run's span dropped"
                       if samples.get("out_of_span") else "")),
        ("primary figure", fmt.primary(s.get("primary"))),
    ]
    if samples.get("recorder_taken") is not None:
        identity.insert(-1, ("recorder", f"{fmt.count(samples['recorder_taken'])} taken, "
                                         f"{fmt.count(samples['recorder_written'])} written, "
                                         f"{fmt.count(samples['recorder_pending'])} pending, "
                                         f"{fmt.count(samples['recorder_dropped'])} dropped "
                                         f"({samples['recorder_files']} recorder file(s))"))
    section.tables.append(Table(["", ""], [[k, v] for k, v in identity]))
    if s["notes"]:
        section.footer.append("Notes:")
        section.footer.extend(f"- {n}" for n in s["notes"])
    return section


def _latency(section: Section, s: dict[str, Any]) -> Section:
    section.text.append(
        "Successful samples in the steady window; milliseconds to the microsecond; exact percentiles "
        "(linear interpolation). Failed samples are counted, not timed."
    )
    rows = [
        [key, e["kind"], fmt.count(e["count"]), fmt.count(e["failed"]), fmt.rate(e["per_s"]),
         fmt.ms(e["mean_us"]), fmt.ms(e["p50_us"]), fmt.ms(e["p90_us"]), fmt.ms(e["p99_us"]),
         fmt.ms(e["p999_us"]), fmt.ms(e["max_us"])]
        for key, e in s["latency"].items()
    ]
    if rows:
        section.tables.append(Table(
            ["name", "kind", "count", "failed", "ok/s", "mean", "p50", "p90", "p99", "p99.9", "max"],
            rows, [False, False] + [True] * 9,
        ))
    else:
        section.text.append("No timed samples in the steady window.")
    return section


def _gc(section: Section, s: dict[str, Any]) -> Section:
    text, tables = gc_section_parts(s.get("gc"), (s.get("run") or {}).get("gc"))
    section.text.extend(text)
    section.tables.extend(Table(columns, rows, numeric) for columns, rows, numeric in tables)
    return section


def _connections(section: Section, s: dict[str, Any]) -> Section:
    c = s["connections"]
    lat = s["latency"]
    rows = []
    for kind, plural in (("connect", "connects"), ("disconnect", "disconnects")):
        e = lat.get(kind, {})
        rows.append([
            kind, fmt.count(c[plural]), fmt.rate(c[f"{plural}_per_s"]), fmt.count(c[f"{kind}_failures"]),
            fmt.ratio(c[f"{kind}_failure_ratio"]), fmt.ms(e.get("p50_us")), fmt.ms(e.get("p99_us")),
            fmt.ms(e.get("max_us")),
        ])
    section.tables.append(Table(
        ["", "ok", "per s", "failures", "failure ratio", "p50 ms", "p99 ms", "max ms"], rows,
        [False] + [True] * 7,
    ))
    section.text.append(
        f"Connected clients in the steady window (from the samples: connects minus disconnects and lost "
        f"connections): peak {fmt.count(c['peak_concurrent'])}, time-weighted mean {fmt.number(c['mean_concurrent'])}."
    )
    if c.get("server_peak_concurrent") is not None:
        section.text.append(
            f"As the server counts them (server.csv connected): peak {fmt.count(c['server_peak_concurrent'])}, "
            f"mean {fmt.number(c['server_mean_concurrent'])}."
        )
    errors = [
        [kind, err, fmt.count(n), fmt.ratio(n / c[f"{kind}_attempts"] if c[f"{kind}_attempts"] else None)]
        for kind in ("connect", "disconnect") for err, n in c[f"{kind}_errors"].items()
    ]
    if errors:
        section.tables.append(Table(["", "error", "count", "of attempts"], errors[:20], [False, False, True, True]))
    return section


def _throughput(section: Section, s: dict[str, Any]) -> Section:
    t = s["throughput"]
    section.tables.append(Table(
        ["acks", "acks/s", "ack failures", "ack bytes/s", "pushes", "pushes/s", "push bytes/s"],
        [[fmt.count(t["acks"]), fmt.rate(t["acks_per_s"]), fmt.count(t["ack_failures"]),
          fmt.rate(t["ack_bytes_per_s"]), fmt.count(t["pushes"]), fmt.rate(t["pushes_per_s"]),
          fmt.rate(t["push_bytes_per_s"])]],
        [True] * 7,
    ))
    check = s.get("stall_check") or {}
    stalls = s.get("stalls") or []
    if not check.get("checked"):
        if check:
            section.text.append(f"Stalls not looked for: {check.get('reason', 'no completions')}.")
    elif stalls:
        section.text.append(
            f"Stalls: {check['count']} stretch(es), {fmt.seconds(check['total_s'], 1)} s in all, with clients "
            f"connected and no ack or push completing for more than {fmt.seconds(check['threshold_s'], 1)} s "
            f"({check['gap_factor']:g}x the median gap between completions, {fmt.ms(check['median_gap_s'] * 1e6)} ms, "
            f"at least {check['min_s']:g} s); "
            "shaded on the throughput plot of report.html."
        )
        section.tables.append(Table(
            ["stall from (s since load start)", "length s"],
            [[fmt.seconds(x["start_s"], 1), fmt.seconds(x["length_s"], 1)] for x in stalls[:20]],
            [True, True],
        ))
    else:
        section.text.append(
            f"No stalls: acks and pushes never stopped for more than {fmt.seconds(check['threshold_s'], 1)} s "
            "while clients were connected."
        )
    return section


def _fanout(section: Section, s: dict[str, Any]) -> Section:
    f = s.get("fanout")
    if not f:
        section.text.append("No fan-out in this run (no acks with expected deliveries, no fan-out pushes).")
        return section
    rows = [
        [f"{name} -> {e['push']}", fmt.count(e["sends"]), fmt.count(e["expected"]), fmt.count(e["received"]),
         fmt.count(e["lost"]), fmt.ratio(e["loss_ratio"]), fmt.ms(e["delivery_p50_us"]),
         fmt.ms(e["delivery_p99_us"]), fmt.ms(e["delivery_max_us"])]
        for name, e in f["by_event"].items()
    ]
    section.tables.append(Table(
        ["event -> push", "sends", "expected", "received", "lost", "loss", "delivery p50 ms", "p99 ms", "max ms"],
        rows, [False] + [True] * 8,
    ))
    section.text.append(
        f"Total: {fmt.count(f['expected'])} deliveries expected, {fmt.count(f['received'])} received, "
        f"{fmt.count(f['lost'])} lost ({fmt.ratio(f['loss_ratio'])})."
    )
    return section


def _server(section: Section, s: dict[str, Any]) -> Section:
    v = s.get("server")
    if not v:
        section.text.append("No server figures: server.csv is missing or unusable (see the overview's problems).")
        return section
    def cpu_row(label: str, c: dict[str, Any]) -> list[str]:
        return [label, fmt.seconds(c["cpu_s"]), fmt.number(c["cpu_cores"]), fmt.seconds(c["cpu_s_per_1k_acks"], 4),
                fmt.seconds(c["cpu_s_per_1k_connects"], 4), fmt.seconds(c["covered_s"], 1)]

    rows = [cpu_row("target", v)]
    if s.get("loadgen"):
        rows.append(cpu_row("load generator", s["loadgen"]))
    section.tables.append(Table(
        ["", "CPU s", "cores busy", "CPU s / 1k acks", "CPU s / 1k connects", "seconds covered"],
        rows, [False] + [True] * 5,
    ))
    section.tables.append(Table(
        ["peak RSS", "baseline RSS", "RSS per client", "peak clients", "peak threads", "peak fds"],
        [[fmt.mib(v["peak_rss_bytes"]), fmt.mib(v["baseline_rss_bytes"]), fmt.kib(v["rss_per_client_bytes"]),
          fmt.count(v["peak_clients"]), fmt.count(v["peak_threads"]), fmt.count(v["peak_fds"])]],
        [True] * 6,
    ))
    section.text.append(
        "CPU of each whole process tree in the steady window (the load generator shares the machine: its cost "
        "is part of every figure). RSS per client = (peak RSS - RSS at the first server sample) / peak "
        f"connected clients ({v['peak_clients_source']})."
    )
    if "rss_before_bytes" in v:
        section.tables.append(Table(
            ["RSS before the load", "RSS after the load", "kept", "RSS growth / 1k connects",
             "RSS growth / 1k acks"],
            [[fmt.mib(v["rss_before_bytes"]), fmt.mib(v["rss_after_bytes"]), fmt.mib(v["rss_kept_bytes"]),
              fmt.kib(v["rss_growth_bytes_per_1k_connects"]), fmt.kib(v["rss_growth_bytes_per_1k_acks"])]],
            [True] * 5,
        ))
        section.footer.append(
            "Memory over time: RSS before the load is the last server.csv row before the load started; after, "
            "the last row after it ended, once clients are gone (n/a when the sampler stopped with the load). "
            "Growth per 1k connects (acks) is the least-squares slope of RSS against the running count of "
            "connects (acks) over the steady window; each is fitted alone, so where both grow each carries "
            "the other's cost."
        )
    return section


def _errors(section: Section, s: dict[str, Any]) -> Section:
    section.text.append(
        f"Failed share of operations (connects, disconnects, acks, errors) in the steady window: "
        f"{fmt.ratio(s['error_ratio'])}."
    )
    by_name = s.get("errors_by_name") or []
    if by_name:
        rows = [[e["kind"], e["name"], e["error"], fmt.count(e["count"])] for e in by_name[:20]]
        section.tables.append(Table(["kind", "name", "error", "count"], rows, [False, False, False, True]))
        if len(s["errors"]) > 20:
            section.text.append(f"{len(s['errors']) - 20} more distinct errors in summary.json.")
    else:
        section.text.append("No failures.")
    return section


def _locust(section: Section, s: dict[str, Any]) -> Section:
    rows = s.get("locust")
    if rows is None:
        section.text.append("No usable locust_stats.csv; nothing to cross-check.")
        return section
    section.text.append(
        "Whole-run counts. Locust's own percentiles are rounded to whole milliseconds and are not used; "
        "its Aggregated row double-counts some calls and is left out."
    )
    section.tables.append(Table(
        ["type", "name", "Locust requests", "recorder samples", "gap", "Locust failures", "recorder failures"],
        [[r["type"], r["name"], fmt.count(r["locust_requests"]), fmt.count(r["recorder_count"]),
          fmt.count(r.get("gap", r["locust_requests"] - r["recorder_count"])),
          fmt.count(r["locust_failures"]), fmt.count(r["recorder_failures"])] for r in rows],
        [False, False, True, True, True, True, True],
    ))
    return section


def _logs(section: Section, s: dict[str, Any]) -> Section:
    logs = s.get("logs") or {}
    if not logs:
        section.text.append("No target.log or locust.log in the folder.")
        return section
    section.tables.append(Table(
        ["log", "lines", "error lines", "tracebacks", "size"],
        [[name, fmt.count(v["lines"]) + ("" if v["scanned_all"] else " (first 64 MiB)"),
          fmt.count(v["error_lines"]), fmt.count(v["tracebacks"]), fmt.kib(v["bytes"])]
         for name, v in logs.items()],
        [False, True, True, True, True],
    ))
    for name, v in logs.items():
        section.code.extend(f"{name}: {line}" for line in v["examples"][:3])
    return section


# --- comparison of several cells ------------------------------------------------------

# How the comparison table shows each kind of figure (sioharness/core/figures.py names the kind).
_FORMATS: dict[str, Any] = {
    "rate": fmt.rate, "ms": fmt.ms, "count": fmt.count, "number": fmt.number, "ratio": fmt.ratio,
    "seconds4": lambda v: fmt.seconds(v, 4), "mib": fmt.mib, "kib": fmt.kib,
}
# (row figure, column title, formatter, ratio column?) of the comparison table, in the
# table's order; columns whose values are all missing or zero are left out, and so is
# the CPU cost that does not fit the scenario (per connect for churn, per ack otherwise).
_COMPARE_COLUMNS: tuple[tuple[str, str, Any, bool], ...] = tuple(
    (f.key, f.title, _FORMATS[f.format], f.ratio) for f in FIGURES if f.title is not None)
# The row figure that duplicates each kind of primary figure (left out of the table).
_PRIMARY_FIGURE = {
    "p99_us": "p99_us", "connects_per_s": "connects_per_s", "rss_per_client_bytes": "rss_per_client_bytes",
}


def compare_sections(comparison: Comparison) -> list[Section]:
    """One section per scenario (ranked table), then cells that could not be reported."""
    sections = []
    for sc in comparison.scenarios:
        section = Section(f"scenario-{sc.scenario}", f"Scenario: {sc.scenario}")
        primary = sc.primary
        if primary:
            direction = "higher is better" if primary["better"] == "higher" else "lower is better"
            section.text.append(f"Ranked by {primary['label']} ({direction}).")
        else:
            section.text.append("No figure to rank these cells by.")
        if sc.reference:
            how = "chosen with --reference" if sc.reference_chosen else "the best-ranked cell"
            section.text.append(f"Ratios (x ref) are cell / {sc.reference} ({how}).")
        skip = {_PRIMARY_FIGURE.get(primary["path"][-1]) if primary else None}
        churn = bool(primary and primary["path"][-1] == "connects_per_s")
        skip.add("cpu_s_per_1k_acks" if churn else "cpu_s_per_1k_connects")
        columns = [(name, title, f, with_ratio) for name, title, f, with_ratio in _COMPARE_COLUMNS
                   if name not in skip and any(r[name] for r in sc.rows)]
        header = ["rank", "cell", "status", primary["label"] if primary else "primary", "x ref"]
        numeric = [True, False, False, True, True]
        for _name, title, _, with_ratio in columns:
            header.append(title)
            numeric.append(True)
            if with_ratio:
                header.append("x ref")
                numeric.append(True)
        rows = []
        for r in sc.rows:
            cells = [str(r["rank"]) if r["rank"] is not None else "-", r["cell"], r["status"] or fmt.MISSING,
                     fmt.figure_value(primary["path"], r["primary"]) if primary else fmt.MISSING,
                     fmt.times(r["vs_reference"]["primary"])]
            for name, _, f, with_ratio in columns:
                cells.append(f(r[name]))
                if with_ratio:
                    cells.append(fmt.times(r["vs_reference"].get(name)))
            rows.append(cells)
        section.tables.append(Table(header, rows, numeric))
        if sc.main_event:
            section.text.append(f"Latency columns are for the main event, {sc.main_event}.")
        sections.append(section)
    if comparison.errors or comparison.notes:
        section = Section("not-reported", "Not reported")
        section.text.extend(f"- {e['cell']}: {e['problem']}" for e in comparison.errors)
        section.text.extend(f"- {n}" for n in comparison.notes)
        sections.append(section)
    return sections

