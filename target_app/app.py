"""The Flask-SocketIO application: the event contract on a WSGI app.

Import this only after ``target_app.patching.patch_for`` has run for
eventlet or gevent (``python -m target_app`` and ``target_app.wsgi`` do).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from flask import Flask, jsonify, request
from flask_socketio import ConnectionRefusedError, SocketIO, emit, join_room, leave_room

from . import contract, inbox_bound
from .admission import Admission, AdmitWSGI
from .bad_requests import AnswerBadRequests
from .message_queue import unavailable
from .nodelay import NoDelayMiddleware
from .packets import BoundedPacket
from .settings import TargetSettings
from .stats import ServerStats
from .ticks import TickSubscriptions
from .websocket_end import WebsocketEndsItsConnection

log = logging.getLogger("target_app")


def _sid() -> str:
    """The Socket.IO session id of the client whose event is being handled."""
    # Flask-SocketIO sets request.sid around each handler; Flask's Request type does not declare it.
    sid: str = request.sid  # type: ignore[attr-defined]
    return sid


def create_app(settings: TargetSettings | None = None) -> Flask:
    """Build the Flask app; its SocketIO is ``app.extensions['socketio']``."""
    settings = settings or TargetSettings()
    if settings.async_mode == "asgi":
        raise ValueError("the asgi baseline is built by target_app.asgi_app.create_asgi_app")
    app = Flask("target_app")
    inbox_bound.install(settings.async_mode)  # before the first websocket: a bound on bytes queued per client
    queue = None
    if settings.message_queue:
        from .message_queue import RedisQueue

        queue = RedisQueue(settings.message_queue)
    socketio = SocketIO(
        app,
        # Always explicit: with eventlet and gevent both installed,
        # python-socketio would silently pick eventlet.
        async_mode=settings.async_mode,
        cors_allowed_origins=settings.cors_allowed_origins,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=settings.max_http_buffer_size,
        # Our manager instead of message_queue=: it reports failed publishes.
        client_manager=queue,
        logger=settings.log_level == "debug",
        engineio_logger=settings.log_level == "debug",
        # A bound on announced binary attachments: one client cannot grow the server's memory.
        serializer=BoundedPacket,
    )
    if settings.tcp_nodelay:
        # Outermost, around the Socket.IO middleware SocketIO() installed.
        # Flask documents wrapping wsgi_app like this, but types it as a method.
        app.wsgi_app = NoDelayMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    # Flask documents wrapping wsgi_app like this, but types it as a method.
    app.wsgi_app = AnswerBadRequests(app.wsgi_app, settings.async_mode)  # type: ignore[method-assign]
    if settings.server == "dev" and settings.async_mode in ("threading", "gevent"):
        app.wsgi_app = WebsocketEndsItsConnection(app.wsgi_app)  # type: ignore[method-assign]
    stats = ServerStats(async_mode=settings.async_mode, server=settings.server)
    stats.admission = Admission(settings.max_connections)
    # Outermost: a refused client costs the least, and never reaches the Socket.IO server.
    app.wsgi_app = AdmitWSGI(app.wsgi_app, stats.admission,  # type: ignore[method-assign]
                             lambda: socketio.server.eio.sockets)
    app.extensions["target_stats"] = stats

    @app.get("/healthz")
    def healthz() -> Any:
        if queue is not None and not queue_ready(socketio, queue):
            return jsonify(status="starting", reason="message queue not subscribed yet"), 503
        return jsonify(status="ok")

    @app.get("/stats")
    def stats_view() -> Any:
        document = stats.snapshot()
        if queue is not None:  # counters only: the queue's URL may hold a password
            document["message_queue"] = {"listening": queue.listening, "publish_failures": queue.publish_failures}
        return jsonify(document)

    for namespace in contract.NAMESPACES:
        _register_namespace(socketio, namespace, stats, settings)
    return app


def queue_ready(socketio: SocketIO, queue: Any) -> bool:
    """Start the queue's listener if no client has yet; True once it is subscribed.

    python-socketio starts it at the first connect, so an instance would miss
    the others' broadcasts until a client of its own came along.
    """
    server = socketio.server
    if not server.manager_initialized:
        server.manager_initialized = True
        queue.initialize()
    return queue.listening


def _register_namespace(socketio: SocketIO, ns: str, stats: ServerStats, settings: TargetSettings) -> None:
    ticks = TickSubscriptions()
    manager = socketio.server.manager

    def publish_error() -> str | None:
        take = getattr(manager, "take_error", None)
        return take() if take else None

    def count(room: str | None) -> int:
        return sum(1 for _ in manager.get_participants(ns, room))

    # A client can send an ordinary event named "connect" or "disconnect": python-socketio
    # hands it to these handlers, so they act only on the real lifecycle of the session.
    @socketio.on("connect", namespace=ns)
    def on_connect(auth: Any = None) -> None:
        if stats.is_connected(ns, _sid()):
            return
        if not contract.check_auth(auth, settings.auth_token):
            stats.rejected()
            raise ConnectionRefusedError(contract.UNAUTHORIZED)
        stats.connected(ns, _sid())
        if settings.handler_loop:  # connects too: churn counted with the same knob
            contract.handler_loop(settings.handler_loop)

    @socketio.on("disconnect", namespace=ns)
    def on_disconnect(*_reason: Any) -> None:
        if not manager.is_connected(_sid(), ns):  # the real disconnect marks the session first
            ticks.cancel(_sid())
            stats.disconnected(ns, _sid())

    def handles(event: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
        """Register a contract event: counted, and a ContractError answered as the error ack."""

        def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
            def handler(data: Any = None) -> Any:
                stats.event(event)
                contract.spend_cpu(settings.handler_cost_us)
                if settings.handler_loop:
                    contract.handler_loop(settings.handler_loop)
                try:
                    return fn(data)
                except contract.ContractError as exc:
                    return contract.error_ack(exc)

            socketio.on(event, namespace=ns)(handler)
            return fn

        return register

    @handles(contract.ECHO)
    def on_echo(data: Any) -> Any:
        return data

    @handles(contract.BROADCAST)
    def on_broadcast(data: Any) -> Any:
        payload, room = contract.broadcast_target(data)
        emit(contract.FANOUT, contract.relayed(payload, _sid()), to=room, namespace=ns, broadcast=True)
        if error := publish_error():
            return unavailable(error)
        # With a message queue: this instance's recipients only.
        return {"recipients": count(room)}

    @handles(contract.JOIN)
    def on_join(data: Any) -> Any:
        room = contract.room_name(data)
        join_room(room)
        return {"room": room, "size": count(room)}

    @handles(contract.LEAVE)
    def on_leave(data: Any) -> Any:
        room = contract.room_name(data)
        leave_room(room)
        return {"room": room, "size": count(room)}

    @handles(contract.ROOM_MESSAGE)
    def on_room_message(data: Any) -> Any:
        room = contract.room_name(data)
        emit(contract.ROOM_MESSAGE, contract.relayed(data.get("payload"), _sid()),
             to=room, namespace=ns, include_self=False)
        if error := publish_error():
            return unavailable(error)
        members = {sid for sid, _ in manager.get_participants(ns, room)}
        return {"recipients": len(members - {_sid()})}

    @handles(contract.SUBSCRIBE_TICKS)
    def on_subscribe_ticks(data: Any) -> Any:
        plan = contract.tick_plan(data)
        sid = _sid()
        token = ticks.start(sid)
        socketio.start_background_task(_send_ticks, socketio, ticks, sid, ns, plan, token)
        return plan.ack()

    @handles(contract.UNSUBSCRIBE_TICKS)
    def on_unsubscribe_ticks(_data: Any) -> Any:
        return {"stopped": ticks.cancel(_sid())}

    @socketio.on("*", namespace=ns)
    def on_unknown(event: str, *_args: Any) -> None:
        # Unknown names are counted under one key: a client must not be able
        # to grow the stats document without bound.
        stats.event("unknown")
        log.debug("unknown event %.64r on %s", event, ns)

    @socketio.on_error(ns)
    def on_error(exc: Exception) -> None:
        stats.event("handler_error")
        log.warning("handler error on %s: %s", ns, exc)


def _send_ticks(socketio: SocketIO, ticks: TickSubscriptions, sid: str, ns: str,
                plan: contract.TickPlan, token: int) -> None:
    """Emit the planned ticks on an absolute schedule so they do not drift."""
    start = time.monotonic()
    for seq in range(plan.count):
        if not ticks.active(sid, token):
            return
        socketio.emit(contract.TICK, contract.tick_message(seq, time.time_ns(), plan.size), to=sid, namespace=ns)
        delay = start + (seq + 1) * plan.interval_s - time.monotonic()
        if delay > 0:
            socketio.sleep(delay)
    ticks.finish(sid, token)
