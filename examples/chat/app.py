"""A small chat server on Flask-SocketIO: the own-app example of the harness.

Its contract is its own, not the reference target's:

- connect with ``auth={"token": ...}`` (``$CHAT_TOKEN``, default ``let-me-in``);
  any other token is refused;
- ``join_room {"room"}`` -> ack ``{"room", "members"}``;
- ``chat_message {"room", "text", "t_ns"}`` -> ``new_message`` to every member
  of the room (the sender too), ack ``{"id"}``;
- ``get_history {"room"}`` -> ack: the room's last 20 messages, oldest first;
- ``GET /chat-stats``: messages and deliveries sent so far, members connected.

Run it in any async mode::

    python examples/chat/app.py --port 5001 --async-mode gevent
"""
from __future__ import annotations

import argparse
import sys

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=5001)
parser.add_argument("--async-mode", choices=("threading", "eventlet", "gevent"), default="threading")
args = parser.parse_args()

# Monkey-patch before anything imports socket or threading.
if args.async_mode == "eventlet":
    import eventlet

    eventlet.monkey_patch()
elif args.async_mode == "gevent":
    from gevent import monkey

    monkey.patch_all()

import os  # noqa: E402
import threading  # noqa: E402
from collections import defaultdict, deque  # noqa: E402
from typing import Any  # noqa: E402

from flask import Flask, jsonify, request  # noqa: E402
from flask_socketio import SocketIO, join_room  # noqa: E402

TOKEN = os.environ.get("CHAT_TOKEN", "let-me-in")
HISTORY = 20

app = Flask(__name__)
socketio = SocketIO(app, async_mode=args.async_mode, logger=False, engineio_logger=False)
lock = threading.Lock()
members: defaultdict[str, set[str]] = defaultdict(set)
history: defaultdict[str, deque[dict[str, Any]]] = defaultdict(lambda: deque(maxlen=HISTORY))
counters = {"messages": 0, "deliveries": 0}


@app.get("/chat-stats")
def chat_stats() -> Any:
    with lock:
        connected = len({sid for room in members.values() for sid in room})
        return jsonify(dict(counters, members=connected))


@socketio.on("connect")
def on_connect(auth: Any) -> bool:
    return isinstance(auth, dict) and auth.get("token") == TOKEN


@socketio.on("disconnect")
def on_disconnect(*_: Any) -> None:
    with lock:
        for room in members.values():
            room.discard(request.sid)  # type: ignore[attr-defined]


@socketio.on("join_room")
def on_join(data: Any) -> dict[str, Any]:
    room = str(data.get("room")) if isinstance(data, dict) else ""
    if not room:
        return {"error": "join_room needs {'room': name}"}
    join_room(room)
    with lock:
        members[room].add(request.sid)  # type: ignore[attr-defined]
        return {"room": room, "members": len(members[room])}


@socketio.on("chat_message")
def on_chat(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not data.get("room"):
        return {"error": "chat_message needs {'room', 'text'}"}
    room = str(data["room"])
    with lock:
        counters["messages"] += 1
        message = {"id": counters["messages"], "room": room, "text": str(data.get("text", ""))[:500],
                   "t_ns": data.get("t_ns")}
        history[room].append(message)
        counters["deliveries"] += len(members[room])
    socketio.emit("new_message", message, to=room)
    return {"id": message["id"]}


@socketio.on("get_history")
def on_history(data: Any) -> list[dict[str, Any]]:
    room = str(data.get("room")) if isinstance(data, dict) else ""
    with lock:
        return list(history[room])


if __name__ == "__main__":
    # The harness's GC pause log: into $SIO_GC_LOG when its runner sets it (the cell's gc.csv), else nothing.
    from sioharness.core.gc_pauses import record_gc_pauses

    record_gc_pauses()
    print(f"chat app: {args.async_mode} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    socketio.run(app, host=args.host, port=args.port, allow_unsafe_werkzeug=True)
