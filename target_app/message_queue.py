"""The Redis message queue that lets several target instances act as one.

python-socketio's ``RedisManager`` delivers an emit to this instance's
clients, then publishes it to Redis for the other instances. When Redis is
gone it logs "Cannot publish to redis... giving up" (without the cause), and
the emit has reached this instance's clients only while its ack promised
more. The managers here differ in three ways, so a load test sees a clean
signal:

- **publish first, then deliver here**: an emit reaches every instance or
  none. When the publish fails, nothing is delivered and the handler answers
  ``{"error": "message queue unavailable: ..."}``; the cause is logged;
- **ready when subscribed**: :attr:`RedisQueue.listening` says whether this
  instance receives the others' emits yet (``/healthz`` answers 503 until
  then), so a load never starts while an instance would miss broadcasts;
- a Redis that is gone fails a connect within 2 s instead of hanging.

Build managers after monkey-patching (``target_app.patching``).
"""
from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import socketio

from .settings import MESSAGE_QUEUE_SCHEMES

log = logging.getLogger("target_app")

#: Same channel for the Flask targets and the asyncio baseline, so a mixed set
#: of instances can share one queue.
CHANNEL = "sio-loadharness"
REDIS_OPTIONS = {"socket_connect_timeout": 2.0}


def check_url(url: str) -> str:
    """Return ``url`` if it names a Redis server python-socketio can use, else raise ValueError."""
    if urlsplit(url).scheme not in MESSAGE_QUEUE_SCHEMES:
        raise ValueError(f"message queue must be a redis://host:port/db URL (or rediss://, unix://), got {url!r}")
    return url


def redacted(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


def unavailable(error: str) -> dict[str, str]:
    """The ack of an emit the message queue did not take (and nobody received)."""
    return {"error": f"message queue unavailable, nothing delivered: {error}"}


def _describe(exc: BaseException | None) -> str:
    return "unknown error" if exc is None else f"{type(exc).__name__}: {exc}"


class _EmitState:
    """What one greenlet's (or task's) current emit has done so far."""

    __slots__ = ("deferred", "error")

    def __init__(self) -> None:
        self.deferred: list[dict[str, Any]] | None = None
        self.error: str | None = None


class RedisQueue(socketio.RedisManager):
    """``RedisManager`` that publishes before it delivers and reports failed publishes."""

    #: set by python-socketio's ``_redis_connect`` (declared here: the base class is untyped)
    connected: bool

    def __init__(self, url: str) -> None:
        super().__init__(check_url(url), channel=CHANNEL, redis_options=dict(REDIS_OPTIONS))
        # threading.local is greenlet-local once eventlet or gevent has patched.
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._initialized = False
        #: emits that reached no Redis since start
        self.publish_failures = 0

    def _state(self) -> _EmitState:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _EmitState()
        return state

    def initialize(self) -> None:
        """Start the listener once, whoever asks first (``/healthz`` or a first connect)."""
        with self._init_lock:
            if self._initialized:
                return
            self._initialized = True
        super().initialize()

    @property
    def listening(self) -> bool:
        """True once this instance is subscribed and receives the other instances' emits."""
        pubsub = self.pubsub
        return self._initialized and pubsub is not None and pubsub.subscribed

    def emit(self, event: str, data: Any, namespace: str | None = None, room: str | None = None,
             skip_sid: Any = None, callback: Any = None, to: str | None = None, **kwargs: Any) -> Any:
        if kwargs.get("ignore_queue"):
            return super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                                callback=callback, to=to, **kwargs)
        state = self._state()
        state.deferred, state.error = [], None
        try:
            super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                         callback=callback, to=to, **kwargs)
        finally:
            deferred, state.deferred = state.deferred, None
        if state.error is None:
            for message in deferred:
                super()._handle_emit(message)

    def _handle_emit(self, message: dict[str, Any]) -> None:
        deferred = self._state().deferred
        if deferred is not None:  # our own emit: deliver here once the publish worked
            deferred.append(message)
            return
        super()._handle_emit(message)

    def _publish(self, data: Any) -> Any:
        error: BaseException | None = None
        for _attempt in range(2):  # reconnect once, as python-socketio does
            try:
                if not self.connected:
                    self._redis_connect()
                return self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as exc:  # redis-py's own errors and OS errors
                self.connected = False
                error = exc
        self.publish_failures += 1
        self._state().error = _describe(error)
        log.error("message queue %s: publish failed: %s", redacted(self.redis_url), _describe(error))
        return None

    def take_error(self) -> str | None:
        """Why this greenlet's last emit reached nobody (then forgotten), or None."""
        state = self._state()
        error, state.error = state.error, None
        return error


class AsyncRedisQueue(socketio.AsyncRedisManager):
    """The asyncio counterpart of :class:`RedisQueue` (state per asyncio task)."""

    connected: bool

    def __init__(self, url: str) -> None:
        super().__init__(check_url(url), channel=CHANNEL, redis_options=dict(REDIS_OPTIONS))
        self._states: contextvars.ContextVar[_EmitState] = contextvars.ContextVar("emit_state")
        self._initialized = False
        self.publish_failures = 0

    def initialize(self) -> None:
        if self._initialized:  # one event loop: no lock needed
            return
        self._initialized = True
        # The listener task must not inherit an emit state from the caller's context.
        contextvars.Context().run(super().initialize)

    @property
    def listening(self) -> bool:
        pubsub = self.pubsub
        return self._initialized and pubsub is not None and pubsub.subscribed

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: str | None = None,
                   skip_sid: Any = None, callback: Any = None, to: str | None = None, **kwargs: Any) -> Any:
        if kwargs.get("ignore_queue"):
            return await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, to=to, **kwargs)
        state = _EmitState()  # a fresh one per emit: tasks copy their parent's context
        state.deferred = []
        self._states.set(state)
        try:
            await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid,
                               callback=callback, to=to, **kwargs)
        finally:
            deferred, state.deferred = state.deferred, None
        if state.error is None:
            for message in deferred:
                await super()._handle_emit(message)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        state = self._states.get(None)
        deferred = state.deferred if state is not None else None
        if deferred is not None:
            deferred.append(message)
            return
        await super()._handle_emit(message)

    async def _publish(self, data: Any) -> Any:
        error: BaseException | None = None
        for _attempt in range(2):
            try:
                if not self.connected:
                    self._redis_connect()
                return await self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as exc:
                self.connected = False
                error = exc
        self.publish_failures += 1
        if (state := self._states.get(None)) is not None:
            state.error = _describe(error)
        log.error("message queue %s: publish failed: %s", redacted(self.redis_url), _describe(error))
        return None

    def take_error(self) -> str | None:
        state = self._states.get(None)
        if state is None:
            return None
        error, state.error = state.error, None
        return error
