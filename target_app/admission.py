"""Admission of new clients: the target refuses them itself, before its server runs out.

A server that runs out of connection slots or file descriptors stops
answering everything, ``/healthz`` and ``/stats`` too, exactly when a load
test needs to read them (uvicorn answers 503 to all; pywsgi and eventlet
queue new connections; accept() fails with "Too many open files" and a
traceback). So the server's own cap is set :data:`CONTROL_HEADROOM` above
``--max-connections``, and new Engine.IO sessions are refused here, with
``503`` and the reason, at whichever comes first:

- the **connection limit**: ``--max-connections`` sessions;
- the **descriptor limit**: the process's open-file limit, less the
  descriptors it held at start-up and a reserve for the control endpoints.

One log line says when the sessions near the limit (90%), and one line per
second at most while clients are refused. ``/stats`` reports the limit and
the refusals.
"""
from __future__ import annotations

import logging
import os
import resource
import threading
import time
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import parse_qs

from .nodelay import WSGIApp

#: server slots above --max-connections, kept for /healthz, /stats and requests of live sessions
CONTROL_HEADROOM = 64
#: descriptors kept free for the control endpoints, log files and the server's own use
DESCRIPTOR_RESERVE = 64
NEAR_SHARE = 0.9
REFUSAL_LOG_INTERVAL_S = 1.0
ENGINEIO_PATH = "/socket.io"

log = logging.getLogger("target_app")


def open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: no reserve to subtract
        return 0


def descriptor_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 30


class Admission:
    """Decides whether one more client may start a session; counts the refusals."""

    def __init__(self, max_connections: int, fd_limit: Callable[[], int] = descriptor_limit,
                 fds_in_use: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_connections = max_connections
        self._fd_limit = fd_limit  # read at each handshake: a limit changed at run time counts
        self._fds_at_start = open_descriptors() if fds_in_use is None else fds_in_use
        self.limit, self.limited_by = self._bound()
        self.refused = 0
        self._near = False
        self._last_refusal_log = float("-inf")
        self._clock = clock
        self._lock = threading.Lock()

    def _bound(self) -> tuple[int, str]:
        # One descriptor per client (a websocket, or a long-polling request), the reserve aside.
        by_descriptors = max(1, self._fd_limit() - self._fds_at_start - DESCRIPTOR_RESERVE - CONTROL_HEADROOM)
        if by_descriptors < self.max_connections:
            return by_descriptors, "descriptor limit"
        return self.max_connections, "connection limit"

    def admit(self, sessions: int) -> bool:
        """True if a client may open session number ``sessions + 1``."""
        self.limit, self.limited_by = self._bound()
        if sessions >= self.limit:
            with self._lock:
                self.refused += 1
                now = self._clock()
                if now - self._last_refusal_log < REFUSAL_LOG_INTERVAL_S:
                    return False
                self._last_refusal_log = now
                refused = self.refused
            log.warning("refusing new clients at the %s: %d sessions (%d refused so far)",
                        self.limited_by, sessions, refused)
            return False
        if sessions >= NEAR_SHARE * self.limit:
            if not self._near:
                self._near = True
                log.warning("nearing the %s: %d of %d sessions", self.limited_by, sessions, self.limit)
        elif sessions < 0.8 * self.limit:
            self._near = False
        return True

    def reason(self) -> str:
        return f"{self.limited_by} ({self.limit} sessions)"

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"limit": self.limit, "limited_by": self.limited_by, "refused": self.refused}


def open_sessions(sockets: dict[str, Any], exact_from: float) -> int:
    """Engine.IO sessions still open.

    The server's table keeps closed sessions until its periodic purge, so
    its length overcounts. Counting the open ones walks the table: done only
    from ``exact_from`` sessions up, near the limit, where the answer matters.
    """
    count = len(sockets)
    if count < exact_from:
        return count
    return sum(1 for session in list(sockets.values()) if not getattr(session, "closed", False))


def starts_a_session(path: str, query_string: str) -> bool:
    """An Engine.IO handshake: a request to the Socket.IO path that names no session yet."""
    return path.rstrip("/") == ENGINEIO_PATH and "sid" not in parse_qs(query_string)


class AdmitWSGI:
    """WSGI middleware: refuses a new session with 503 when :class:`Admission` says no."""

    def __init__(self, app: WSGIApp, admission: Admission, sockets: Callable[[], dict[str, Any]]) -> None:
        self.app, self.admission, self.sockets = app, admission, sockets

    def sessions(self) -> int:
        return open_sessions(self.sockets(), NEAR_SHARE * self.admission.limit)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (starts_a_session(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""))
                and not self.admission.admit(self.sessions())):
            reason = self.admission.reason()
            start_response(f"503 {self.admission.limited_by}",  # the reason phrase names it, body or not
                           [("Content-Type", "text/plain"), ("Retry-After", "1"), ("Connection", "close")])
            return [f"{reason}\n".encode()]
        return self.app(environ, start_response)


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class AdmitASGI:
    """ASGI middleware: the same refusal for uvicorn (a websocket gets an HTTP 503 denial)."""

    def __init__(self, app: ASGIApp, admission: Admission, sockets: Callable[[], dict[str, Any]]) -> None:
        self.app, self.admission, self.sockets = app, admission, sockets

    def sessions(self) -> int:
        return open_sessions(self.sockets(), NEAR_SHARE * self.admission.limit)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if (scope["type"] in ("http", "websocket")
                and starts_a_session(scope.get("path", ""), scope.get("query_string", b"").decode("latin-1"))
                and not self.admission.admit(self.sessions())):
            body = f"{self.admission.reason()}\n".encode()
            headers = [(b"content-type", b"text/plain"), (b"retry-after", b"1")]
            prefix = "websocket.http." if scope["type"] == "websocket" else "http."
            if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
                await send({"type": "websocket.close", "code": 1013})  # "try again later"
                return
            await send({"type": prefix + "response.start", "status": 503, "headers": headers})
            await send({"type": prefix + "response.body", "body": body})
            return
        await self.app(scope, receive, send)
