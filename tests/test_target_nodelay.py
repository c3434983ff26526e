"""TCP_NODELAY reaches the connection socket under every WSGI server's environ."""
from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import pytest

from target_app.nodelay import NoDelayMiddleware
from target_app.settings import parse_settings


@pytest.fixture
def tcp_socket() -> Iterator[socket.socket]:
    """The server side of a real loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        try:
            yield server_side
        finally:
            server_side.close()
            client.close()


ENVIRONS: dict[str, Callable[[socket.socket], dict[str, Any]]] = {
    "werkzeug": lambda s: {"werkzeug.socket": s},
    "gunicorn": lambda s: {"gunicorn.socket": s},
    "eventlet": lambda s: {"eventlet.input": SimpleNamespace(get_socket=lambda: s)},
    "gevent": lambda s: {"SERVER_SOFTWARE": "gevent/26", "wsgi.input": SimpleNamespace(
        rfile=SimpleNamespace(raw=SimpleNamespace(_sock=s)))},
}


@pytest.mark.parametrize("server", sorted(ENVIRONS))
def test_middleware_sets_nodelay_then_calls_the_app(server: str, tcp_socket: socket.socket) -> None:
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    calls = []
    app = NoDelayMiddleware(lambda environ, start: calls.append(environ) or [b"ok"])
    environ = ENVIRONS[server](tcp_socket)
    assert app(environ, lambda *a: None) == [b"ok"]
    assert calls == [environ]
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_unknown_environ_passes_through() -> None:
    app = NoDelayMiddleware(lambda environ, start: [b"ok"])
    assert app({"SERVER_SOFTWARE": "other"}, lambda *a: None) == [b"ok"]


def test_nodelay_is_on_by_default_and_can_be_turned_off() -> None:
    assert parse_settings([], environ={}).tcp_nodelay is True
    assert parse_settings(["--no-tcp-nodelay"], environ={}).tcp_nodelay is False
    assert parse_settings([], environ={"TARGET_TCP_NODELAY": "off"}).tcp_nodelay is False
