"""``python -m loadtests.generate TRACE > locustfile.py``: a locustfile written from what users really did.

Reads a trace of ``python -m sioharness.bench.record`` (one JSON object a line, see
``sioharness/bench/trace_recorder.py``), or a browser's HAR export with websocket
frames (:mod:`loadtests.har_trace`), and writes a readable locustfile on
the public API:

- one user class per kind of session: sessions that sent the same set of
  events are one kind; the class's ``weight`` is how many sessions were of it;
- an event that made the server join the sender to a room is sent once,
  after each connect, with a recorded payload (``self.joined`` then counts
  the member);
- every other event is a ``@task``, weighted by how often that kind of
  session sent it: ``request(..., reply=...)`` where the handler answered
  the sender with an event, ``call`` where the client asked for an ack,
  ``emit`` otherwise; its payload is drawn from those recorded;
- think times are drawn from the recorded gaps between one session's events
  (the distribution, not the mean);
- ``primary`` is the busiest event; events the server sent at connect
  (greetings) get a handler that counts them;
- room and broadcast emits are listed in a comment with how many they
  reached, to be declared as ``fanout`` once the push carries a send time.

What the generator cannot know (a login step, secrets, what varies per
user) is said in comments where it matters. The trace is read as untrusted
input: bounded in size, each line parsed on its own, bad lines counted.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.har_trace import HarError, read_har
from sioharness.core.trace_file import Trace, TraceError, read_trace

PAYLOAD_SAMPLES = 5
GAP_SAMPLES = 50
MAX_CLASSES = 8


@dataclass
class EventStats:
    """What one kind of session did with one event."""

    count: int = 0
    acked: int = 0
    payloads: list[Any] = field(default_factory=list)
    replies: Counter[str] = field(default_factory=Counter)  # emits back to the sender, by event
    spread: Counter[tuple[str, str]] = field(default_factory=Counter)  # (event, room|broadcast) emits
    reached: int = 0  # recipients of those room and broadcast emits
    joins: int = 0  # times handling it joined the sender to a room


@dataclass
class SessionKind:
    events: tuple[str, ...]
    sessions: int = 0
    stats: dict[str, EventStats] = field(default_factory=dict)
    gaps_ms: list[float] = field(default_factory=list)
    greetings: Counter[str] = field(default_factory=Counter)
    cookies: set[str] = field(default_factory=set)
    #: the CONNECT auth payload of the first session that sent one (secrets redacted in the trace)
    auth: dict[str, Any] | None = None
    #: how long each session stayed connected, in seconds, and how many events it sent after its joins:
    #: a replayed session ends after as many events, or as long (a session that only listens)
    durations_s: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    #: from a session's joins to its first other event, in ms (it waited in the room before it spoke)
    first_ms: list[float] = field(default_factory=list)
    #: when each session ended, in seconds from the recording's start: a session that only listens
    #: ends at the same point of its cycle, however late it started
    end_offsets_s: list[float] = field(default_factory=list)
    #: the rooms its sessions joined, and how many of its sessions were in the busiest one together
    rooms: Counter[str] = field(default_factory=Counter)
    room_share: int = 1


def read_source(path: Path) -> Trace:
    """A trace of sioharness.bench.record, or a browser's HAR file (``*.har``) read as one."""
    if path.suffix.lower() != ".har":
        return read_trace(path)
    try:
        har = read_har(path)
    except HarError as exc:
        raise TraceError(str(exc)) from None
    return Trace(f"{path.name} (a browser's HAR: {har.sessions} websocket sessions)", har.records,
                 har.skipped_frames, 0, inferred=True)


def session_kinds(trace: Trace) -> list[SessionKind]:
    """Sessions grouped by the set of events they sent, busiest kind first."""
    by_seq: dict[Any, dict[str, Any]] = {}
    sessions: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    connects: dict[Any, dict[str, Any]] = {}
    ended: dict[Any, int] = {}
    rooms_of: dict[Any, set[str]] = defaultdict(set)
    for record in trace.records:
        kind, sid = record.get("type"), record.get("sid")
        if kind == "event" and isinstance(record.get("event"), str):
            sessions[sid].append(record)
            by_seq[record.get("seq")] = record
        elif kind == "connect" and record.get("accepted"):
            connects[sid] = record
            by_seq[record.get("seq")] = record
        elif kind == "disconnect" and isinstance(record.get("t_ns"), int):
            ended[sid] = record["t_ns"]
        elif kind == "join" and isinstance(record.get("room"), str) and record.get("sid") != record.get("room"):
            rooms_of[sid].add(record["room"])
    caused: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for record in trace.records:
        if record.get("type") in ("emit", "join") and record.get("cause") in by_seq:
            caused[record["cause"]].append(record)

    kinds: dict[tuple[str, ...], SessionKind] = {}
    members: dict[tuple[str, tuple[str, ...]], int] = Counter()  # (room, kind) -> sessions of that kind in it
    started = min((r["t_ns"] for r in trace.records if isinstance(r.get("t_ns"), int)), default=0)
    for sid in set(sessions) | set(connects):
        events = sorted(sessions.get(sid, []), key=lambda r: int(r.get("t_ns") or 0))
        signature = tuple(sorted({str(r["event"]) for r in events}))
        kind = kinds.setdefault(signature, SessionKind(signature))
        kind.sessions += 1
        for room in rooms_of.get(sid, ()):
            kind.rooms[room] += 1
            members[(room, signature)] += 1
        joined_by = {str(r["event"]) for r in events
                     if any(e.get("type") == "join" for e in caused.get(r.get("seq"), []))}
        if len(kind.lengths) < GAP_SAMPLES:
            kind.lengths.append(sum(1 for r in events if str(r["event"]) not in joined_by))
        joins_t = [int(r.get("t_ns") or 0) for r in events if str(r["event"]) in joined_by]
        talks_t = [int(r.get("t_ns") or 0) for r in events if str(r["event"]) not in joined_by]
        if joins_t and talks_t and len(kind.first_ms) < GAP_SAMPLES:
            kind.first_ms.append(round(max(0, talks_t[0] - max(joins_t)) / 1e6, 1))
        connect = connects.get(sid)
        if connect is not None and sid in ended and len(kind.durations_s) < GAP_SAMPLES:
            kind.durations_s.append(round(max(0, ended[sid] - int(connect.get("t_ns") or 0)) / 1e9, 2))
            kind.end_offsets_s.append(round(max(0, ended[sid] - started) / 1e9, 2))
        if connect is not None:
            kind.cookies.update(str(c) for c in connect.get("cookies") or [])
            if kind.auth is None and isinstance(connect.get("auth"), dict) and connect["auth"]:
                kind.auth = connect["auth"]
            for emit in caused.get(connect.get("seq"), []):
                if emit.get("type") == "emit" and emit.get("to") == "sender":
                    kind.greetings[str(emit.get("event"))] += 1
        for before, record in zip([None, *events], events, strict=False):
            stats = kind.stats.setdefault(str(record["event"]), EventStats())
            stats.count += 1
            stats.acked += bool(record.get("ack"))
            if len(stats.payloads) < PAYLOAD_SAMPLES and record.get("args") not in stats.payloads:
                stats.payloads.append(record.get("args"))
            for effect in caused.get(record.get("seq"), []):
                if effect.get("type") == "join":
                    stats.joins += 1
                elif effect.get("to") == "sender":
                    stats.replies[str(effect.get("event"))] += 1
                elif effect.get("to") in ("room", "broadcast"):
                    stats.spread[(str(effect.get("event")), str(effect.get("to")))] += 1
                    stats.reached += int(effect.get("recipients") or 0)
            if before is not None and len(kind.gaps_ms) < GAP_SAMPLES \
                    and not {str(before["event"]), str(record["event"])} & joined_by:
                gap = (int(record.get("t_ns") or 0) - int(before.get("t_ns") or 0)) / 1e6
                if gap >= 0:
                    kind.gaps_ms.append(round(gap, 1))
    for kind in kinds.values():
        if kind.rooms:
            busiest = kind.rooms.most_common(1)[0][0]
            kind.room_share = max(1, members[(busiest, kind.events)])
    return sorted(kinds.values(), key=lambda k: (-k.sessions, k.events))


def class_name(kind: SessionKind, taken: set[str]) -> str:
    if not kind.stats or all(stats.joins for stats in kind.stats.values()):
        busiest = "listener"  # it joined and listened: it sent nothing else
    else:
        busiest = max(kind.stats.items(), key=lambda item: item[1].count)[0]
    base = "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", busiest) if part) or "Recorded"
    name = f"{base}User" if base[0].isalpha() else f"Recorded{base}User"
    number = 2
    candidate = name
    while candidate in taken:
        candidate, number = f"{name[:-4]}{number}User", number + 1
    taken.add(candidate)
    return candidate


def method_name(event: str, taken: set[str]) -> str:
    base = re.sub(r"\W+", "_", event).strip("_").lower() or "event"
    name = f"send_{base}"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def recording_window_s(trace: Trace) -> float:
    """Seconds from the trace's first record to its last: every recorded user lived one session in it."""
    times = [r["t_ns"] for r in trace.records if isinstance(r.get("t_ns"), int)]
    return round((max(times) - min(times)) / 1e9, 2) if len(times) > 1 else 60.0


def render(trace: Trace, kinds: Sequence[SessionKind]) -> str:
    """The locustfile's text."""
    busiest: Counter[str] = Counter()
    for kind in kinds:
        busiest.update({event: stats.count for event, stats in kind.stats.items()})
    lines = [
        f'"""Load test written by python -m loadtests.generate from a recording of {trace.app}.',
        "",
        f"{sum(k.sessions for k in kinds)} sessions of {len(kinds)} kind(s); "
        f"{sum(busiest.values())} client events" + (f"; {trace.dropped} records were dropped while recording"
                                                     if trace.dropped else "") + ".",
        "Edit freely: payloads are drawn from those recorded, think times from the recorded gaps.",
        *(["Which server event answered which client event was inferred from timing (a HAR file), not seen:",
           "check each request(..., reply=...)."] if trace.inferred else []),
        '"""',
        "import os",
        "import random",
        "import time",
        "",
        "from locust import task",
        "",
        "from loadtests import SocketIOUser",
        "",
        "# REPLAY_THINK_SCALE=0.5 replays twice as fast as recorded (think times halved); more users: -u.",
        'THINK_SCALE = float(os.environ.get("REPLAY_THINK_SCALE", "1"))',
        "# Every user's sessions start on one clock's cycles, as the recorded users were together in one recording.",
        "EPOCH = time.monotonic()",
    ]
    taken: set[str] = set()
    for kind in kinds[:MAX_CLASSES]:
        lines += ["", "", *render_class(kind, class_name(kind, taken), busiest, recording_window_s(trace))]
    if len(kinds) > MAX_CLASSES:
        lines += ["", f"# {len(kinds) - MAX_CLASSES} rarer kinds of session left out "
                      f"({sum(k.sessions for k in kinds[MAX_CLASSES:])} sessions)."]
    return "\n".join(lines) + "\n"


def render_class(kind: SessionKind, name: str, busiest: Counter[str], cycle_s: float) -> list[str]:
    joining = [event for event, stats in kind.stats.items() if stats.joins]
    tasks = [event for event in sorted(kind.stats, key=lambda e: -kind.stats[e].count) if event not in joining]
    out = [f"class {name}(SocketIOUser):",
           f'    """{kind.sessions} recorded session(s) that sent: {", ".join(kind.events) or "nothing"}."""',
           "",
           f"    weight = {kind.sessions}"]
    primary = max(tasks, key=lambda e: busiest[e], default=None)
    if primary is not None:
        out.append(f"    primary = {primary!r}")
    out.append(f"    think_ms = {sorted(kind.gaps_ms) or [100.0]!r}  # recorded gaps between events")
    if kind.auth is not None:
        out.append(f"    connect_auth = {_auth_literal(kind.auth)}")
    out.append(f"    session_s = {sorted(kind.durations_s) or [60.0]!r}  # recorded session lengths")
    out.append(f"    end_offsets_s = {sorted(kind.end_offsets_s) or [cycle_s]!r}  # ends in the recording")
    out.append(f"    session_events = {sorted(kind.lengths) or [0]!r}  # events a recorded session sent")
    if kind.first_ms:
        out.append(f"    first_ms = {sorted(kind.first_ms)!r}  # from joining to the first other event")
    out.append(f"    cycle_s = {cycle_s!r}  # the recording's length: one session per user per cycle, as recorded")
    if kind.rooms:
        room = kind.rooms.most_common(1)[0][0]
        out += [f"    # Recorded in {room!r} with {kind.room_share} session(s) of this kind: each user here gets a "
                "room of its own group, as many of this kind to a room.",
                f"    recorded_rooms = {sorted(kind.rooms)!r}",
                f"    room_prefix, room_share = {room!r}, {kind.room_share}"]
    for event in [*joining, *tasks]:
        out.append(f"    {_payloads_name(event)} = {_literal(kind.stats[event].payloads)}")
    spread = [(event, stats) for event, stats in kind.stats.items() if stats.spread]
    for event, stats in spread:
        (push, to), _ = stats.spread.most_common(1)[0]
        out += [f"    # {event!r} made the server emit {push!r} to the {to} ({stats.reached} deliveries for "
                f"{stats.count} sends): to count and time them, declare",
                f'    # fanout = {{{event!r}: FanOut({push!r}, expected="roster", stamp="<path of a t_ns in the '
                f'push>")}} (docs/own-app.md)']
    out += ["", "    def on_start(self):", "        self.greeted = 0"]
    for greeting in kind.greetings:
        out.append(f"        self.on({greeting!r}, self.on_greeting)  # the app emits it in its connect handler")
    if kind.cookies:
        out.append(f"        # The recorded sessions carried cookies ({', '.join(sorted(kind.cookies))}): log in "
                   "first, e.g. self.http.post(\"/login\", data={...}).")
    out += ["", "    def on_greeting(self, *args):", "        self.greeted += 1", "",
            "    def enter(self):",
            '        """This cycle\'s session: connect, and do what each recorded session did first."""',
            "        if self.connected:", "            return True",
            "        cycle = self.cycle_s * THINK_SCALE",
            "        number = int((time.monotonic() - EPOCH) // cycle)",
            "        if number == getattr(self, 'cycle', None):  # this cycle's session is over: wait for the next",
            "            self.pump(min(EPOCH + (number + 1) * cycle - time.monotonic(), 1.0))",
            "            return False",
            "        self.cycle = number",
            "        if not self.connect(" + ("auth=self.connect_auth" if kind.auth is not None else "") + "):",
            "            self.pump(self.reconnect_backoff)", "            return False"]
    for event in joining:
        out += [f"        self.{_send_call(event, kind.stats[event], chosen=_args_of(event, kind))}"]
    if kind.rooms:
        out += ["        self.joined(self.room)"]
    if kind.first_ms:
        out += ["        self.pump(random.choice(self.first_ms) / 1000 * THINK_SCALE)  # as recorded, before speaking"]
    out += ["        self.events_left = random.choice(self.session_events) or None  # None: it only listens",
            "        if self.events_left is None:  # a listener leaves where the recorded ones left, in its cycle",
            "            ends = random.choice(self.end_offsets_s) / self.cycle_s",
            "            self.session_ends = EPOCH + (number + ends) * cycle",
            "        else:",
            "            self.session_ends = time.monotonic() + random.choice(self.session_s) * THINK_SCALE",
            "        return True", "",
            "    def sent(self):", "        if self.events_left is not None:", "            self.events_left -= 1", "",
            "    def think(self):",
            '        """A recorded pause; the session ends after as many events as a recorded one sent, or as long."""',
            "        self.pump(random.choice(self.think_ms) / 1000 * THINK_SCALE)",
            "        done = self.events_left is not None and self.events_left <= 0",
            "        if self.connected and (done or time.monotonic() > self.session_ends):",
            "            self.disconnect()", ""]
    if kind.rooms:
        out += ["    def in_my_room(self, args):",
                '        """The recorded arguments, a recorded room name replaced by this user\'s room."""',
                "        self.room = self.group_room(self.room_prefix, self.room_share)",
                "        return [{k: self.room if v in self.recorded_rooms else v for k, v in a.items()}",
                "                if isinstance(a, dict) else a for a in args]", ""]
    methods: set[str] = set()
    for event in tasks:
        stats = kind.stats[event]
        call = _send_call(event, stats, chosen=_args_of(event, kind))
        out += [f"    @task({stats.count})", f"    def {method_name(event, methods)}(self):",
                "        if self.enter():", f"            self.{call}", "            self.sent()",
                "            self.think()", ""]
    if not tasks:
        out += ["    @task", "    def stay(self):", "        if self.enter():", "            self.think()", ""]
    return out[:-1]


def _args_of(event: str, kind: SessionKind) -> str:
    """The expression of one recorded argument list of ``event``, in this user's room where it names one."""
    drawn = f"random.choice(self.{_payloads_name(event)})"
    return f"self.in_my_room({drawn})" if kind.rooms else drawn


def _send_call(event: str, stats: EventStats, chosen: str) -> str:
    args = f"*{chosen}"
    if stats.replies and stats.replies.most_common(1)[0][1] * 2 >= stats.count:
        reply = stats.replies.most_common(1)[0][0]
        return f"request({event!r}, {args}, reply={reply!r})"
    if stats.acked * 2 >= stats.count:
        return f"call({event!r}, {args})"
    return f"emit({event!r}, {args})"


def _auth_literal(auth: dict[str, Any]) -> str:
    """The recorded auth as Python: a redacted secret read from the environment, the rest as recorded."""
    parts = []
    for key, value in auth.items():
        if value == "[redacted]":
            name = "REPLAY_AUTH_" + (re.sub(r"\W+", "_", str(key)).upper() or "SECRET")
            parts.append(f"{str(key)!r}: os.environ.get({name!r}, '')")
        else:
            parts.append(f"{str(key)!r}: {value!r}")
    return "{" + ", ".join(parts) + "}  # secrets from the environment, never from the recording"


def _payloads_name(event: str) -> str:
    return re.sub(r"\W+", "_", event).strip("_").upper() + "_ARGS" if event else "ARGS"


def _literal(payloads: Iterable[Any]) -> str:
    """Recorded argument lists as Python (they are JSON values: repr is a Python literal of them)."""
    return repr([p if isinstance(p, list) else [] for p in payloads])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("trace", type=Path,
                        help="a trace written by python -m sioharness.bench.record, or a browser's HAR export (*.har)")
    args = parser.parse_args(argv)
    try:
        trace = read_source(args.trace)
    except TraceError as exc:
        print(f"loadtests.generate: {exc}", file=sys.stderr)
        return 2
    kinds = session_kinds(trace)
    if not kinds:
        print(f"loadtests.generate: {args.trace.name} records no session", file=sys.stderr)
        return 2
    sys.stdout.write(render(trace, kinds))
    if trace.bad_lines:
        what = "frames" if trace.inferred else "lines"
        print(f"loadtests.generate: {trace.bad_lines} {what} of {args.trace.name} could not be read and were "
              "left out", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
