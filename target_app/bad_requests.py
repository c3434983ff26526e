"""A request that fails on a client's bad input is answered, or dropped, without a traceback.

python-engineio raises from its request handler when a long-polling body or
a websocket frame does not decode (``ValueError`` and kin, see
:data:`quiet_errors.BAD_INPUT`), and a bare ``OSError()`` when the websocket
broke under it. The WSGI servers then print a traceback and try to answer
500, which, on an upgraded connection, writes an HTTP response into the
websocket. Here the first becomes one warning line with the client's
address; an HTTP request is answered 400, and a websocket is dropped the way
its server drops a websocket that ended normally.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Iterable

from .nodelay import WSGIApp
from .quiet_errors import BAD_INPUT

log = logging.getLogger("target_app")


def _is_broken_websocket(exc: BaseException) -> bool:
    # engineio's websocket wrapper raises exactly OSError() when the connection closed.
    return type(exc) is OSError and not exc.args


class AnswerBadRequests:
    """WSGI middleware: bad input never reaches the server's 500 handler."""

    def __init__(self, app: WSGIApp, async_mode: str) -> None:
        self.app = app
        self.async_mode = async_mode

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        except (*BAD_INPUT, OSError) as exc:
            if not isinstance(exc, BAD_INPUT) and not _is_broken_websocket(exc):
                raise
            if isinstance(exc, BAD_INPUT):
                log.warning("bad input from %s:%s (%s %s): %s: %s", environ.get("REMOTE_ADDR"),
                            environ.get("REMOTE_PORT"), environ.get("REQUEST_METHOD"),
                            environ.get("PATH_INFO"), type(exc).__name__, exc)
            if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                return self._end_websocket(environ)
            start_response("400 BAD REQUEST", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"bad request\n"]

    def _end_websocket(self, environ: dict[str, Any]) -> Iterable[bytes]:
        """What each server takes as "the websocket is over, write nothing"."""
        if self.async_mode == "eventlet":
            import eventlet.wsgi

            return eventlet.wsgi.ALREADY_HANDLED
        if "werkzeug.socket" in environ:
            raise ConnectionError("websocket closed")  # Werkzeug drops the connection quietly
        if "gunicorn.socket" in environ:
            raise StopIteration  # gunicorn's sign for a connection the app took over
        return []  # gevent's pywsgi: no status, nothing is written
