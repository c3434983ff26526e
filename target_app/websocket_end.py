"""A websocket's connection ends with the websocket, holding one descriptor while it lives.

Two things the embedded WSGI servers get wrong once a request became a
websocket (simple-websocket under Werkzeug and gevent's pywsgi):

- **Keep-alive after the websocket.** When the websocket is over, the server
  reads the connection for a next HTTP request and answers whatever bytes
  follow the close frame (``HTTP/1.1 400``, ``404``), writing an HTTP
  response into what the client holds as a websocket. Here the connection's
  reading side is ended with the websocket, so the server closes it.
- **Two descriptors per websocket on pywsgi.** simple-websocket ``dup()``s
  gevent's socket, so the server holds the original and the copy for the
  websocket's life: at 10,000 clients it needs 20,000 descriptors and meets
  "Too many open files" at half the limit. pywsgi does not touch its socket
  while the handler runs, so simple-websocket gets a view of the same socket
  whose ``dup`` is "not implemented" (a case it already handles).
"""
from __future__ import annotations

import contextlib
import socket
from types import SimpleNamespace
from typing import Any, Callable, Iterable

from .nodelay import WSGIApp, connection_socket


class _Undupable:
    """The connection's socket in every respect but ``dup``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def dup(self) -> socket.socket:
        raise NotImplementedError("one descriptor per websocket")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _is_gevent(environ: dict[str, Any]) -> bool:
    return str(environ.get("SERVER_SOFTWARE", "")).startswith("gevent")


class WebsocketEndsItsConnection:
    """WSGI middleware for Werkzeug and gevent's pywsgi (gunicorn and eventlet get this right)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = connection_socket(environ)
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket" or sock is None:
            return self.app(environ, start_response)
        rfile = None
        if _is_gevent(environ):
            wsgi_input = environ["wsgi.input"]
            # The connection's buffered reader: the input itself, or behind pywsgi's Input.
            rfile = wsgi_input if hasattr(wsgi_input, "raw") else getattr(wsgi_input, "rfile", None)
            # simple-websocket reads environ["wsgi.input"].raw._sock; an upgrade has no body to read.
            environ["wsgi.input"] = SimpleNamespace(raw=SimpleNamespace(_sock=_Undupable(sock)))
        try:
            return self.app(environ, start_response)
        finally:
            if rfile is not None:
                rfile.close()  # pywsgi stops at a closed reader
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)  # Werkzeug's next read is the end of the stream
