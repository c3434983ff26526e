"""Turn off Nagle's algorithm on each WSGI connection.

The WSGI servers (Werkzeug, eventlet.wsgi, gevent's pywsgi, gunicorn) leave
Nagle on. A server that writes twice in a row, as ``broadcast`` does (the
``fanout`` frame, then the ack), then holds the second write until the
client's delayed ACK: about 40 ms on Linux, measured here as a 42 ms ack
against 1 ms with TCP_NODELAY. uvicorn sets TCP_NODELAY itself, so without
this the comparison would measure a socket option, not the async modes.
"""
from __future__ import annotations

import contextlib
import socket
from typing import Any, Callable, Iterable

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def connection_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client connection's socket, from whichever WSGI server made the environ."""
    for key in ("werkzeug.socket", "gunicorn.socket"):
        if key in environ:
            return environ[key]
    if "eventlet.input" in environ:
        return environ["eventlet.input"].get_socket()
    wsgi_input = environ.get("wsgi.input")
    if environ.get("SERVER_SOFTWARE", "").startswith("gevent") and wsgi_input is not None:
        if not hasattr(wsgi_input, "raw") and hasattr(wsgi_input, "rfile"):
            wsgi_input = wsgi_input.rfile
        raw = getattr(wsgi_input, "raw", None)
        return getattr(raw, "_sock", None)
    return None


class NoDelayMiddleware:
    """Sets TCP_NODELAY on the connection of every request it passes on."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = connection_socket(environ)
        if sock is not None:
            # Not a TCP socket (a unix socket behind a proxy): nothing to do.
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.app(environ, start_response)
