"""A lean Socket.IO v5 client over a websocket, built for gevent.

One connection is one non-blocking socket and no greenlet of its own: the
greenlet that uses the client reads the socket while it waits, whether for an
ack (:meth:`Client.call`), for pushes (:meth:`Client.pump`) or for the close.
Pings are answered and event handlers run inside those waits. There is no
polling transport, no reconnection and no background reader or writer: the
load generator should spend its CPU on the load, not on itself (each extra
greenlet hop per message costs as much as the framing).

It needs gevent but not monkey-patching::

    client = Client("http://127.0.0.1:5000", namespace="/bench", auth={"token": "s3cret"})
    client.on("tick", lambda data: print(data["seq"]))
    client.connect()
    print(client.call("echo", {"hello": 1}, timeout=5))
    client.pump(2.0)          # receive pushes (and answer pings) for 2 s
    client.close()

A client that sits idle must still be pumped at least once per ping interval
plus ping timeout (45 s by default) or the server drops it, like any
Engine.IO client that stops answering pings. One greenlet reads at a time;
other greenlets may emit concurrently.

Every wait has a timeout; failures raise the exceptions in
:mod:`loadtests.wire.errors`.
"""
from __future__ import annotations

import _socket
import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent
from gevent import socket as gsocket
from gevent.exceptions import InvalidSwitchError
from gevent.lock import Semaphore

from loadtests.wire import frames, protocol
from loadtests.wire.errors import (
    CallTimeout,
    ConnectError,
    ConnectionClosed,
    ConnectRefused,
    ProtocolError,
    SocketIOError,
)

logger = logging.getLogger(__name__)

Handler = Callable[..., Any]

# Connection states.
NEW, OPENING, CONNECTING, CONNECTED, CLOSED = "new", "opening", "connecting", "connected", "closed"

_RECV_BYTES = 65536
#: events a server may send before the namespace's CONNECT (a connect handler's greetings)
MAX_EARLY_EVENTS = 1000
_READ, _WRITE = 1, 2
_CONNECT_PENDING = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY)
#: what the read watcher's callback hands a waiting reader
_READABLE = object()
_getcurrent = gevent.getcurrent


class _Expired(BaseException):
    """Thrown into a reader whose wait ran out (see :meth:`Client._start_deadline`).

    A ``BaseException`` like ``gevent.Timeout``: a handler's ``except
    Exception`` does not swallow it.
    """

    def __init__(self, timer: Any) -> None:
        super().__init__()
        self.timer = timer


def _expire(reader: Any, timer: Any) -> None:
    reader.throw(_Expired(timer))


def _ip_family(host: str) -> int | None:
    """AF_INET / AF_INET6 for an IP literal, None for a name that needs resolving."""
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
            return family
        except OSError:
            pass
    return None


class PendingAck:
    """A call whose acknowledgement has not been read yet (see :meth:`Client.call_async`)."""

    __slots__ = ("_client", "ack_id", "sent_bytes", "done", "_args", "_error")

    def __init__(self, client: Client, ack_id: int) -> None:
        self._client = client
        #: the ack id the packet carried
        self.ack_id = ack_id
        #: bytes the call put on the wire (websocket framing included)
        self.sent_bytes = 0
        #: True once the ack (or the connection's end) has been read
        self.done = False
        self._args: list[Any] = []
        self._error: SocketIOError | None = None

    def _resolve(self, args: list[Any]) -> None:
        self._args = args
        self.done = True

    def _fail(self, error: SocketIOError) -> None:
        self._error = error
        self.done = True

    def wait(self, timeout: float | None = None) -> Any:
        """Read the connection until the ack arrives; return its value.

        One argument is returned as is, several as a tuple, none as None.
        Raises :class:`CallTimeout` after ``timeout`` seconds (the client's
        default when None) and forgets the call, or :class:`ConnectionClosed`
        when the connection ends first.
        """
        if not self.done:
            client = self._client
            if timeout is None:
                timeout = client.timeout
            if not client._pump_until(self, timeout):
                self._forget()
                raise CallTimeout(f"{self._awaited()} within {timeout:g} s")
        if self._error is not None:
            raise self._error
        args = self._args
        if not args:
            return None
        return args[0] if len(args) == 1 else tuple(args)

    @property
    def args(self) -> list[Any]:
        """The arguments the answer carried (empty until it arrived, or when it carried none)."""
        return self._args

    def _forget(self) -> None:
        self._client._pending.pop(self.ack_id, None)

    def _awaited(self) -> str:
        return f"no ack for call #{self.ack_id}"


class PendingReply(PendingAck):
    """An emit waiting for the server's reply event (see :meth:`Client.request_async`).

    The first ``reply`` event whose arguments ``match`` accepts (any, when
    ``match`` is None) answers it; the event's handlers still run after.
    """

    __slots__ = ("event", "match")

    def __init__(self, client: Client, event: str, match: Callable[..., Any] | None) -> None:
        super().__init__(client, 0)
        #: the reply's event name
        self.event = event
        #: called with the reply's arguments; a true result claims the reply
        self.match = match

    def _forget(self) -> None:
        waiting = self._client._replies.get(self.event)
        if waiting and self in waiting:
            waiting.remove(self)

    def _awaited(self) -> str:
        return f"no {self.event!r} reply"


class Client:
    """One Socket.IO namespace connection over one websocket.

    :param url: ``http://host:port`` (or ``ws://``) of the server.
    :param namespace: the namespace to connect to.
    :param auth: the CONNECT auth payload (e.g. ``{"token": ...}``).
    :param timeout: default seconds for calls, and for connect when
        ``connect_timeout`` is None.
    :param close_timeout: seconds :meth:`close` waits for the server's half of
        the closing handshake before dropping the socket.
    :param path: the Socket.IO endpoint path.
    :param headers: extra HTTP headers for the upgrade request.
    :param max_message_bytes: the largest websocket message accepted.
    """

    # Slots: thousands of idle connections per load generator; a per-instance
    # dict would be a tenth of each one's memory.
    __slots__ = (
        "url", "namespace", "auth", "timeout", "connect_timeout", "close_timeout",
        "_host", "_port", "_host_header", "_target", "_headers", "_max_message_bytes",
        "sid", "eio_sid", "ping_interval", "ping_timeout", "bytes_sent", "bytes_received",
        "message_bytes", "pings", "wakes", "close_reason", "closed_cleanly",
        "_state", "_sock", "_hub", "_read_watcher", "_write_watcher", "_parser", "_write_lock",
        "_reader", "_broken", "_close_sent", "_last_rx", "_drained", "_handlers", "_catch_all",
        "_pending", "_next_id", "_partial", "_timer", "_timer_after", "_ack_head", "_replies", "_early",
    )

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "/",
        auth: dict[str, Any] | None = None,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        close_timeout: float = 2.0,
        path: str = "socket.io",
        headers: dict[str, str] | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "ws"):
            raise ValueError(f"url must be http:// or ws:// (TLS is not supported), got {url!r}")
        if not parts.hostname:
            raise ValueError(f"url has no host: {url!r}")
        self.url = url
        self.namespace = namespace
        self.auth = auth
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.close_timeout = close_timeout
        self._ack_head = protocol.ack_head(namespace)  # validates the namespace early
        self._host = parts.hostname
        self._port = parts.port or 80
        self._host_header = parts.netloc
        query = [("EIO", protocol.EIO_VERSION), ("transport", "websocket")]
        if parts.query:
            for pair in parts.query.split("&"):
                key, sep, value = pair.partition("=")
                if sep:
                    query.append((key, value))
        self._target = "/" + path.strip("/") + "/?" + urlencode(query)
        self._headers = headers or {}
        frames.handshake_request(self._host_header, self._target, "", self._headers)  # bad headers fail here
        self._max_message_bytes = max_message_bytes

        #: the Socket.IO session id of the namespace connection
        self.sid: str | None = None
        #: the Engine.IO session id
        self.eio_sid: str | None = None
        #: seconds, from the server's OPEN packet
        self.ping_interval: float = 25.0
        self.ping_timeout: float = 20.0
        #: cumulative bytes on the wire, websocket framing included
        self.bytes_sent = 0
        self.bytes_received = 0
        #: size of the message being dispatched to a handler (attachments included)
        self.message_bytes = 0
        #: pings the server sent and this client answered
        self.pings = 0
        #: times a wait on this connection resumed (the socket became readable,
        #: or a wait timed out): what holding it costs between messages
        self.wakes = 0
        #: why the connection ended, once it has
        self.close_reason: SocketIOError | None = None
        #: True when close() saw the server's half of the closing handshake
        self.closed_cleanly = False

        self._state = NEW
        self._sock: Any = None  # a non-blocking _socket.socket
        self._hub: Any = None
        self._read_watcher: Any = None
        self._write_watcher: Any = None
        self._parser = frames.FrameParser(max_message_bytes)
        # Created on the first write that has to wait for the socket (see _send_raw).
        self._write_lock: Semaphore | None = None
        self._reader: Any = None  # the greenlet reading now, if any
        self._broken = False  # a frame was cut off mid-write: send nothing more
        self._close_sent = False
        self._last_rx = 0.0
        self._drained = True  # the last read emptied the socket
        self._handlers: dict[str, Handler] = {}
        self._catch_all: Handler | None = None
        self._pending: dict[int, PendingAck] = {}
        #: reply event -> emits waiting for it, oldest first (:meth:`request_async`)
        self._replies: dict[str, list[PendingReply]] = {}
        #: events the server sent before the namespace's CONNECT, delivered after it
        self._early: list[protocol.Packet] = []
        self._next_id = 0
        self._partial: protocol.Packet | None = None
        # The deadline timer of the calls, reused (see _start_deadline).
        self._timer: Any = None
        self._timer_after = -1.0

    # --- public API -----------------------------------------------------

    @property
    def state(self) -> str:
        """``new``, ``opening``, ``connecting``, ``connected`` or ``closed``."""
        return self._state

    @property
    def connected(self) -> bool:
        return self._state == CONNECTED

    @property
    def silent_for(self) -> float:
        """Seconds since the last bytes arrived from the server."""
        return time.monotonic() - self._last_rx

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler(*args)`` for a server event; usable as a decorator.

        ``"*"`` registers a catch-all called as ``handler(event, *args)`` for
        events without their own handler. Handlers run inside whichever wait
        read the message: keep them short and non-blocking. A handler's return
        value answers the server when it asked for an ack.
        """

        def register(fn: Handler) -> Handler:
            if event == "*":
                self._catch_all = fn
            else:
                self._handlers[event] = fn
            return fn

        return register(handler) if handler is not None else register

    def connect(self) -> None:
        """Open the websocket and the namespace within ``connect_timeout``.

        Raises :class:`ConnectError` (refused, handshake failed, timed out),
        :class:`ConnectRefused` when the server refuses the namespace (its
        message in ``.message``), :class:`ProtocolError` on a malformed answer.
        """
        if self._state != NEW:
            raise RuntimeError(f"connect() on a client that is {self._state}; make a new Client")
        self._state = OPENING
        phase = ["tcp connect"]
        timer = gevent.Timeout(self.connect_timeout)
        timer.start()
        try:
            self._open(phase)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            error: SocketIOError = ConnectError(
                f"connect to {self.url} timed out after {self.connect_timeout:g} s during {phase[0]}"
            )
            self._shutdown(error)
            raise error from None
        except SocketIOError as exc:
            self._shutdown(exc)
            raise
        except OSError as exc:
            error = ConnectError(f"connect to {self.url} failed during {phase[0]}: {exc}")
            self._shutdown(error)
            raise error from exc
        except BaseException:
            self._shutdown(ConnectionClosed("connect interrupted"))
            raise
        finally:
            timer.close()

    def emit(self, event: str, *args: Any) -> int:
        """Send an event without asking for an ack; returns the bytes sent."""
        text, attachments = protocol.encode_event(event, args, self.namespace)
        return self._send_packet(text, attachments)

    def call_async(self, event: str, *args: Any) -> PendingAck:
        """Send an event that asks for an ack; collect it with ``.wait()``."""
        self._next_id += 1
        ack_id = self._next_id
        text, attachments = protocol.encode_event(event, args, self.namespace, ack_id)
        pending = PendingAck(self, ack_id)
        self._pending[ack_id] = pending
        try:
            pending.sent_bytes = self._send_packet(text, attachments)
        except BaseException:
            self._pending.pop(ack_id, None)
            raise
        return pending

    def call(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Send an event and return its ack (see :meth:`PendingAck.wait`)."""
        return self.call_async(event, *args).wait(timeout)

    def request_async(self, event: str, *args: Any, reply: str,
                      match: Callable[..., Any] | None = None) -> PendingReply:
        """Emit ``event`` (no ack asked) and await the server's ``reply`` event; collect it with ``.wait()``.

        The commonest Flask-SocketIO pattern: a handler answers with
        ``emit(reply, ...)``. ``match(*reply_args)`` picks the reply that
        belongs to this request when several may be on their way.
        """
        if not isinstance(reply, str) or not reply:
            raise ValueError(f"request({event!r}): reply must be the event name the server answers with, "
                             f"got {reply!r}")
        pending = PendingReply(self, reply, match)
        waiting = self._replies.setdefault(reply, [])
        waiting.append(pending)  # before the emit: a reply can be read while the send waits
        try:
            pending.sent_bytes = self.emit(event, *args)
        except BaseException:
            pending._forget()
            raise
        return pending

    def request(self, event: str, *args: Any, reply: str, match: Callable[..., Any] | None = None,
                timeout: float | None = None) -> Any:
        """Emit ``event`` and return the arguments of its ``reply`` event (see :meth:`PendingAck.wait`)."""
        return self.request_async(event, *args, reply=reply, match=match).wait(timeout)

    def pump(self, timeout: float) -> None:
        """Read the connection for ``timeout`` seconds: run handlers, answer pings.

        Returns after ``timeout``; raises :class:`ConnectionClosed` (or
        :class:`ProtocolError`) as soon as the connection ends.
        """
        self._pump_until(None, timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, *, poll: float | None = None) -> bool:
        """Read the connection until ``predicate()`` is true; False on timeout.

        The predicate is checked after each read; pass ``poll`` (seconds) to
        also check it that often when other greenlets can make it true.
        """
        until = _Predicate(predicate)
        if poll is None:
            return self._pump_until(until, timeout)
        deadline = time.monotonic() + timeout
        while not until.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._pump_until(until, min(poll, remaining))
        return True

    def close(self, timeout: float | None = None) -> None:
        """Leave the namespace and close the websocket, within ``timeout`` seconds.

        Sends DISCONNECT and a websocket close frame together, reads until the
        server's close frame or EOF (so the server sees a clean close and no
        stray bytes), then drops the socket. Safe to call more than once and
        on a failed client.
        """
        if self._state == CLOSED or self._sock is None:
            self._state = CLOSED
            return
        if timeout is None:
            timeout = self.close_timeout
        if self._state == CONNECTED and not self._broken:
            try:
                self._send_raw(
                    frames.encode_frame(frames.OP_TEXT, protocol.encode_disconnect(self.namespace).encode())
                    + frames.encode_close()
                )
                self._close_sent = True
                if self._reader is None:
                    self.closed_cleanly = self._pump_until(_CLOSED, timeout)
            except (SocketIOError, OSError):
                pass  # the connection is ending anyway
        self._shutdown(ConnectionClosed("closed by the client"))

    disconnect = close

    def __enter__(self) -> Client:
        if self._state == NEW:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing --------------------------------------------------------

    def _send_packet(self, text: str, attachments: list[bytes]) -> int:
        if self._state != CONNECTED:
            raise self._not_connected()
        data = frames.encode_frame(frames.OP_TEXT, text.encode())
        for attachment in attachments:
            data += frames.encode_frame(frames.OP_BINARY, attachment)
        self._send_raw(data)
        return len(data)

    def _send_raw(self, data: bytes) -> None:
        sock = self._sock
        if self._broken or sock is None:
            raise self._not_connected()
        lock = self._write_lock
        if lock is None or not lock.locked():
            # Writes almost always complete at once; a lock is only taken (and
            # only created) when one has to wait for the socket mid-frame.
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._broken = True  # nothing of this frame went out, but the socket is failing
                raise ConnectionClosed(f"send failed: {exc}") from exc
            if sent < len(data):
                self._write_rest(data, sent, holding=False)
        else:
            with lock:  # another greenlet is blocked mid-frame: queue behind it
                self._write_rest(data, 0, holding=True)
        self.bytes_sent += len(data)

    def _write_rest(self, data: bytes, sent: int, holding: bool) -> None:
        """Write ``data`` from byte ``sent`` on, waiting for the socket as long as it takes.

        ``holding``: the caller holds the write lock and nothing was tried
        yet; otherwise the lock is taken here (free: under gevent nothing
        else ran since the check in :meth:`_send_raw`).
        """
        sock = self._sock
        acquired = None
        try:
            if holding:
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
            else:
                if self._write_lock is None:
                    self._write_lock = Semaphore()
                acquired = self._write_lock
                acquired.acquire()
            view = memoryview(data)
            while sent < len(data):
                self._hub.wait(self._write_watcher)
                with contextlib.suppress(BlockingIOError):
                    sent += sock.send(view[sent:])
        except BaseException as exc:
            # A frame cut off mid-write would corrupt everything after it.
            self._broken = True
            if isinstance(exc, OSError):
                raise ConnectionClosed(f"send failed: {exc}") from exc
            raise
        finally:
            if acquired is not None:
                acquired.release()

    def _not_connected(self) -> ConnectionClosed:
        if self.close_reason is not None:
            return ConnectionClosed(f"not connected: {self.close_reason}")
        return ConnectionClosed(f"not connected (state {self._state})")

    # --- reading --------------------------------------------------------

    def _recv(self, wait_first: bool = False) -> bytes:
        """Wait until the socket is readable and read what is there.

        ``wait_first`` skips the read attempt that would fail with EAGAIN when
        the socket was just emptied (after sending a call, say): one system
        call less per round trip.
        """
        sock = self._sock
        if wait_first:
            self._wait_readable()
        while True:
            try:
                chunk = sock.recv(_RECV_BYTES)
            except BlockingIOError:
                self._wait_readable()
                continue
            except InterruptedError:
                continue
            if not chunk:
                raise ConnectionClosed("the server closed the connection")
            self.bytes_received += len(chunk)
            self._last_rx = time.monotonic()
            return chunk

    def _wait_readable(self) -> None:
        """Sleep until the socket is readable (``hub.wait`` without its per-wait ``Waiter``)."""
        watcher = self._read_watcher
        watcher.start(_getcurrent().switch, _READABLE)
        try:
            result = self._hub.switch()
        finally:
            watcher.stop()
        self.wakes += 1
        if result is not _READABLE:
            raise InvalidSwitchError(f"unexpected switch into a client's read wait: {result!r}")

    def _start_deadline(self, timeout: float, reader: Any) -> Any:
        """Arm a timer that throws :class:`_Expired` into ``reader`` after ``timeout`` seconds; stop it after.

        Waits of the client's own ``timeout`` (its calls) reuse one timer
        while it is free: a gevent.Timeout per call costs more than the
        framing. It is started with ``again()``, which counts the full
        ``repeat`` (libev's plain start counts what was left when the timer
        last stopped), and repeats only until the wait's end stops it. Other
        waits (an idle user's, of varying length) get a timer of their own
        that nothing keeps after the wait.
        """
        loop = self._hub.loop
        if timeout <= 0:  # due at once, as gevent.Timeout(0) is
            timer = loop.timer(0.0, 0.0, True, -1)
            timer.start(_expire, reader, timer, update=True)
            return timer
        timer = self._timer
        if timeout != self.timeout or timer is None or self._timer_after != timeout or timer.active:
            # Priority -1, like gevent.Timeout's: runs before the I/O callbacks of its loop iteration.
            fresh = loop.timer(timeout, timeout, True, -1)
            # Kept for the next call unless a nested wait finds the connection's timer running.
            if timeout == self.timeout and (timer is None or not timer.active):
                self._timer, self._timer_after = fresh, timeout
            timer = fresh
        timer.again(_expire, reader, timer, update=True)
        return timer

    def _pump_until(self, until: Any, timeout: float) -> bool:
        """Read and dispatch until ``until.done`` (None: never) or ``timeout``.

        True when ``until.done`` became true, False on timeout. A connection
        that ends raises its close reason (after failing every pending call).
        """
        if until is not None and until.done:
            return True
        if self._state != CONNECTED:
            if until is _CLOSED:
                return True
            raise self._not_connected()
        current = _getcurrent()
        if self._reader is not None and self._reader is not current:
            raise RuntimeError("another greenlet is already reading this client; one reader at a time")
        self._reader = current
        timer = self._start_deadline(timeout, current)
        try:
            while until is None or not until.done:
                chunk = self._recv(self._drained)
                # A short read emptied the socket: next time, wait before reading.
                self._drained = len(chunk) < _RECV_BYTES
                for opcode, payload in self._parser.feed(chunk):
                    self._on_message(opcode, payload)
            return True
        except _Expired as exc:
            if exc.timer is not timer:
                raise
            self.wakes += 1
            if time.monotonic() - self._last_rx > self.ping_interval + self.ping_timeout:
                error = ConnectionClosed(
                    f"no data from the server for {self.ping_interval + self.ping_timeout:g} s (missed pings)"
                )
                self._shutdown(error)
                raise error from None
            return False
        except ProtocolError as exc:
            self._try_send_close(frames.CLOSE_PROTOCOL_ERROR, "protocol error")
            self._shutdown(exc)
            raise
        except ConnectionClosed as exc:
            self._shutdown(exc)
            if until is _CLOSED:
                return True
            raise
        except SocketIOError as exc:
            self._shutdown(exc)
            raise
        except OSError as exc:
            error = ConnectionClosed(f"socket error: {exc}")
            self._shutdown(error)
            raise error from exc
        finally:
            timer.stop()
            self._reader = None

    def _open(self, phase: list[str]) -> None:
        # Talk to the file descriptor directly: gevent's socket wrapper adds a
        # getsockopt per sendall and a timer per blocking call, and its
        # resolver hands even an IP literal to a thread.
        family = _ip_family(self._host)
        if family is None:
            gsock = gsocket.create_connection((self._host, self._port))
            sock = _socket.socket(gsock.family, gsock.type, gsock.proto, gsock.detach())
        else:
            sock = _socket.socket(family, _socket.SOCK_STREAM)
        self._sock = sock
        sock.setblocking(False)
        self._hub = gevent.get_hub()
        self._read_watcher = self._hub.loop.io(sock.fileno(), _READ)
        self._write_watcher = self._hub.loop.io(sock.fileno(), _WRITE)
        if family is not None:
            error = sock.connect_ex((self._host, self._port))
            if error in _CONNECT_PENDING:
                self._hub.wait(self._write_watcher)
                error = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error))  # ECONNREFUSED -> ConnectionRefusedError
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        phase[0] = "websocket handshake"
        key = frames.make_key()
        self._send_raw(frames.handshake_request(self._host_header, self._target, key, self._headers))
        buffer = b""
        while (split := frames.split_response_head(buffer)) is None:
            try:
                buffer += self._recv()
            except ConnectionClosed:
                raise ConnectError(
                    f"server closed the connection during the websocket handshake to {self.url}"
                ) from None
        head, rest = split
        frames.check_handshake_response(head, key, self.url, rest)
        phase[0] = "Engine.IO open"
        messages = self._parser.feed(rest)
        while True:
            for opcode, payload in messages:
                self._on_message(opcode, payload)
            if self._state == CONNECTED:
                return
            if self._state == CONNECTING:
                phase[0] = f"namespace {self.namespace} connect"
            try:
                messages = self._parser.feed(self._recv())
            except ConnectionClosed:
                raise ConnectError(f"server closed the connection during {phase[0]}") from None

    def _on_message(self, opcode: int, payload: Any) -> None:
        if opcode == frames.OP_TEXT:
            self.message_bytes = len(payload)
            # The common message first: an ACK, handled as _on_packet and _dispatch would.
            if self._state == CONNECTED and (ack := protocol.decode_ack(payload, self._ack_head)) is not None:
                pending = self._pending.pop(ack[0], None)
                if pending is not None:  # else: a late ack for a call that timed out
                    pending._resolve(ack[1])
                return
            kind = payload[:1]
            if kind == protocol.EIO_MESSAGE:
                self._on_packet(protocol.decode(payload[1:]))
            elif kind == protocol.EIO_PING:
                self.pings += 1
                self._send_raw(frames.encode_frame(frames.OP_TEXT, (protocol.EIO_PONG + payload[1:]).encode()))
            elif kind == protocol.EIO_OPEN and self._state == OPENING:
                self._on_open(payload[1:])
            elif kind == protocol.EIO_CLOSE:
                raise ConnectionClosed("the server closed the Engine.IO session")
            elif kind != protocol.EIO_NOOP:
                raise ProtocolError(f"unexpected Engine.IO packet {payload[:80]!r} while {self._state}")
        elif opcode == frames.OP_BINARY:
            partial = self._partial
            if partial is None:
                raise ProtocolError(
                    f"binary websocket message ({len(payload)} bytes) with no binary packet expecting it")
            self.message_bytes += len(payload)
            if partial.add_attachment(payload):
                self._partial = None
                self._dispatch(partial)
        elif opcode == frames.OP_CLOSE:
            code, reason = frames.parse_close(payload)
            we_closed = self._close_sent
            self._try_send_close(frames.CLOSE_NORMAL, "")
            if we_closed:
                raise ConnectionClosed("closed by the client")
            raise ConnectionClosed(f"the server closed the websocket (code {code}{': ' + reason if reason else ''})")
        elif opcode == frames.OP_PING:
            self._send_raw(frames.encode_frame(frames.OP_PONG, payload))
        # OP_PONG: this client never pings.

    def _on_open(self, text: str) -> None:
        info = protocol.decode_open(text)
        self.eio_sid = info["sid"]
        self.ping_interval = info["pingInterval"] / 1000.0
        self.ping_timeout = info["pingTimeout"] / 1000.0
        if isinstance(info.get("maxPayload"), int) and info["maxPayload"] > 0:
            self._parser.max_message_bytes = min(self._max_message_bytes, info["maxPayload"])
        self._state = CONNECTING
        connect = protocol.encode_connect(self.namespace, self.auth)
        self._send_raw(frames.encode_frame(frames.OP_TEXT, connect.encode()))

    def _on_packet(self, packet: protocol.Packet) -> None:
        if packet.namespace != self.namespace:
            return  # a namespace this client never joined: nothing to do with it
        if packet.attachments:
            if self._partial is not None:
                raise ProtocolError("a binary packet started before the previous one got its attachments")
            self._partial = packet
            return
        ptype = packet.type
        if ptype == protocol.EVENT or ptype == protocol.ACK:
            self._dispatch(packet)
        elif ptype == protocol.CONNECT:
            if self._state == CONNECTING:
                data = packet.data or {}
                self.sid = data.get("sid")
                self._state = CONNECTED
                early, self._early = self._early, []
                for event in early:
                    self._dispatch(event)
        elif ptype == protocol.CONNECT_ERROR:
            if self._state == CONNECTING:
                raise ConnectRefused(self.namespace, packet.data)
            raise ConnectionClosed(f"the server sent a connect error: {packet.data!r}")
        elif ptype == protocol.DISCONNECT:
            raise ConnectionClosed(f"the server disconnected namespace {self.namespace}")
        else:
            raise ProtocolError(f"unexpected {packet.name} packet while {self._state}")

    def _dispatch(self, packet: protocol.Packet) -> None:
        if self._state != CONNECTED:
            if self._state == CONNECTING and packet.type in (protocol.EVENT, protocol.BINARY_EVENT):
                # Flask-SocketIO sends what a connect handler emits before the
                # CONNECT packet; the JS client buffers it (receiveBuffer) too.
                if len(self._early) >= MAX_EARLY_EVENTS:
                    raise ProtocolError(f"more than {MAX_EARLY_EVENTS} events before the namespace was connected")
                self._early.append(packet)
                return
            raise ProtocolError(f"{packet.name} packet before the namespace was connected")
        if packet.type == protocol.ACK or packet.type == protocol.BINARY_ACK:
            if packet.ack_id is None:
                raise ProtocolError("ACK packet without an ack id")
            pending = self._pending.pop(packet.ack_id, None)
            if pending is not None:  # else: a late ack for a call that timed out
                pending._resolve(packet.data)
            return
        event, *args = packet.data
        waiting = self._replies.get(event)
        if waiting:
            self._answer_request(waiting, args)
        handler = self._handlers.get(event)
        try:
            if handler is not None:
                result = handler(*args)
            elif self._catch_all is not None:
                result = self._catch_all(event, *args)
            else:
                result = None
        except Exception:
            # A broken handler is a bug in the load test, not in the server:
            # log it and keep the connection.
            logger.exception("handler for %r failed", event)
            result = None
        if packet.ack_id is not None:
            ack_args = list(result) if isinstance(result, tuple) else ([] if result is None else [result])
            text, attachments = protocol.encode(protocol.ACK, self.namespace, ack_args, packet.ack_id)
            self._send_packet(text, attachments)

    @staticmethod
    def _answer_request(waiting: list[PendingReply], args: list[Any]) -> None:
        """Hand a reply event to the oldest waiting request it matches."""
        for index, pending in enumerate(waiting):
            if pending.match is not None:
                try:
                    if not pending.match(*args):
                        continue
                except Exception:
                    logger.exception("match for %r failed; the reply is not taken as this request's",
                                     pending.event)
                    continue
            del waiting[index]
            pending._resolve(args)
            return

    # --- teardown -------------------------------------------------------

    def _try_send_close(self, code: int, reason: str) -> None:
        if self._close_sent or self._broken or self._sock is None:
            return
        self._close_sent = True
        with contextlib.suppress(OSError, SocketIOError):
            self._send_raw(frames.encode_close(code, reason))

    def _shutdown(self, reason: SocketIOError) -> None:
        """Mark the client closed, fail pending calls, drop the socket. Idempotent."""
        if self._state == CLOSED:
            return
        self._state = CLOSED
        self.close_reason = reason
        pending, self._pending = self._pending, {}
        replies, self._replies = self._replies, {}
        for ack in pending.values():
            error = ConnectionClosed(f"connection closed before the ack arrived: {reason}")
            error.__cause__ = reason
            ack._fail(error)
        for waiting in replies.values():
            for reply in waiting:
                error = ConnectionClosed(f"connection closed before the {reply.event!r} reply arrived: {reason}")
                error.__cause__ = reason
                reply._fail(error)
        sock, self._sock = self._sock, None
        if sock is not None:
            # Wake a greenlet blocked on this socket, then release the watchers
            # before the file descriptor goes away.
            for watcher in (self._read_watcher, self._write_watcher):
                if watcher is not None:
                    self._hub.cancel_wait(watcher, ConnectionClosed(f"connection closed: {reason}"), True)
            with contextlib.suppress(OSError):
                sock.close()


class _Predicate:
    """Adapts a callable to the ``.done`` protocol of :meth:`Client._pump_until`."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], bool]) -> None:
        self._fn = fn

    @property
    def done(self) -> bool:
        return bool(self._fn())


class _Closed:
    """Sentinel for :meth:`Client.close`: pump until the connection ends."""

    done = False


_CLOSED = _Closed()
