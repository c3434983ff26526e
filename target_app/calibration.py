"""A minimal Engine.IO v4 / Socket.IO v5 echo server: the load generator's latency floor.

No Flask-SocketIO, no python-socketio: one asyncio process on the pinned
``websockets`` library, speaking just enough of the protocol for the echo
scenario. What a load test measures against it is the load generator, the
loopback and this thin server; against the reference target, that plus
Flask-SocketIO. The difference is what the target costs::

    python -m target_app.calibration --host 127.0.0.1 --port 5100

It answers the websocket transport only (``EIO=4&transport=websocket``, no
long-polling), opens with ``sid``, ``pingInterval``, ``pingTimeout`` and
``maxPayload``, pings every ``--ping-interval`` and drops a client that does
not answer within ``--ping-timeout``. Socket.IO: CONNECT to ``/`` and
``/bench`` (an ``--auth-token`` is checked as the target checks it), DISCONNECT,
and ``echo`` acked with its arguments, binary attachments included. Any other
event that asks for an ack gets ``{"error": "..."}``, which a load test
counts as a failure: the calibration server measures echo, nothing else.

``/healthz`` answers ``ok`` and ``/stats`` the target's counters
(``connected``, ``connects_total``, ``events`` ...), so the harness drives
it like any target: ``--target-cmd "python -m target_app.calibration --host
{host} --port {port}"`` (docs/load-generator.md).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from target_app import contract
from target_app.limits import raise_open_file_limit
from target_app.process import LOOPBACK, TargetProcess, free_port, launch_server

logger = logging.getLogger("target_app.calibration")

SERVER_NAME = "calibration"
ASYNC_MODE = "asyncio"
MAX_PAYLOAD = 1_000_000
MAX_ATTACHMENTS = 1000

# Socket.IO v5 packet types.
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)


class BadPacket(ValueError):
    """A Socket.IO packet this server cannot read."""


@dataclass(frozen=True, slots=True)
class Packet:
    """A Socket.IO packet with its JSON still encoded (``body``)."""

    type: int
    namespace: str
    ack_id: int | None
    body: str
    attachments: int = 0


def parse_packet(text: str) -> Packet:
    """Split ``<type>[<n>-][<namespace>,][<ack id>][<JSON>]`` (the text after Engine.IO's ``4``)."""
    if not text or not "0" <= text[0] <= "6":
        raise BadPacket(f"unknown Socket.IO packet {text[:40]!r}")
    ptype = int(text[0])
    i = 1
    attachments = 0
    if ptype in (BINARY_EVENT, BINARY_ACK):
        dash = text.find("-", i)
        if dash < 0 or not text[i:dash].isdigit():
            raise BadPacket(f"binary packet without an attachment count: {text[:40]!r}")
        attachments = int(text[i:dash])
        if attachments > MAX_ATTACHMENTS:
            raise BadPacket(f"{attachments} attachments (at most {MAX_ATTACHMENTS})")
        i = dash + 1
    namespace = "/"
    if text.startswith("/", i):
        comma = text.find(",", i)
        end = len(text) if comma < 0 else comma
        namespace = text[i:end]
        i = end + 1
    j = i
    while j < len(text) and text[j].isdigit():
        j += 1
    ack_id = int(text[i:j]) if j > i else None
    return Packet(ptype, namespace, ack_id, text[j:], attachments)


def encode(ptype: int, namespace: str, body: str = "", ack_id: int | None = None, attachments: int = 0) -> str:
    """A Socket.IO packet inside an Engine.IO message (the leading ``4``)."""
    head = f"4{ptype}"
    if attachments:
        head += f"{attachments}-"
    if namespace != "/":
        head += namespace + ","
    if ack_id is not None:
        head += str(ack_id)
    return head + body


def event_data(packet: Packet) -> list[Any]:
    """The ``[event name, *args]`` array of an EVENT or BINARY_EVENT packet."""
    try:
        data = json.loads(packet.body)
    except ValueError as exc:
        raise BadPacket(f"event with bad JSON: {packet.body[:40]!r}") from exc
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise BadPacket(f"event without an event name: {packet.body[:40]!r}")
    return data


def echo_ack(packet: Packet, data: list[Any]) -> str:
    """The ack of an ``echo`` event: its arguments after the event name, unchanged (placeholders too)."""
    ack_type = BINARY_ACK if packet.attachments else ACK
    return encode(ack_type, packet.namespace, _dumps(data[1:]), packet.ack_id, packet.attachments)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Stats:
    """The counters behind ``/stats``, shaped like the reference target's."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.connected: Counter[str] = Counter()
        self.connects_total = 0
        self.disconnects_total = 0
        self.rejected_total = 0
        self.events: Counter[str] = Counter()

    def snapshot(self) -> dict[str, Any]:
        by_namespace = {ns: n for ns, n in self.connected.items() if n}
        return {
            "pid": os.getpid(), "async_mode": ASYNC_MODE, "server": SERVER_NAME,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "connected": sum(by_namespace.values()), "connected_by_namespace": by_namespace,
            "connects_total": self.connects_total, "disconnects_total": self.disconnects_total,
            "rejected_total": self.rejected_total, "events": dict(self.events),
        }


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5100
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    auth_token: str | None = None


class Session:
    """One Engine.IO session over one websocket, and its namespace connections."""

    def __init__(self, ws: ServerConnection, settings: Settings, stats: Stats) -> None:
        self.ws = ws
        self.settings = settings
        self.stats = stats
        self.namespaces: dict[str, str] = {}  # namespace -> Socket.IO sid
        self.pong = asyncio.Event()
        self.binary: tuple[Packet, list[bytes]] | None = None  # a binary event awaiting attachments

    async def run(self) -> None:
        s = self.settings
        opening = {"sid": secrets.token_urlsafe(15), "upgrades": [], "pingInterval": int(s.ping_interval * 1000),
                   "pingTimeout": int(s.ping_timeout * 1000), "maxPayload": MAX_PAYLOAD}
        await self.ws.send("0" + _dumps(opening))
        pinger = asyncio.create_task(self._ping())
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    await self._on_text(message)
                else:
                    await self._on_binary(message)
        except ConnectionClosed:
            pass
        except BadPacket as exc:
            logger.info("closing a session: %s", exc)
            await self.ws.close(1002, "protocol error")
        finally:
            pinger.cancel()
            for namespace in self.namespaces:
                self.stats.connected[namespace] -= 1
                self.stats.disconnects_total += 1
            self.namespaces.clear()

    async def _ping(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.ping_interval)
            self.pong.clear()
            await self.ws.send("2")
            try:
                await asyncio.wait_for(self.pong.wait(), s.ping_timeout)
            except TimeoutError:
                await self.ws.close(1000, "ping timeout")
                return

    async def _on_text(self, message: str) -> None:
        kind = message[:1]
        if kind == "4":
            await self._on_packet(parse_packet(message[1:]))
        elif kind == "3":
            self.pong.set()
        elif kind == "1":
            await self.ws.close()
        elif kind not in ("6", "5"):  # noop, upgrade: nothing to do
            raise BadPacket(f"unexpected Engine.IO packet {message[:40]!r}")

    async def _on_packet(self, packet: Packet) -> None:
        if packet.type == EVENT:
            await self._on_event(packet, [])
        elif packet.type == BINARY_EVENT:
            if self.binary is not None:
                raise BadPacket("a binary event started before the previous one got its attachments")
            self.binary = (packet, [])
        elif packet.type == CONNECT:
            await self._on_connect(packet)
        elif packet.type == DISCONNECT and self.namespaces.pop(packet.namespace, None) is not None:
            self.stats.connected[packet.namespace] -= 1
            self.stats.disconnects_total += 1
        # ACK / BINARY_ACK / CONNECT_ERROR from a client: nothing was asked of it.

    async def _on_binary(self, data: bytes) -> None:
        if self.binary is None:
            raise BadPacket(f"binary message ({len(data)} bytes) with no binary event expecting it")
        packet, attachments = self.binary
        attachments.append(data)
        if len(attachments) == packet.attachments:
            self.binary = None
            await self._on_event(packet, attachments)

    async def _on_connect(self, packet: Packet) -> None:
        namespace = packet.namespace
        try:
            auth = json.loads(packet.body) if packet.body else None
        except ValueError as exc:
            raise BadPacket(f"CONNECT with bad JSON: {packet.body[:40]!r}") from exc
        if namespace not in contract.NAMESPACES:
            message = "Invalid namespace"
        elif not contract.check_auth(auth, self.settings.auth_token):
            message = contract.UNAUTHORIZED
        elif namespace in self.namespaces:
            message = "already connected"
        else:
            sid = self.namespaces[namespace] = secrets.token_urlsafe(15)
            self.stats.connected[namespace] += 1
            self.stats.connects_total += 1
            await self.ws.send(encode(CONNECT, namespace, _dumps({"sid": sid})))
            return
        self.stats.rejected_total += 1
        await self.ws.send(encode(CONNECT_ERROR, namespace, _dumps({"message": message})))

    async def _on_event(self, packet: Packet, attachments: list[bytes]) -> None:
        if packet.namespace not in self.namespaces:
            return  # an event on a namespace this client never joined
        data = event_data(packet)
        event = data[0]
        self.stats.events[event] += 1
        if packet.ack_id is None:
            return
        if event == contract.ECHO:
            await self.ws.send(echo_ack(packet, data))
            for attachment in attachments:
                await self.ws.send(attachment)
        else:
            error = {"error": f"the calibration server answers {contract.ECHO!r} only, not {event!r}"}
            await self.ws.send(encode(ACK, packet.namespace, _dumps([error]), packet.ack_id))


def _plain(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)


def http_answer(stats: Stats, request: Request) -> Response | None:
    """``/healthz`` and ``/stats``, or an error for anything but a websocket Engine.IO request; None: upgrade."""
    parts = urlsplit(request.path)
    if parts.path == "/healthz":
        return _plain(HTTPStatus.OK, b"ok\n", "text/plain")
    if parts.path == "/stats":
        return _plain(HTTPStatus.OK, json.dumps(stats.snapshot()).encode(), "application/json")
    if parts.path.rstrip("/") != "/socket.io":
        return _plain(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
    query = parse_qs(parts.query)
    if query.get("EIO") != ["4"] or query.get("transport") != ["websocket"]:
        return _plain(HTTPStatus.BAD_REQUEST, b"the calibration server speaks EIO=4 over transport=websocket only\n",
                      "text/plain")
    return None


async def serve_forever(settings: Settings, stop: asyncio.Future[None] | None = None) -> None:
    stats = Stats()

    async def handle(ws: ServerConnection) -> None:
        await Session(ws, settings, stats).run()

    def process_request(_: ServerConnection, request: Request) -> Response | None:
        return http_answer(stats, request)

    loop = asyncio.get_running_loop()
    if stop is None:
        stopped: asyncio.Future[None] = loop.create_future()

        def on_signal() -> None:
            if not stopped.done():
                stopped.set_result(None)

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal)
        stop = stopped
    async with serve(handle, settings.host, settings.port, process_request=process_request, compression=None,
                     ping_interval=None, max_size=MAX_PAYLOAD, server_header=None):
        # Start-up objects never change: keep them out of every collection.
        gc.collect()
        gc.freeze()
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(f"calibration echo server on http://{host}:{settings.port} (pid {os.getpid()})", flush=True)
        await stop


def launch_calibration(*, host: str = LOOPBACK, port: int | None = None, log_path: Path | None = None,
                       extra_args: Sequence[str] = (), cpu_affinity: Sequence[int] | None = None,
                       ready_timeout: float = 30.0) -> TargetProcess:
    """Start the calibration server as a subprocess and wait for ``/healthz``; the caller must ``stop()`` it."""
    port = port or free_port(host)
    argv = [sys.executable, "-m", "target_app.calibration", "--host", host, "--port", str(port), *extra_args]
    return launch_server(argv, mode=ASYNC_MODE, server=SERVER_NAME, host=host, port=port, log_path=log_path,
                         cpu_affinity=cpu_affinity, ready_timeout=ready_timeout)


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m target_app.calibration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100)
    parser.add_argument("--ping-interval", type=float, default=25.0, help="seconds between pings (default 25)")
    parser.add_argument("--ping-timeout", type=float, default=20.0, help="seconds to answer a ping (default 20)")
    parser.add_argument("--auth-token", default=os.environ.get("TARGET_AUTH_TOKEN"),
                        help="refuse connects without {\"token\": TOKEN} (default: $TARGET_AUTH_TOKEN, else none)")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1..65535, got {args.port}")
    for name in ("ping_interval", "ping_timeout"):
        if not 0 < getattr(args, name) < 86400:
            parser.error(f"--{name.replace('_', '-')} must be a number of seconds > 0")
    return Settings(host=args.host, port=args.port, ping_interval=args.ping_interval,
                    ping_timeout=args.ping_timeout, auth_token=args.auth_token or None)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_open_file_limit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
