"""Locust users that speak Socket.IO: a measuring base class and the scenarios.

Every measured thing is one Locust ``request`` event with the response time
as a float in milliseconds (Locust keeps the float for listeners; only its
own percentiles round it) and a context carrying the sample's columns
(``kind``, ``t_ns``, ``user``, ``expected``, ``bytes``), so the recorder
writes exactly one row per request Locust counts:

=============  ============  ==============================================
kind           name          latency
=============  ============  ==============================================
``connect``    connect       TCP + websocket + Engine.IO + namespace connect
``disconnect`` disconnect    DISCONNECT + close frame until the server's close
``ack``        event name    emit until its ack (from the *intended* send
                             time with ``--open-model``)
``push``       push name     receive time minus the sender's ``t_ns``
``error``      connection    a connection lost between measured operations
=============  ============  ==============================================

The lean users never sleep through Locust's ``wait_time``: they pace inside
their tasks while reading their connection, so pings are answered and pushes
are timed when they arrive, not when the user wakes up.
"""
from __future__ import annotations

import functools
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import gevent
from locust import User, constant, task
from locust.env import Environment
from locust.exception import LocustError

from loadtests.client import Client, PendingAck
from loadtests.env_state import set_settings, settings_of
from loadtests.errors import ConnectionClosed, SocketIOError
from loadtests.instances import ROSTER, TargetChoice, on_instance, pick_target
from loadtests.options import LoadSettings
from loadtests.pacing import LEDGER, Pacer
from loadtests.recorder import shard_tag

logger = logging.getLogger(__name__)

_user_ids = itertools.count()
_class_indexes: defaultdict[str, itertools.count] = defaultdict(itertools.count)
_now_ns = time.perf_counter_ns
_wall_ns = time.time_ns
#: user number -> the target URL it loads, for the harness's per-process map
USER_TARGETS: dict[int, str] = {}


def settings_for(environment: Environment) -> LoadSettings:
    """The run's settings, parsed once per environment and shared by its users.

    The harness refreshes them at each test start (the web UI can change the
    options between runs).
    """
    settings = settings_of(environment)
    if settings is None:
        settings = LoadSettings.from_options(environment.parsed_options)
        set_settings(environment, settings)
    return settings


def choose_target(user: Any) -> TargetChoice:
    """The instance ``user`` loads; LocustError when no target is set at all."""
    urls = user.settings.urls
    if not urls and not user.host:
        raise LocustError("no target: pass --host http://127.0.0.1:PORT (or set it in the web UI)")
    choice = pick_target(urls, user.index, user.host)
    USER_TARGETS[user.user_id] = choice.url
    return choice


@functools.lru_cache(maxsize=16)
def payload_of(size: int) -> str:
    """The payload string of ``size`` bytes, shared by every user."""
    return "x" * size


class AckError(Exception):
    """The server acknowledged with an error (``{"error": ...}``)."""


class _Recording:
    """How a user records samples: shared by the lean users and ``ReferenceUser``."""

    #: set by the user's ``__init__``
    target: TargetChoice
    user_id: int
    _fire: Callable[..., Any]

    def record(
        self,
        kind: str,
        name: str,
        t_ns: int,
        latency_ns: int,
        *,
        exception: BaseException | None = None,
        nbytes: int = 0,
        expected: int = 0,
    ) -> None:
        """Fire one Locust request event (= one recorded sample).

        With several instances a failure's message names the instance.
        """
        if exception is not None and self.target.count > 1:
            exception = on_instance(exception, self.target.label)
        self._fire(
            request_type=kind,
            name=name,
            response_time=latency_ns / 1e6,
            response_length=nbytes,
            exception=exception,
            context={"kind": kind, "t_ns": t_ns, "user": self.user_id, "expected": expected, "bytes": nbytes},
        )

    def record_push(self, name: str, sent_ns: Any, nbytes: int) -> None:
        """A push received now, sent at the wall-clock ``sent_ns`` (same host)."""
        now = _wall_ns()
        if isinstance(sent_ns, int) and not isinstance(sent_ns, bool):
            self.record("push", name, sent_ns, now - sent_ns, nbytes=nbytes)
        else:
            self.record("push", name, now, 0, nbytes=nbytes,
                        exception=ValueError(f"{name} push without an integer t_ns: {sent_ns!r:.40}"))


class LeanSocketIOUser(_Recording, User):
    """Base of the lean-client users: connect, call and record, with timing.

    Subclasses write tasks with :meth:`connect`, :meth:`call`,
    :meth:`wait_until`, :meth:`pump_for` and :meth:`disconnect`; each records
    its own sample. Register push handlers in :meth:`setup_client`.
    """

    abstract = True
    wait_time = constant(0)
    #: seconds to wait after a failed connect before the next attempt
    reconnect_backoff: float = 1.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        #: the run's parameters
        self.settings = settings_for(environment)
        #: unique within this process (the ``user`` column)
        self.user_id = next(_user_ids)
        #: position among the users of this class in this process (room grouping)
        self.index = next(_class_indexes[type(self).__name__])
        #: the instance this user loads (``--target-urls`` round robin, else ``--host``)
        self.target = choose_target(self)
        self.client: Client | None = None
        self.payload = payload_of(self.settings.payload_bytes)
        # Spread paced users over the interval instead of firing in lockstep.
        phase = (self.index * 0.618034) % 1.0
        self.pacer = Pacer(self.settings.emit_rate, self.settings.open_model, phase)
        self._fire = environment.events.request.fire
        #: the call being waited for: (pending, event, t_ns, start_perf_ns, expected)
        self._inflight: tuple[PendingAck, str, int, int, int | None] | None = None

    # --- measured operations --------------------------------------------

    def setup_client(self, client: Client) -> None:
        """Register push handlers on a new client (before it connects)."""

    def connect(self) -> bool:
        """Open a new connection; records a ``connect`` sample. False on failure."""
        s = self.settings
        client = Client(self.target.url, namespace=s.namespace, auth=s.auth, timeout=s.call_timeout,
                        close_timeout=min(s.call_timeout, 5.0))
        self.setup_client(client)
        t_ns = _wall_ns()
        start = _now_ns()
        try:
            client.connect()
        except SocketIOError as exc:
            self.record("connect", "connect", t_ns, _now_ns() - start, exception=exc)
            self.client = None
            return False
        self.record("connect", "connect", t_ns, _now_ns() - start, nbytes=client.bytes_sent)
        self.client = client
        return True

    def ensure_connected(self) -> bool:
        """Connect if not connected; after a failure, back off before returning False."""
        if self.client is not None and self.client.connected:
            return True
        self.drop_client()
        if self.connect():
            return True
        gevent.sleep(self.reconnect_backoff)
        return False

    def disconnect(self) -> None:
        """Close the connection; records a ``disconnect`` sample if it was open."""
        client, self.client = self.client, None
        if client is None:
            return
        if not client.connected:
            client.close()
            return
        t_ns = _wall_ns()
        start = _now_ns()
        client.close()
        exception = None if client.closed_cleanly else ConnectionClosed(
            f"close did not complete within {client.close_timeout:g} s: {client.close_reason}")
        self.record("disconnect", "disconnect", t_ns, _now_ns() - start, exception=exception)

    def drop_client(self) -> None:
        """Forget a dead client without a sample (its failure was recorded already)."""
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def start_times(self, due_ns: int | None) -> tuple[int, int]:
        """(wall ns, perf ns) an emit is timed from: its slot in the open model, else now."""
        now = _now_ns()
        wall = _wall_ns()
        if due_ns is None or not self.pacer.open_model:
            return wall, now
        return wall - (now - due_ns), due_ns

    def call(
        self,
        event: str,
        data: Any,
        *,
        name: str | None = None,
        t_ns: int | None = None,
        start_ns: int | None = None,
        expected: int | None = None,
    ) -> Any:
        """Call ``event`` and record an ``ack`` sample; the ack, or None on failure.

        ``t_ns``/``start_ns`` (wall / perf clock) time it from an intended send
        time instead of now. ``expected`` (deliveries the send should cause)
        is given, or else taken from an ack ``{"recipients": n}``.
        """
        client = self.client
        assert client is not None  # callers connect first
        if t_ns is None or start_ns is None:
            t_ns, start_ns = _wall_ns(), _now_ns()
        name = name or event
        try:
            pending = client.call_async(event, data)
            self._inflight = (pending, name, t_ns, start_ns, expected)
            ack = pending.wait(self.settings.call_timeout)
        except SocketIOError as exc:
            self._inflight = None
            self.record("ack", name, t_ns, _now_ns() - start_ns, exception=exc)
            if not client.connected:
                self.drop_client()
            return None
        self._inflight = None
        return self._record_ack(pending, ack, name, t_ns, _now_ns() - start_ns, expected)

    def _record_ack(self, pending: PendingAck, ack: Any, name: str, t_ns: int, latency_ns: int,
                    expected: int | None = None) -> Any:
        exception = None
        recipients = 0
        if isinstance(ack, dict):
            if "error" in ack:
                exception = AckError(str(ack["error"]))
            if isinstance(ack.get("recipients"), int):
                recipients = ack["recipients"]
        self.record("ack", name, t_ns, latency_ns, exception=exception, nbytes=pending.sent_bytes,
                    expected=recipients if expected is None else expected)
        return None if exception else ack

    def finish_inflight(self, timeout: float) -> Any:
        """Wait for a call a stop interrupted and record it; its ack or None."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return None
        pending, name, t_ns, start_ns, expected = inflight
        try:
            ack = pending.wait(timeout)
        except SocketIOError as exc:
            self.record("ack", name, t_ns, _now_ns() - start_ns, exception=exc)
            return None
        return self._record_ack(pending, ack, name, t_ns, _now_ns() - start_ns, expected)

    # --- waiting while reading ------------------------------------------

    def wait_until(self, due_ns: int) -> None:
        """Read the connection (pushes, pings) until ``due_ns`` on the perf clock."""
        while (remaining := due_ns - _now_ns()) > 0:
            client = self.client
            if client is None or not client.connected:
                gevent.sleep(remaining / 1e9)
                return
            try:
                client.pump(remaining / 1e9)
            except SocketIOError as exc:
                self.connection_lost(exc)

    def pump_for(self, seconds: float) -> None:
        self.wait_until(_now_ns() + int(seconds * 1e9))

    def next_slot(self) -> int | None:
        """Wait (reading) for the next paced slot; its perf time, None when unpaced."""
        if not self.pacer.paced:
            return None
        due = self.pacer.next_due(_now_ns())
        self.wait_until(due)
        return due

    def connection_lost(self, exc: BaseException) -> None:
        """Record a connection that died between measured operations."""
        self.record("error", "connection", _wall_ns(), 0, exception=exc)
        self.drop_client()


# --- scenarios ----------------------------------------------------------


class ChurnUser(LeanSocketIOUser):
    """Connect, one echo, disconnect, repeat: connection throughput.

    Connect and disconnect are separate samples; ``--emit-rate`` paces
    cycles per second per user (0 = back to back).
    """

    reconnect_backoff = 0.2

    @task
    def cycle(self) -> None:
        self.next_slot()
        if not self.connect():
            gevent.sleep(self.reconnect_backoff)
            return
        self.call("echo", self.payload)
        self.disconnect()

    def on_stop(self) -> None:
        self.disconnect()


class EchoUser(LeanSocketIOUser):
    """Stay connected; acked echoes at ``--emit-rate`` per second, or flat out."""

    def on_start(self) -> None:
        self.ensure_connected()

    @task
    def echo(self) -> None:
        if not self.ensure_connected():
            return
        due = self.next_slot()
        if self.client is None:
            return  # lost while waiting for the slot; reconnect next time
        t_ns, start_ns = self.start_times(due)
        self.call("echo", self.payload, t_ns=t_ns, start_ns=start_ns)

    def on_stop(self) -> None:
        self.disconnect()


class IdleUser(LeanSocketIOUser):
    """Hold a connection open doing nothing but answering pings (capacity, memory)."""

    hold_slice: float = 1.0

    def on_start(self) -> None:
        self.ensure_connected()

    @task
    def hold(self) -> None:
        if self.ensure_connected():
            self.pump_for(self.hold_slice)

    def on_stop(self) -> None:
        self.disconnect()


class _RoomUser(LeanSocketIOUser):
    """A member of a room of ``--room-size`` users grouped by user number.

    Senders emit ``send_event`` with ``{"room", "payload": {"t_ns", "data"}}``;
    every member times the ``push_event`` it receives from the sender's
    ``t_ns`` (same host, same clock). Rooms are per process, so the
    :data:`LEDGER` can check that every delivery the acks promised arrived.

    With several instances (``--target-urls``) the members of a room are
    spread over them, and a send's ``expected`` comes from :data:`ROSTER`
    (``--expected-from``): an ack counts its own instance's members only.
    """

    abstract = True
    send_event = ""
    push_event = ""
    room_prefix = ""
    #: idle members read their connection in slices of this many seconds
    listen_slice: float = 1.0
    #: the sender is one of the recipients (broadcast) or not (room_message)
    includes_sender: bool = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        size = self.settings.room_size
        self.room = f"{self.room_prefix}-{shard_tag()}-{self.index // size}"
        self.is_sender = self.sends()
        self._sending = False  # a send counted in LEDGER.inflight is under way
        self._send_expected: int | None = None  # its roster count, if any
        self._joined: Client | None = None  # the connection that joined the room

    def sends(self) -> bool:
        return True

    def setup_client(self, client: Client) -> None:
        client.on(self.push_event, self._on_push)

    def _on_push(self, data: Any) -> None:
        payload = data.get("payload") if isinstance(data, dict) else None
        sent_ns = payload.get("t_ns") if isinstance(payload, dict) else None
        LEDGER.delivered[self.room] += 1
        self.record_push(self.push_event, sent_ns, self.client.message_bytes if self.client else 0)

    def join(self) -> bool:
        """Connect if needed and join the room (an ``ack`` sample named ``join``)."""
        if not self.ensure_connected():
            return False
        if self.call("join", {"room": self.room}) is None:
            self.pump_for(self.reconnect_backoff)  # not a tight loop of failing joins
            return False
        self._joined = self.client  # a new connection has to join again
        ROSTER.join(self.room, self.user_id)
        return True

    def drop_client(self) -> None:
        ROSTER.leave(self.room, self.user_id)
        super().drop_client()

    def disconnect(self) -> None:
        ROSTER.leave(self.room, self.user_id)
        super().disconnect()

    def roster_expected(self) -> int | None:
        """Deliveries a send should cause by the roster, or None to take the ack's count."""
        if self.settings.expected_source != "roster":
            return None
        members = ROSTER.size(self.room)
        return members if self.includes_sender else max(0, members - 1)

    @staticmethod
    def promised(ack: Any, expected: int | None) -> int:
        """Deliveries a successful send promised: the roster's count, else the ack's."""
        if not isinstance(ack, dict):
            return 0
        return expected if expected is not None else ack.get("recipients", 0)

    def on_start(self) -> None:
        self.join()

    @task
    def converse(self) -> None:
        if (self.client is None or not self.client.connected or self._joined is not self.client) and not self.join():
            return
        if not self.is_sender:
            self.pump_for(self.listen_slice)
            return
        due = self.next_slot()
        if self.client is None:
            return
        t_ns, start_ns = self.start_times(due)
        LEDGER.inflight[self.room] += 1
        self._sending = True
        expected = self._send_expected = self.roster_expected()
        ack = self.call(self.send_event, self.message(t_ns), t_ns=t_ns, start_ns=start_ns, expected=expected)
        # (A stop that interrupts the call leaves it in flight for on_stop.)
        self._sending = False
        LEDGER.inflight[self.room] -= 1
        LEDGER.expected[self.room] += self.promised(ack, expected)

    def message(self, t_ns: int) -> dict[str, Any]:
        return {"room": self.room, "payload": {"t_ns": t_ns, "data": self.payload}}

    def on_stop(self) -> None:
        drain = self.settings.drain_timeout
        ack = self.finish_inflight(drain)
        if self._sending:
            self._sending = False
            LEDGER.inflight[self.room] -= 1
            LEDGER.expected[self.room] += self.promised(ack, self._send_expected)
        client = self.client
        if client is not None and client.connected:
            try:
                # Keep reading until every delivery promised to this room has
                # arrived, so a stop does not count in-flight pushes as lost.
                # Other members' reads settle the room too: poll for that.
                client.wait_for(lambda: LEDGER.settled(self.room), drain, poll=0.02)
            except SocketIOError as exc:
                self.connection_lost(exc)
        self.disconnect()


class BroadcastUser(_RoomUser):
    """Fan-out: rooms of ``--room-size`` listeners, ``--senders-per-room`` of them sending.

    A sender's ``broadcast`` ack carries the recipients (``expected``);
    every member, the sender included, records each ``fanout`` push.
    """

    send_event = "broadcast"
    push_event = "fanout"
    room_prefix = "fanout"

    def sends(self) -> bool:
        return self.index % self.settings.room_size < self.settings.senders_per_room


class RoomsUser(_RoomUser):
    """Chat: everyone joins a room, sends ``room_message`` and receives the others'."""

    send_event = "room_message"
    push_event = "room_message"
    room_prefix = "chat"
    includes_sender = False


# --- the reference: Locust's own python-socketio user -------------------

try:
    import socketio
    from locust.contrib.socketio import SocketIOUser as _LocustSocketIOUser
except ImportError:  # pragma: no cover - both are pinned dependencies
    _LocustSocketIOUser = None  # type: ignore[assignment,misc]

if _LocustSocketIOUser is not None:

    class ReferenceUser(_Recording, _LocustSocketIOUser):
        """Locust's ``SocketIOUser`` (python-socketio ``Client``): echoes, for comparison.

        Honours ``--transport`` (``polling`` for long-polling realism). Samples
        have the same shape as the lean users', with two fixes over the stock
        user: a call is one sample (the stock client also logs a 0 ms emit per
        call) and connect / disconnect are timed on their own. Its disconnect
        is the real python-socketio one, stall included.
        """

        wait_time = constant(0)
        options = {"reconnection": False}

        def __init__(self, environment: Environment) -> None:
            super().__init__(environment)
            self.settings = settings_for(environment)
            self.user_id = next(_user_ids)
            self.index = next(_class_indexes[type(self).__name__])
            self.target = choose_target(self)
            self.payload = payload_of(self.settings.payload_bytes)
            self.pacer = Pacer(self.settings.emit_rate, self.settings.open_model, (self.index * 0.618034) % 1.0)
            self._fire = environment.events.request.fire
            # The stock client logs every emit; call() emits, so each call
            # would count twice. Use python-socketio's plain emit instead.
            # An instance-level override of a method: mypy forbids assigning to methods.
            self.sio.emit = functools.partial(socketio.Client.emit, self.sio)  # type: ignore[method-assign]
            self.sio.on("*", self._on_event, namespace=self.settings.namespace)
            self._connected = False

        def _on_event(self, event: str, *args: Any) -> None:
            data = args[0] if args else None
            payload = data.get("payload", data) if isinstance(data, dict) else None
            sent = payload.get("t_ns") if isinstance(payload, dict) else None
            self.record_push(str(event), sent, 0)

        def connect(self) -> bool:
            s = self.settings
            t_ns = _wall_ns()
            start = _now_ns()
            try:
                socketio.Client.connect(
                    self.sio, self.target.url, namespaces=[s.namespace], transports=[s.transport],
                    auth=s.auth, wait_timeout=s.call_timeout)
            except Exception as exc:  # python-socketio raises its own ConnectionError
                self.record("connect", "connect", t_ns, _now_ns() - start, exception=exc)
                return False
            self.record("connect", "connect", t_ns, _now_ns() - start)
            self._connected = True
            return True

        def disconnect(self) -> None:
            if not self._connected:
                return
            self._connected = False
            t_ns = _wall_ns()
            start = _now_ns()
            exception = None
            try:
                socketio.Client.disconnect(self.sio)
            except Exception as exc:
                exception = exc
            self.record("disconnect", "disconnect", t_ns, _now_ns() - start, exception=exception)

        def on_start(self) -> None:
            self.connect()

        @task
        def echo(self) -> None:
            s = self.settings
            if not self._connected or not self.sio.connected:
                self._connected = False
                if not self.connect():
                    gevent.sleep(1.0)
                    return
            due = None
            if self.pacer.paced:
                due = self.pacer.next_due(_now_ns())
                if (wait := due - _now_ns()) > 0:
                    gevent.sleep(wait / 1e9)  # python-socketio reads in its own greenlets
            now, wall = _now_ns(), _wall_ns()
            t_ns, start_ns = (wall - (now - due), due) if due is not None and s.open_model else (wall, now)
            try:
                socketio.Client.call(self.sio, "echo", self.payload, namespace=s.namespace, timeout=s.call_timeout)
            except Exception as exc:
                self.record("ack", "echo", t_ns, _now_ns() - start_ns, exception=exc)
                return
            self.record("ack", "echo", t_ns, _now_ns() - start_ns, nbytes=len(self.payload))

        def on_stop(self) -> None:
            self.disconnect()
