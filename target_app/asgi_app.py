"""The asyncio baseline: the same event contract on plain python-socketio.

``AsyncServer`` under uvicorn, with no Flask and no WSGI, so a comparison
shows what Flask-SocketIO and its WSGI servers cost.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Awaitable, Callable

import socketio

from . import contract
from .admission import Admission, AdmitASGI
from .message_queue import unavailable
from .packets import BoundedPacket
from .settings import TargetSettings
from .stats import ServerStats
from .ticks import TickSubscriptions

log = logging.getLogger("target_app")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[str, Any], Awaitable[Any]]


def create_asgi_app(settings: TargetSettings | None = None) -> AdmitASGI:
    settings = settings or TargetSettings(async_mode="asgi", server="uvicorn")
    client_manager = None
    if settings.message_queue:
        from .message_queue import AsyncRedisQueue

        client_manager = AsyncRedisQueue(settings.message_queue)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        cors_allowed_origins=settings.cors_allowed_origins,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=settings.max_http_buffer_size,
        client_manager=client_manager,
        logger=settings.log_level == "debug",
        engineio_logger=settings.log_level == "debug",
        serializer=BoundedPacket,  # a bound on announced binary attachments (target_app/packets.py)
    )
    stats = ServerStats(async_mode="asgi", server=settings.server)
    for namespace in contract.NAMESPACES:
        _register_namespace(sio, namespace, stats, settings)
    stats.admission = Admission(settings.max_connections)
    app = AdmitASGI(socketio.ASGIApp(sio, other_asgi_app=_http_app(stats, sio, client_manager)),
                    stats.admission, lambda: sio.eio.sockets)
    app.target_stats = stats  # type: ignore[attr-defined]
    return app


def _http_app(stats: ServerStats, sio: socketio.AsyncServer,
              queue: Any = None) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """``/healthz`` and ``/stats``; 404 for anything else."""

    def health() -> tuple[int, dict[str, str]]:
        if queue is not None:
            # Start the queue's listener now rather than at the first connect.
            if not sio.manager_initialized:
                sio.manager_initialized = True
                queue.initialize()
            if not queue.listening:
                return 503, {"status": "starting", "reason": "message queue not subscribed yet"}
        return 200, {"status": "ok"}

    def stats_document() -> tuple[int, dict[str, Any]]:
        document = stats.snapshot()
        if queue is not None:  # counters only: the queue's URL may hold a password
            document["message_queue"] = {"listening": queue.listening, "publish_failures": queue.publish_failures}
        return 200, document

    routes = {"/healthz": health, "/stats": stats_document}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # ASGIApp answers lifespan events itself; only HTTP reaches here.
        if scope["type"] != "http":
            return
        handler = routes.get(scope["path"]) if scope["method"] == "GET" else None
        status, document = handler() if handler else (404, {"error": "not found"})
        body = json.dumps(document).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


def _register_namespace(sio: socketio.AsyncServer, ns: str, stats: ServerStats, settings: TargetSettings) -> None:
    ticks = TickSubscriptions()
    manager = sio.manager

    def publish_error() -> str | None:
        take = getattr(manager, "take_error", None)
        return take() if take else None

    def members(room: str | None) -> set[str]:
        return {sid for sid, _ in manager.get_participants(ns, room)}

    # An ordinary event named "connect" or "disconnect" reaches these handlers too:
    # only the real lifecycle of a session moves the counters.
    async def connect(sid: str, _environ: dict, auth: Any = None) -> None:
        if stats.is_connected(ns, sid):
            return
        if not contract.check_auth(auth, settings.auth_token):
            stats.rejected()
            raise socketio.exceptions.ConnectionRefusedError(contract.UNAUTHORIZED)
        stats.connected(ns, sid)
        if settings.handler_loop:  # connects too: churn counted with the same knob
            contract.handler_loop(settings.handler_loop)

    async def disconnect(sid: str, *_reason: Any) -> None:
        if not sio.manager.is_connected(sid, ns):  # the real disconnect marks the session first
            ticks.cancel(sid)
            stats.disconnected(ns, sid)

    sio.on("connect", connect, namespace=ns)
    sio.on("disconnect", disconnect, namespace=ns)

    def handles(event: str) -> Callable[[Handler], Handler]:
        """Register a contract event: counted, and a ContractError answered as the error ack."""

        def register(fn: Handler) -> Handler:
            async def handler(sid: str, data: Any = None) -> Any:
                stats.event(event)
                contract.spend_cpu(settings.handler_cost_us)
                if settings.handler_loop:
                    contract.handler_loop(settings.handler_loop)
                try:
                    return await fn(sid, data)
                except contract.ContractError as exc:
                    return contract.error_ack(exc)

            sio.on(event, handler, namespace=ns)
            return fn

        return register

    @handles(contract.ECHO)
    async def echo(_sid: str, data: Any) -> Any:
        return data

    @handles(contract.BROADCAST)
    async def broadcast(sid: str, data: Any) -> Any:
        payload, room = contract.broadcast_target(data)
        await sio.emit(contract.FANOUT, contract.relayed(payload, sid), to=room, namespace=ns)
        if error := publish_error():
            return unavailable(error)
        # With a message queue: this instance's recipients only.
        return {"recipients": len(members(room))}

    @handles(contract.JOIN)
    async def join(sid: str, data: Any) -> Any:
        room = contract.room_name(data)
        await sio.enter_room(sid, room, namespace=ns)
        return {"room": room, "size": len(members(room))}

    @handles(contract.LEAVE)
    async def leave(sid: str, data: Any) -> Any:
        room = contract.room_name(data)
        await sio.leave_room(sid, room, namespace=ns)
        return {"room": room, "size": len(members(room))}

    @handles(contract.ROOM_MESSAGE)
    async def room_message(sid: str, data: Any) -> Any:
        room = contract.room_name(data)
        await sio.emit(contract.ROOM_MESSAGE, contract.relayed(data.get("payload"), sid),
                       to=room, skip_sid=sid, namespace=ns)
        if error := publish_error():
            return unavailable(error)
        return {"recipients": len(members(room) - {sid})}

    @handles(contract.SUBSCRIBE_TICKS)
    async def subscribe_ticks(sid: str, data: Any) -> Any:
        plan = contract.tick_plan(data)
        token = ticks.start(sid)
        sio.start_background_task(_send_ticks, sio, ticks, sid, ns, plan, token)
        return plan.ack()

    @handles(contract.UNSUBSCRIBE_TICKS)
    async def unsubscribe_ticks(sid: str, _data: Any) -> Any:
        return {"stopped": ticks.cancel(sid)}

    async def unknown(event: str, _sid: str, *_args: Any) -> None:
        stats.event("unknown")
        log.debug("unknown event %.64r on %s", event, ns)

    sio.on("*", unknown, namespace=ns)


async def _send_ticks(sio: socketio.AsyncServer, ticks: TickSubscriptions, sid: str, ns: str,
                      plan: contract.TickPlan, token: int) -> None:
    start = time.monotonic()
    for seq in range(plan.count):
        if not ticks.active(sid, token):
            return
        await sio.emit(contract.TICK, contract.tick_message(seq, time.time_ns(), plan.size), to=sid, namespace=ns)
        delay = start + (seq + 1) * plan.interval_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    ticks.finish(sid, token)
