"""``python -m reports.fidelity RECORDING REPLAY``: does a replay do what the recorded users did?

Both files are traces of ``python -m sioharness.bench.record``: the recording of real
use, and a recording of the app while the generated locustfile ran against
it. Side by side, per client event: its share of all events (the mix),
the replies to its sender and the deliveries to rooms or everyone it caused
per send, payload size percentiles (p50, p95 of the arguments' JSON), and per session
the events sent (mean) and the gaps between them (p50, p90). A share that moved by
more than ``--tolerance`` points, replies or deliveries per send off by
more than 5 %, or a size or gap percentile off by more than 2x, is
flagged. The mix is compared as shares, not rates: a replay is usually run
with more users than were recorded.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sioharness.core.trace_file import Trace, TraceError, read_trace

DEFAULT_TOLERANCE_POINTS = 5.0


@dataclass
class Profile:
    """What one trace shows of its client events."""

    events: dict[str, int] = field(default_factory=dict)
    #: emits back to the sender, and deliveries to rooms and everyone, caused by each event
    replies: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reached: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sizes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    per_session: list[int] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.events.values())


def profile_of(trace: Trace) -> Profile:
    profile = Profile()
    sessions: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    event_of = {r.get("seq"): r["event"] for r in trace.records
                if r.get("type") == "event" and isinstance(r.get("event"), str)}
    for record in trace.records:
        name = event_of.get(record.get("cause")) if record.get("type") == "emit" else None
        if name is not None and record.get("to") == "sender":
            profile.replies[name] += 1
        elif name is not None:
            profile.reached[name] += int(record.get("recipients") or 0) if isinstance(record.get("recipients"),
                                                                                      int) else 0
    for record in trace.records:
        if record.get("type") != "event" or not isinstance(record.get("event"), str):
            continue
        name = record["event"]
        profile.events[name] = profile.events.get(name, 0) + 1
        profile.sizes[name].append(len(json.dumps(record.get("args"), default=str)))
        sessions[record.get("sid")].append(record)
    for events in sessions.values():
        profile.per_session.append(len(events))
        times = sorted(int(r.get("t_ns") or 0) for r in events)
        profile.gaps_ms += [(b - a) / 1e6 for a, b in zip(times, times[1:], strict=False)]
    return profile


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def _off(a: float | None, b: float | None) -> bool:
    """More than 2x apart (either way); never for a missing value or two small ones."""
    if a is None or b is None or max(a, b) < 1:
        return False
    return max(a, b) > 2 * max(min(a, b), 1e-9)


def compare(recorded: Profile, replayed: Profile, tolerance_points: float) -> tuple[str, int]:
    """(Markdown, flags) of the two profiles side by side."""
    flags = 0
    lines = ["| event | recorded share | replay share | replies per send (rec / replay) | deliveries per send | "
             "payload p50 (rec / replay) | p95 | |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name in sorted(set(recorded.events) | set(replayed.events),
                       key=lambda n: -(recorded.events.get(n, 0) + replayed.events.get(n, 0))):
        share_a = 100 * recorded.events.get(name, 0) / max(recorded.total, 1)
        share_b = 100 * replayed.events.get(name, 0) / max(replayed.total, 1)
        p50 = (percentile(recorded.sizes.get(name, []), 0.5), percentile(replayed.sizes.get(name, []), 0.5))
        p95 = (percentile(recorded.sizes.get(name, []), 0.95), percentile(replayed.sizes.get(name, []), 0.95))
        per_send = [(p.replies.get(name, 0) / max(p.events.get(name, 0), 1),
                     p.reached.get(name, 0) / max(p.events.get(name, 0), 1)) for p in (recorded, replayed)]
        notes = []
        if abs(share_a - share_b) > tolerance_points:
            notes.append(f"mix off by {share_b - share_a:+.1f} points")
        for what, was, now in (("replies", per_send[0][0], per_send[1][0]),
                               ("deliveries", per_send[0][1], per_send[1][1])):
            if recorded.events.get(name) and replayed.events.get(name) and abs(now - was) > 0.05 * max(was, now):
                notes.append(f"{what} per send {was:.2f} vs {now:.2f}")
        if _off(*p50) or _off(*p95):
            notes.append("payload size off by more than 2x")
        flags += bool(notes)
        lines.append(f"| `{name}` | {share_a:.1f}% | {share_b:.1f}% | {per_send[0][0]:.2f} / {per_send[1][0]:.2f} | "
                     f"{per_send[0][1]:.2f} / {per_send[1][1]:.2f} | {_num(p50[0])} / {_num(p50[1])} | "
                     f"{_num(p95[0])} / {_num(p95[1])} | {'; '.join(notes) or 'ok'} |")
    rows = [("events per session, mean", statistics.fmean(recorded.per_session) if recorded.per_session else None,
             statistics.fmean(replayed.per_session) if replayed.per_session else None),
            ("gap between a session's events, p50 ms", percentile(recorded.gaps_ms, 0.5),
             percentile(replayed.gaps_ms, 0.5)),
            ("gap between a session's events, p90 ms", percentile(recorded.gaps_ms, 0.9),
             percentile(replayed.gaps_ms, 0.9))]
    lines += ["", "| per session | recorded | replay | |", "|---|---:|---:|---|"]
    for label, a, b in rows:
        flags += _off(a, b)
        lines.append(f"| {label} | {_num(a)} | {_num(b)} | {'off by more than 2x' if _off(a, b) else 'ok'} |")
    return "\n".join(lines), flags


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.fidelity", description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", type=Path, help="the trace of real use (python -m sioharness.bench.record)")
    parser.add_argument("replay", type=Path, help="a trace recorded while the generated locustfile ran")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_POINTS,
                        help=f"points of share an event's mix may move (default {DEFAULT_TOLERANCE_POINTS:g})")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    try:
        recorded, replayed = (profile_of(read_trace(p)) for p in (args.recording, args.replay))
    except TraceError as exc:
        print(f"reports.fidelity: {exc}", file=sys.stderr)
        return 2
    if not recorded.total or not replayed.total:
        print("reports.fidelity: a trace holds no client event", file=sys.stderr)
        return 2
    table, flags = compare(recorded, replayed, args.tolerance)
    text = (f"## Replay fidelity\n\n{recorded.total} recorded client events in {len(recorded.per_session)} "
            f"sessions; {replayed.total} replayed in {len(replayed.per_session)}. "
            f"{'Every figure within bounds.' if not flags else f'{flags} figure(s) off.'}\n\n{table}\n")
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0 if not flags else 1


if __name__ == "__main__":
    sys.exit(main())

