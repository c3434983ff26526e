"""Records a Socket.IO server's sessions as they happen, from inside the server (``--record``).

Loaded by the ``--app`` launcher from this file (standard library only: it
runs in the app's interpreter) when ``$SIO_RECORD`` names the trace to
write. It wraps python-socketio's ``Server`` and ``AsyncServer`` classes,
so the app is not edited, and writes one JSON object a line:

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
import contextvars
import itertools
import json
import os
import re
import threading
import time
from typing import Any

TRACE_VERSION = 1
#: the trace to write, and how many records at most (set by python -m sioharness.bench.record)
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
    """Wrap python-socketio's ``Server`` and ``AsyncServer`` so that every session of this process is recorded."""
    import socketio

    writer = TraceWriter(path, app, max_records)
    atexit.register(writer.close)
    _wrap_server(socketio.Server, _Recording(writer, _ThreadCause()))
    _wrap_async_server(socketio.AsyncServer, _Recording(writer, _TaskCause()))
    return writer


class _ThreadCause:
    """What is being handled, per thread (per greenlet once eventlet or gevent has patched)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, name: str) -> Any:
        return getattr(self._local, name, None)

    def set(self, name: str, value: Any) -> Any:
        outer = self.get(name)
        setattr(self._local, name, value)
        return outer


class _TaskCause:
    """The same per asyncio task (each task runs in a copy of its creator's context)."""

    def __init__(self) -> None:
        self._vars = {name: contextvars.ContextVar(f"sio_trace_{name}", default=None)
                      for name in ("cause", "connect_seq")}

    def get(self, name: str) -> Any:
        return self._vars[name].get()

    def set(self, name: str, value: Any) -> Any:
        outer = self._vars[name].get()
        self._vars[name].set(value)
        return outer


class _Recording:
    """The records both server classes write; the wrappers below only call these around the originals."""

    def __init__(self, writer: TraceWriter, current: Any) -> None:
        self.writer, self.current = writer, current

    def connect(self, server: Any, eio_sid: Any, namespace: Any, data: Any, seq: int) -> None:
        ns = namespace or "/"
        environ = server.environ.get(eio_sid, {})
        cookies = sorted({part.split("=", 1)[0].strip() for part in environ.get("HTTP_COOKIE", "").split(";")
                          if "=" in part})
        sid = server.manager.sid_from_eio_sid(eio_sid, ns)
        self.writer.record("connect", seq=seq, sid=sid, ns=ns, auth=bounded(data), cookies=cookies,
                           accepted=bool(sid and server.manager.is_connected(sid, ns)))

    def event(self, sid: Any, data: Any, namespace: Any, ack_id: Any) -> int:
        seq = self.writer.next_seq()
        self.writer.record("event", seq=seq, sid=sid, ns=namespace or "/", event=str(data[0]),
                           args=[bounded(a) for a in data[1:]], ack=ack_id is not None)
        return seq

    def disconnect(self, server: Any, eio_sid: Any, namespace: Any, reason: Any) -> None:
        ns = namespace or "/"
        sid = server.manager.sid_from_eio_sid(eio_sid, ns)
        if sid is None or not server.manager.is_connected(sid, ns):
            return  # python-socketio is told twice (the client's DISCONNECT, then the transport's close)
        self.writer.record("disconnect", sid=sid, ns=ns, reason=str(reason) if reason is not None else None)

    def emit(self, server: Any, event: str, data: Any, to: Any, room: Any, skip_sid: Any, namespace: Any) -> None:
        ns = namespace or "/"
        target = to if to is not None else room
        cause = self.current.get("cause")
        try:
            recipients: int | None = sum(1 for _ in server.manager.get_participants(ns, target))
        except Exception:  # a room on another instance, an unknown namespace
            recipients = None
        if skip_sid is not None and recipients:
            recipients -= len(skip_sid) if isinstance(skip_sid, list) else 1
        kind = "broadcast" if target is None else "sender" if cause and target == cause[1] else "room"
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        self.writer.record("emit", event=str(event), args=[bounded(a) for a in args], to=kind,
                           room=None if kind != "room" else str(target), recipients=recipients,
                           cause=cause[0] if cause else None, sid=cause[1] if cause else None, ns=ns)

    def membership(self, kind: str, sid: Any, room: Any, namespace: Any) -> None:
        cause = self.current.get("cause")
        self.writer.record(kind, sid=sid, room=str(room), ns=namespace or "/", cause=cause[0] if cause else None)


def _wrap_server(cls: Any, rec: _Recording) -> None:
    original = {name: getattr(cls, name) for name in (
        "_handle_connect", "_handle_event_internal", "_handle_disconnect", "_trigger_event", "emit",
        "enter_room", "leave_room")}

    def handle_connect(self: Any, eio_sid: Any, namespace: Any, data: Any) -> Any:
        seq = rec.writer.next_seq()
        outer = rec.current.set("connect_seq", seq)
        try:
            return original["_handle_connect"](self, eio_sid, namespace, data)
        finally:
            rec.current.set("connect_seq", outer)
            rec.connect(self, eio_sid, namespace, data, seq)

    def handle_event(self: Any, server: Any, sid: Any, eio_sid: Any, data: Any, namespace: Any, id: Any) -> Any:
        outer = rec.current.set("cause", (rec.event(sid, data, namespace, id), sid))
        try:
            return original["_handle_event_internal"](self, server, sid, eio_sid, data, namespace, id)
        finally:
            rec.current.set("cause", outer)

    def trigger_event(self: Any, event: str, namespace: Any, *args: Any) -> Any:
        seq = rec.current.get("connect_seq")
        if event != "connect" or seq is None or not args:
            return original["_trigger_event"](self, event, namespace, *args)
        outer = rec.current.set("cause", (seq, args[0]))  # what the connect handler emits is its doing
        try:
            return original["_trigger_event"](self, event, namespace, *args)
        finally:
            rec.current.set("cause", outer)

    def handle_disconnect(self: Any, eio_sid: Any, namespace: Any, reason: Any = None) -> Any:
        rec.disconnect(self, eio_sid, namespace, reason)
        return original["_handle_disconnect"](self, eio_sid, namespace, reason)

    def emit(self: Any, event: str, data: Any = None, to: Any = None, room: Any = None, skip_sid: Any = None,
             namespace: Any = None, callback: Any = None, ignore_queue: bool = False) -> Any:
        rec.emit(self, event, data, to, room, skip_sid, namespace)
        return original["emit"](self, event, data=data, to=to, room=room, skip_sid=skip_sid, namespace=namespace,
                                callback=callback, ignore_queue=ignore_queue)

    def enter_room(self: Any, sid: Any, room: Any, namespace: Any = None) -> Any:
        rec.membership("join", sid, room, namespace)
        return original["enter_room"](self, sid, room, namespace=namespace)

    def leave_room(self: Any, sid: Any, room: Any, namespace: Any = None) -> Any:
        rec.membership("leave", sid, room, namespace)
        return original["leave_room"](self, sid, room, namespace=namespace)

    for name, wrapper in (("_handle_connect", handle_connect), ("_handle_event_internal", handle_event),
                          ("_trigger_event", trigger_event), ("_handle_disconnect", handle_disconnect),
                          ("emit", emit), ("enter_room", enter_room), ("leave_room", leave_room)):
        setattr(cls, name, wrapper)


def _wrap_async_server(cls: Any, rec: _Recording) -> None:
    original = {name: getattr(cls, name) for name in (
        "_handle_connect", "_handle_event_internal", "_handle_disconnect", "_trigger_event", "emit",
        "enter_room", "leave_room")}

    async def handle_connect(self: Any, eio_sid: Any, namespace: Any, data: Any) -> Any:
        seq = rec.writer.next_seq()
        outer = rec.current.set("connect_seq", seq)
        try:
            return await original["_handle_connect"](self, eio_sid, namespace, data)
        finally:
            rec.current.set("connect_seq", outer)
            rec.connect(self, eio_sid, namespace, data, seq)

    async def handle_event(self: Any, server: Any, sid: Any, eio_sid: Any, data: Any, namespace: Any,
                           id: Any) -> Any:
        outer = rec.current.set("cause", (rec.event(sid, data, namespace, id), sid))
        try:
            return await original["_handle_event_internal"](self, server, sid, eio_sid, data, namespace, id)
        finally:
            rec.current.set("cause", outer)

    async def trigger_event(self: Any, event: str, namespace: Any, *args: Any) -> Any:
        seq = rec.current.get("connect_seq")
        if event != "connect" or seq is None or not args:
            return await original["_trigger_event"](self, event, namespace, *args)
        outer = rec.current.set("cause", (seq, args[0]))
        try:
            return await original["_trigger_event"](self, event, namespace, *args)
        finally:
            rec.current.set("cause", outer)

    async def handle_disconnect(self: Any, eio_sid: Any, namespace: Any, reason: Any = None) -> Any:
        rec.disconnect(self, eio_sid, namespace, reason)
        return await original["_handle_disconnect"](self, eio_sid, namespace, reason)

    async def emit(self: Any, event: str, data: Any = None, to: Any = None, room: Any = None, skip_sid: Any = None,
                   namespace: Any = None, callback: Any = None, ignore_queue: bool = False) -> Any:
        rec.emit(self, event, data, to, room, skip_sid, namespace)
        return await original["emit"](self, event, data=data, to=to, room=room, skip_sid=skip_sid,
                                      namespace=namespace, callback=callback, ignore_queue=ignore_queue)

    async def enter_room(self: Any, sid: Any, room: Any, namespace: Any = None) -> Any:
        rec.membership("join", sid, room, namespace)
        return await original["enter_room"](self, sid, room, namespace=namespace)

    async def leave_room(self: Any, sid: Any, room: Any, namespace: Any = None) -> Any:
        rec.membership("leave", sid, room, namespace)
        return await original["leave_room"](self, sid, room, namespace=namespace)

    for name, wrapper in (("_handle_connect", handle_connect), ("_handle_event_internal", handle_event),
                          ("_trigger_event", trigger_event), ("_handle_disconnect", handle_disconnect),
                          ("emit", emit), ("enter_room", enter_room), ("leave_room", leave_room)):
        setattr(cls, name, wrapper)


def install_from_env(app: str) -> TraceWriter | None:
    """:func:`install` into ``$SIO_RECORD`` (at most ``$SIO_RECORD_MAX`` records), or None when unset."""
    path = os.environ.get(RECORD_ENV)
    if not path:
        return None
    return install(path, app, int(os.environ.get(RECORD_MAX_ENV) or DEFAULT_MAX_RECORDS))
