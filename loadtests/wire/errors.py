"""Exceptions raised by the lean Socket.IO client.

Every failure a load test can meet has its own class, so a sample's error
column says what went wrong (``ConnectRefused: unauthorized``) instead of a
bare socket error.
"""
from __future__ import annotations

from typing import Any


class SocketIOError(Exception):
    """Base class of every error raised by :mod:`loadtests.wire.client`."""


class ConnectError(SocketIOError):
    """The connection could not be set up (TCP refused, bad handshake, timeout)."""


class ConnectRefused(ConnectError):
    """The server refused the namespace connection with a connect error packet."""

    def __init__(self, namespace: str, data: Any) -> None:
        #: the message the server sent ("unauthorized"), or repr of its data
        self.message: str = _refusal_message(data)
        #: the raw CONNECT_ERROR payload
        self.data: Any = data
        self.namespace = namespace
        super().__init__(f"namespace {namespace} refused the connection: {self.message}")


class ProtocolError(SocketIOError):
    """The peer sent something the Engine.IO / Socket.IO / websocket protocol forbids."""


class ConnectionClosed(SocketIOError):
    """The connection is closed (by the server, the network, or :meth:`Client.close`)."""


class CallTimeout(SocketIOError, TimeoutError):
    """No acknowledgement arrived within the call's timeout."""


class UnansweredAtStop(CallTimeout):
    """A call in flight when the load stopped got no acknowledgement (within ``--drain-timeout``)."""


def _refusal_message(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    if isinstance(data, str):
        return data
    return repr(data)
