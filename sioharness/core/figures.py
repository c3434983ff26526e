"""The figures of a summary.json that comparisons, checks and the A/B read: one table.

Each :class:`Figure` says where it sits in a summary (a dotted path, with
``{main}`` for the cell's main event), which way is better, how the
comparison table shows it, and whether the baseline check and the A/B
judge it. ``reports/metrics.py`` computes the figures; everything that
reads them afterwards takes this table. Adding a figure is one row here
(and its computation).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sioharness.core.scenarios import RANK_CONNECTS, spec_of

# (summary key, quantile) of the latency percentiles.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50_us", 0.5), ("p90_us", 0.9), ("p99_us", 0.99), ("p999_us", 0.999),
)


def latency_key(kind: str, name: str) -> str:
    """The stable key of a measured name in ``summary.json``'s ``latency``.

    Acked events use their name (``echo``); ``connect``/``disconnect`` use
    theirs; anything else is ``kind:name`` (``push:fanout``), because a push
    can share its name with an acked event (``room_message``).
    """
    if kind == "ack" or name == kind:
        return name
    return f"{kind}:{name}"


Better = Literal["lower", "higher"]
#: a cell judged by what an acknowledged event costs, or by what a connection costs
ACKS = "acks"
CONNECTS = "connects"


@dataclass(frozen=True)
class Figure:
    key: str
    #: where it sits in summary.json; ``{main}`` is the cell's main event
    path: str
    #: the comparison table's column title; None: not a column
    title: str | None
    better: Better | None = None
    #: how the comparison table formats it (a name in reports.sections' formatters)
    format: str = "number"
    #: the comparison table shows a ratio against the reference cell
    ratio: bool = False
    #: the cell kinds (ACKS, CONNECTS) whose baseline keeps it (robust figures only)
    baseline: tuple[str, ...] = ()
    #: the cell kinds whose A/B judges it, and its label there
    ab: tuple[str, ...] = ()
    ab_label: str | None = None

    def path_for(self, main_event: str | None) -> list[str] | None:
        """The concrete steps, or None when it needs a main event and there is none."""
        steps = self.path.split(".")
        if "{main}" in steps:
            if not main_event:
                return None
            return [main_event if step == "{main}" else step for step in steps]
        return steps

    def label_for(self, main_event: str | None) -> str:
        return (self.ab_label or self.title or self.key).format(main=main_event or "main")


FIGURES: tuple[Figure, ...] = (
    Figure("acks_per_s", "throughput.acks_per_s", "acks/s", "higher", "rate", ratio=True, baseline=(ACKS,),
           ab=(ACKS,), ab_label="acks/s"),
    Figure("pushes_per_s", "throughput.pushes_per_s", "pushes/s", "higher", "rate"),
    Figure("connects_per_s", "connections.connects_per_s", "connects/s", "higher", "rate", ratio=True,
           baseline=(CONNECTS,), ab=(CONNECTS,), ab_label="connects/s"),
    Figure("disconnects_per_s", "connections.disconnects_per_s", None, "higher"),
    Figure("connect_p50_us", "latency.connect.p50_us", None, "lower", ab=(CONNECTS,), ab_label="connect p50"),
    Figure("connect_p99_us", "latency.connect.p99_us", "connect p99 ms", "lower", "ms", ab=(CONNECTS,),
           ab_label="connect p99"),
    Figure("p50_us", "latency.{main}.p50_us", "p50 ms", "lower", "ms", baseline=(ACKS, CONNECTS), ab=(ACKS,),
           ab_label="{main} p50"),
    Figure("p99_us", "latency.{main}.p99_us", "p99 ms", "lower", "ms", ratio=True, ab=(ACKS,),
           ab_label="{main} p99"),
    Figure("p999_us", "latency.{main}.p999_us", "p99.9 ms", "lower", "ms"),
    # The target's GC pauses (reports.gc_pauses): absent without gc.csv.
    Figure("gc_pauses", "gc.pauses", "GC pauses", "lower", "count"),
    Figure("gc_max_ms", "gc.max_ms", "GC max ms", "lower", "number"),
    Figure("gc_tail_share", "gc.above_p99_overlap_share", ">p99 in GC", "lower", "ratio"),
    Figure("error_ratio", "error_ratio", "errors", "lower", "ratio"),
    Figure("loss_ratio", "fanout.loss_ratio", "loss", "lower", "ratio"),
    Figure("cpu_s_per_1k_acks", "server.cpu_s_per_1k_acks", "CPU s/1k acks", "lower", "seconds4", ratio=True,
           baseline=(ACKS,), ab=(ACKS,), ab_label="server CPU s per 1k acks"),
    Figure("cpu_s_per_1k_connects", "server.cpu_s_per_1k_connects", "CPU s/1k connects", "lower", "seconds4",
           ratio=True, baseline=(CONNECTS,), ab=(CONNECTS,), ab_label="server CPU s per 1k connects"),
    Figure("peak_rss_bytes", "server.peak_rss_bytes", "peak RSS", "lower", "mib", ratio=True),
    Figure("rss_per_client_bytes", "server.rss_per_client_bytes", "RSS/client", "lower", "kib", ratio=True),
)
BY_KEY: dict[str, Figure] = {f.key: f for f in FIGURES}
#: the A/B's order: what the change costs first, then what it achieves, then the latencies
AB_ORDER: tuple[str, ...] = ("cpu_s_per_1k_acks", "cpu_s_per_1k_connects", "acks_per_s", "connects_per_s",
                             "p50_us", "connect_p50_us", "p99_us", "connect_p99_us")


def lookup(summary: Any, path: str | Sequence[str] | None, main_event: str | None = None) -> Any:
    """The value at ``path`` in a summary (dotted, or a list of steps), or None when a step is missing.

    A ``{main}`` step stands for ``main_event`` (default: the summary's own);
    it is substituted after the split, so an event name may hold dots.
    """
    if path is None:
        return None
    steps = path.split(".") if isinstance(path, str) else list(path)
    if "{main}" in steps:
        main = main_event or (summary.get("main_event") if isinstance(summary, dict) else None)
        if not main:
            return None
        steps = [main if step == "{main}" else step for step in steps]
    node: Any = summary
    for step in steps:
        if not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node


def number(summary: Any, path: str | Sequence[str] | None, main_event: str | None = None) -> float | None:
    """The figure at ``path`` when it is a finite number (not a bool), else None."""
    value = lookup(summary, path, main_event)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def cell_kind(summary: dict[str, Any]) -> str:
    """CONNECTS for a cell ranked by its connect rate; ACKS for one about an acknowledged event.

    The summary's primary figure decides, then the scenario's spec, then
    which rate the cell has (connects but no acks: CONNECTS).
    """
    primary = summary.get("primary")
    if isinstance(primary, dict) and primary.get("better") == "higher":
        return CONNECTS
    scenario = summary.get("scenario")
    spec = spec_of(scenario if isinstance(scenario, str) else None)
    if spec.rank_by == RANK_CONNECTS:
        return CONNECTS
    if spec.main_event is not None or (number(summary, "throughput.acks_per_s") or 0) > 0:
        return ACKS
    return CONNECTS if (number(summary, "connections.connects_per_s") or 0) > 0 else ACKS


def judged(summary: dict[str, Any], use: Literal["baseline", "ab"]) -> dict[str, tuple[Figure, str, float]]:
    """key -> (figure, concrete path, value) of the figures a baseline (or the A/B) judges in this cell.

    A figure enters when the cell has it; a rate or cost only when it is above
    zero (a cell with no acks has no per-ack cost to judge).
    """
    kind = cell_kind(summary)
    main = summary.get("main_event") if isinstance(summary.get("main_event"), str) else None
    order = AB_ORDER if use == "ab" else tuple(f.key for f in FIGURES)
    found = {}
    for key in order:
        figure = BY_KEY[key]
        if kind not in (figure.ab if use == "ab" else figure.baseline):
            continue
        steps = figure.path_for(main)
        value = number(summary, steps)
        if steps is None or value is None or (value <= 0 and (use == "ab" or figure.better == "higher")):
            continue
        found[key] = (figure, ".".join(steps), value)
    return found
