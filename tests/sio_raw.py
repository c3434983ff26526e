"""A minimal raw Socket.IO-over-websocket peer for tests that need frame-level control.

It speaks just enough Engine.IO v4 / Socket.IO v5 (open, namespace connect,
one event with an ack) to check a server's behaviour without a full client,
and closes without the close-handshake stall of python-socketio's client.
"""
from __future__ import annotations

import contextlib
import json
from typing import Any

import websocket


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"


class RawPeer:
    def __init__(self, http_url: str, timeout: float = 5.0, namespace: str = "/") -> None:
        self.ws = websocket.create_connection(ws_url(http_url), timeout=timeout)
        opened = self.ws.recv()
        if not opened.startswith("0"):
            raise AssertionError(f"expected an Engine.IO open packet, got {opened!r:.80}")
        self.handshake = json.loads(opened[1:])
        self.prefix = "" if namespace == "/" else namespace + ","
        self.ws.send("40" + self.prefix)
        connected = self.recv_packet()
        if not connected.startswith("40"):
            raise AssertionError(f"expected a namespace connect, got {connected!r:.80}")

    def recv_packet(self) -> str:
        """The next non-ping text packet (pings are answered)."""
        while True:
            packet = self.ws.recv()
            if packet == "2":
                self.ws.send("3")
                continue
            return packet

    def call(self, event: str, data: Any, ack_id: int = 1) -> Any:
        self.ws.send(f"42{self.prefix}{ack_id}" + json.dumps([event, data]))
        expected = f"43{self.prefix}{ack_id}"
        while True:
            packet = self.recv_packet()
            if packet.startswith(expected):
                return json.loads(packet[len(expected):])[0]

    def close(self) -> None:
        with contextlib.suppress(OSError, websocket.WebSocketException):
            self.ws.send("1")  # Engine.IO close
        self.ws.close(timeout=1)

    def __enter__(self) -> "RawPeer":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
