"""A browser's HAR file as a trace: the Socket.IO sessions in its websocket frames.

Chromium's DevTools export websocket frames in ``_webSocketMessages`` (each
``{"type": "send" | "receive", "time": seconds, "data": text}``). For an app
the recorder cannot run, each websocket entry on a ``/socket.io/`` URL is
read as one session, its Engine.IO and Socket.IO packets decoded into the
records :mod:`loadtests.generate` reads (``sioharness/bench/trace_recorder.py``
documents them):

- a CONNECT the client sent, accepted when the server's CONNECT answers it;
- each event the client sent (with its ack id, if any);
- each event the server sent, as an emit ``to`` the sender, caused by the
  client's latest event when it arrived before the next one and within
  ``REPLY_WINDOW_S`` (or by the connect, before any event). **That
  causality is inferred from timing**, not seen: a room message that
  reaches its sender looks like a reply. The trace says so
  (``"inferred": true``), and so does the generated file.

Long-polling sessions (XHR entries) and binary frames are left out, and
counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtests.wire import protocol
from loadtests.wire.errors import ProtocolError
from sioharness.core.untrusted import UntrustedFileError, parse_json, read_bytes

MAX_HAR_BYTES = 1 << 30
#: a server event this soon after a client event, and before the next, counts as its answer
REPLY_WINDOW_S = 1.0


class HarError(ValueError):
    """A file that is not a HAR with Socket.IO websocket sessions; the message says why."""


@dataclass
class HarSessions:
    records: list[dict[str, Any]]
    sessions: int
    skipped_frames: int
    polling_entries: int


def read_har(path: Path) -> HarSessions:
    """The Socket.IO sessions of the HAR file ``path`` as trace records."""
    try:
        document = parse_json(read_bytes(path, MAX_HAR_BYTES), path.name)
    except UntrustedFileError as exc:
        raise HarError(str(exc)) from None
    except OSError as exc:
        raise HarError(f"{path}: {exc.strerror or exc}") from None
    entries = document.get("log", {}).get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise HarError(f"{path.name}: not a HAR file (no log.entries)")
    records: list[dict[str, Any]] = []
    seq = iter(range(1, 1 << 62))
    sessions = skipped = polling = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        url = str((entry.get("request") or {}).get("url") or "")
        if "/socket.io/" not in urlsplit(url).path:
            continue
        frames = entry.get("_webSocketMessages")
        if not isinstance(frames, list):
            polling += "transport=polling" in url
            continue
        sessions += 1
        skipped += _session(f"har-{index}", entry, frames, records, seq)
    if not sessions:
        raise HarError(f"{path.name}: no Socket.IO websocket session (entries on /socket.io/ with "
                       "_webSocketMessages, as Chromium exports them)")
    return HarSessions(records, sessions, skipped, polling)


def _session(sid: str, entry: dict[str, Any], frames: list[Any], records: list[dict[str, Any]],
             seq: Any) -> int:
    """Append one websocket session's records; returns the frames left out."""
    headers = (entry.get("request") or {}).get("headers") or []
    cookie = next((h.get("value", "") for h in headers if isinstance(h, dict)
                   and str(h.get("name", "")).lower() == "cookie"), "")
    cookies = sorted({part.split("=", 1)[0].strip() for part in str(cookie).split(";") if "=" in part})
    skipped = 0
    connect_seq: int | None = None
    last: tuple[int, float, bool] | None = None  # (seq, time, answered yet) of the client's latest event
    for frame in frames:
        if not isinstance(frame, dict) or not isinstance(frame.get("data"), str) or frame.get("opcode", 1) != 1:
            skipped += 1
            continue
        text, sent = frame["data"], frame.get("type") == "send"
        t = float(frame.get("time") or 0.0) if isinstance(frame.get("time"), (int, float)) else 0.0
        if not text.startswith(protocol.EIO_MESSAGE):
            continue  # pings, pongs, upgrade probes
        try:
            packet = protocol.decode(text[1:])
        except ProtocolError:
            skipped += 1
            continue
        t_ns = int(t * 1e9)
        if packet.type == protocol.CONNECT and sent:
            connect_seq = next(seq)
            records.append({"type": "connect", "seq": connect_seq, "sid": sid, "ns": packet.namespace,
                            "auth": "[not recorded]", "cookies": cookies, "accepted": False, "t_ns": t_ns})
        elif packet.type == protocol.CONNECT:
            for record in reversed(records):
                if record.get("type") == "connect" and record.get("sid") == sid:
                    record["accepted"] = True
                    break
        elif packet.type == protocol.EVENT and isinstance(packet.data, list) and packet.data:
            name, args = str(packet.data[0]), packet.data[1:]
            if sent:
                last = (next(seq), t, False)
                records.append({"type": "event", "seq": last[0], "sid": sid, "ns": packet.namespace, "event": name,
                                "args": args, "ack": packet.ack_id is not None, "t_ns": t_ns})
            else:
                if last is None:
                    cause = connect_seq  # before any event of the client's: a greeting
                elif not last[2] and t - last[1] <= REPLY_WINDOW_S:
                    cause, last = last[0], (last[0], last[1], True)  # one answer per event
                else:
                    cause = None  # a push of the server's own
                records.append({"type": "emit", "event": name, "args": args, "to": "sender", "recipients": 1,
                                "cause": cause, "sid": sid, "ns": packet.namespace, "t_ns": t_ns})
        elif packet.type == protocol.DISCONNECT:
            records.append({"type": "disconnect", "sid": sid, "ns": packet.namespace,
                            "reason": "client" if sent else "server", "t_ns": t_ns})
    return skipped
