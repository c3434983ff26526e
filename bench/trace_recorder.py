"""Records a Socket.IO server's sessions as they happen, from inside the server (``--record``).

Loaded by the ``--app`` launcher from this file (standard library only: it
runs in the app's interpreter) when ``$SIO_RECORD`` names the trace to
write. It wraps python-socketio's ``Server`` class, so the app is not
edited, and writes one JSON object a line:

- ``{"type": "trace", "version": 1, "app", "started_ns", "max_records"}``
  first;
- ``connect``: ``sid``, ``ns``, ``auth`` (secret-looking values redacted),
  ``cookies`` (names only), ``accepted``;
- ``event``: a client event: ``sid``, ``ns``, ``event``, ``args``, ``ack``
  (whether the client asked for one), ``seq`` (its number in the trace);
- ``emit``: what the server sent while handling one: ``event``, ``args``,
  ``to`` (``sender``, ``room`` or ``broadcast``), ``room``, ``recipients``,
  and ``cause`` (the ``seq`` of the event or connect being handled, None
  outside any);
- ``join`` / ``leave``: ``sid``, ``room``, ``cause``;
- ``disconnect``: ``sid``, ``reason``;
- ``{"type": "end", "records", "dropped"}`` last, when the server stops.

Every record has ``t_ns`` (wall clock). Arguments are kept up to
``MAX_ARG_CHARS`` of JSON each; past ``max_records`` records nothing more is
written, and the end record says how many were dropped.
"""
from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import threading
import time
from typing import Any

TRACE_VERSION = 1
#: the trace to write, and how many records at most (set by python -m bench.record)
RECORD_ENV, RECORD_MAX_ENV = "SIO_RECORD", "SIO_RECORD_MAX"
DEFAULT_MAX_RECORDS = 200_000
MAX_ARG_CHARS = 4096
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"token|passw|secret|api_?key|authori[sz]ation|cookie|session|credential", re.IGNORECASE)


def redacted(value: Any, depth: int = 0) -> Any:
    """``value`` with the values of secret-looking keys replaced, at any depth (JSON-able values only)."""
    if depth > 20:
        return "[too deep]"
    if isinstance(value, dict):
        return {str(k): REDACTED if _SECRET_KEY.search(str(k)) else redacted(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v, depth + 1) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"binary_bytes": len(value)}
    return repr(value)[:200]


def bounded(value: Any) -> Any:
    """``value`` redacted, and replaced by a note when its JSON is longer than MAX_ARG_CHARS."""
    clean = redacted(value)
    text = json.dumps(clean, default=str)
    return clean if len(text) <= MAX_ARG_CHARS else {"truncated_chars": len(text), "head": text[:200]}


class TraceWriter:
    """A JSON-lines file written from any thread or greenlet, bounded in records."""

    def __init__(self, path: str, app: str, max_records: int) -> None:
        self._handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed at exit)
        self._lock = threading.Lock()
        self.max_records, self.records, self.dropped = max_records, 0, 0
        self._seq = itertools.count(1)
        self._closed = False
        self._write({"type": "trace", "version": TRACE_VERSION, "app": app, "started_ns": time.time_ns(),
                     "max_records": max_records})

    def next_seq(self) -> int:
        return next(self._seq)

    def record(self, kind: str, **fields: Any) -> None:
        with self._lock:
            if self._closed:
                return
            if self.records >= self.max_records:
                self.dropped += 1
                return
            self.records += 1
            self._write({"type": kind, "t_ns": time.time_ns(), **fields})

    def _write(self, document: dict[str, Any]) -> None:
        self._handle.write(json.dumps(document, default=str) + "\n")
        self._handle.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._write({"type": "end", "records": self.records, "dropped": self.dropped})
            self._handle.close()


def install(path: str, app: str, max_records: int = DEFAULT_MAX_RECORDS) -> TraceWriter:
    """Wrap ``socketio.Server`` so that every session of this process is recorded into ``path``."""
    import socketio

    writer = TraceWriter(path, app, max_records)
    atexit.register(writer.close)
    current = threading.local()  # greenlet-local once eventlet or gevent has patched
    server_class = socketio.Server
    original = {name: getattr(server_class, name) for name in (
        "_handle_connect", "_handle_event_internal", "_handle_disconnect", "_trigger_event", "emit", "enter_room",
        "leave_room")}

    def caused(seq: int, sid: Any, call: Any) -> Any:
        outer = getattr(current, "cause", None)
        current.cause = (seq, sid)
        try:
            return call()
        finally:
            current.cause = outer

    def handle_connect(self: Any, eio_sid: Any, namespace: Any, data: Any) -> Any:
        ns = namespace or "/"
        seq = writer.next_seq()
        environ = self.environ.get(eio_sid, {})
        cookies = sorted({part.split("=", 1)[0].strip() for part in environ.get("HTTP_COOKIE", "").split(";")
                          if "=" in part})
        outer, current.connect_seq = getattr(current, "connect_seq", None), seq
        try:
            result = original["_handle_connect"](self, eio_sid, namespace, data)
        finally:
            current.connect_seq = outer
        sid = self.manager.sid_from_eio_sid(eio_sid, ns)
        writer.record("connect", seq=seq, sid=sid, ns=ns, auth=bounded(data), cookies=cookies,
                      accepted=bool(sid and self.manager.is_connected(sid, ns)))
        return result

    def handle_event(self: Any, server: Any, sid: Any, eio_sid: Any, data: Any, namespace: Any, id: Any) -> Any:
        seq = writer.next_seq()
        writer.record("event", seq=seq, sid=sid, ns=namespace or "/", event=str(data[0]),
                      args=[bounded(a) for a in data[1:]], ack=id is not None)
        return caused(seq, sid, lambda: original["_handle_event_internal"](self, server, sid, eio_sid, data,
                                                                           namespace, id))

    def trigger_event(self: Any, event: str, namespace: Any, *args: Any) -> Any:
        seq = getattr(current, "connect_seq", None)
        if event == "connect" and seq is not None and args:  # what the connect handler emits is its doing
            return caused(seq, args[0], lambda: original["_trigger_event"](self, event, namespace, *args))
        return original["_trigger_event"](self, event, namespace, *args)

    def handle_disconnect(self: Any, eio_sid: Any, namespace: Any, reason: Any = None) -> Any:
        ns = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, ns)
        writer.record("disconnect", sid=sid, ns=ns, reason=str(reason) if reason is not None else None)
        return original["_handle_disconnect"](self, eio_sid, namespace, reason)

    def emit(self: Any, event: str, data: Any = None, to: Any = None, room: Any = None, skip_sid: Any = None,
             namespace: Any = None, callback: Any = None, ignore_queue: bool = False) -> Any:
        ns = namespace or "/"
        target = to if to is not None else room
        cause = getattr(current, "cause", None)
        try:
            recipients = sum(1 for _ in self.manager.get_participants(ns, target))
        except Exception:  # a room on another instance, an unknown namespace
            recipients = None
        if skip_sid is not None and recipients:
            recipients -= len(skip_sid) if isinstance(skip_sid, list) else 1
        kind = "broadcast" if target is None else "sender" if cause and target == cause[1] else "room"
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        writer.record("emit", event=str(event), args=[bounded(a) for a in args], to=kind,
                      room=None if kind != "room" else str(target), recipients=recipients,
                      cause=cause[0] if cause else None, sid=cause[1] if cause else None, ns=ns)
        return original["emit"](self, event, data=data, to=to, room=room, skip_sid=skip_sid, namespace=namespace,
                                callback=callback, ignore_queue=ignore_queue)

    def membership(kind: str) -> Any:
        def wrapped(self: Any, sid: Any, room: Any, namespace: Any = None) -> Any:
            cause = getattr(current, "cause", None)
            writer.record(kind, sid=sid, room=str(room), ns=namespace or "/", cause=cause[0] if cause else None)
            return original["enter_room" if kind == "join" else "leave_room"](self, sid, room, namespace=namespace)
        return wrapped

    server_class._handle_connect = handle_connect
    server_class._handle_event_internal = handle_event
    server_class._handle_disconnect = handle_disconnect
    server_class._trigger_event = trigger_event
    server_class.emit = emit
    server_class.enter_room = membership("join")
    server_class.leave_room = membership("leave")
    return writer


def install_from_env(app: str) -> TraceWriter | None:
    """:func:`install` into ``$SIO_RECORD`` (at most ``$SIO_RECORD_MAX`` records), or None when unset."""
    path = os.environ.get(RECORD_ENV)
    if not path:
        return None
    return install(path, app, int(os.environ.get(RECORD_MAX_ENV) or DEFAULT_MAX_RECORDS))
