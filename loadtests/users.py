"""The reference scenarios: Locust users of the reference target's event contract.

Each is a :class:`loadtests.socketio_user.SocketIOUser` (the public base a
user's own locustfile builds on); ``ReferenceUser`` is Locust's own
python-socketio user, recording the same samples, for comparison.
"""
from __future__ import annotations

import functools
from typing import Any

import gevent
from locust import constant, task
from locust.env import Environment
from locust.user.task import LOCUST_STATE_STOPPING

from loadtests.runtime.fanout import LEDGER, ROSTER
from loadtests.socketio_user import (
    SocketIOUser,
    _now_ns,
    _Recording,
    _wall_ns,
    emit_times,
)
from loadtests.wire.client import Client
from loadtests.wire.errors import SocketIOError
from loadtests.wire.http_session import GuardedSession
from loadtests.wire.safety import require_loopback

__all__ = ["ChurnUser", "EchoUser", "IdleUser", "BroadcastUser", "RoomsUser", "ReferenceUser"]

# --- scenarios ----------------------------------------------------------


class ChurnUser(SocketIOUser):
    """Connect, one echo, disconnect, repeat: connection throughput.

    Connect and disconnect are separate samples; ``--emit-rate`` paces
    cycles per second per user (0 = back to back).
    """

    reconnect_backoff = 0.2

    @task
    def cycle(self) -> None:
        self.pace()
        if not self.connect():
            gevent.sleep(self.reconnect_backoff)
            return
        self.call("echo", self.payload)
        self.disconnect()

class EchoUser(SocketIOUser):
    """Stay connected; acked echoes at ``--emit-rate`` per second, or flat out."""

    #: echoes per run of the task while the user keeps the harness's zero
    #: ``wait_time``: the task loops, returning early when the user is told to
    #: stop, instead of going back to Locust's scheduler after every echo (a
    #: task switch costs about a tenth of a flat-out echo); with a
    #: ``wait_time`` of its own the user echoes once per task
    burst: int = 100

    def on_start(self) -> None:
        self.ensure_connected()

    @task
    def echo(self) -> None:
        repeats = self.burst if type(self).wait_time is SocketIOUser.wait_time else 1
        paced = self.pacer.paced
        for _ in range(repeats):
            client = self.client
            if (client is None or not client.connected) and not self.ensure_connected():
                return
            if not paced:
                self.call("echo", self.payload)
            else:
                due = self.pace()
                if self.client is None:
                    return  # lost while waiting for the slot; reconnect next time
                t_ns, start_ns = self.start_times(due)
                self.call("echo", self.payload, t_ns=t_ns, start_ns=start_ns)
            if self._state == LOCUST_STATE_STOPPING:
                return  # Locust's loop ends the user (on_stop) as after any task

class IdleUser(SocketIOUser):
    """Hold a connection open doing nothing but answering pings (capacity, memory).

    The user sleeps on its socket (:meth:`SocketIOUser.idle`): it wakes to
    answer the server's pings and at the stop, so thousands of idle users
    cost next to no CPU.
    """

    #: longest single wait in seconds; None: until the connection ends or the user stops
    hold_slice: float | None = None

    def on_start(self) -> None:
        self.ensure_connected()

    @task
    def hold(self) -> None:
        if self.ensure_connected():
            self.idle(self.hold_slice)


class _RoomUser(SocketIOUser):
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
        self.room = self.group_room(self.room_prefix, self.settings.room_size)
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
            self.pump(self.reconnect_backoff)  # not a tight loop of failing joins
            return False
        self._joined = self.client  # a new connection has to join again
        self.joined(self.room)
        return True

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
            self.pump(self.listen_slice)
            return
        due = self.pace()
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
            self._join_run(environment)
            # The stock client logs every emit; call() emits, so each call
            # would count twice. Use python-socketio's plain emit instead.
            # An instance-level override of a method: mypy forbids assigning to methods.
            self.sio.emit = functools.partial(socketio.Client.emit, self.sio)  # type: ignore[method-assign]
            self.sio.on("*", self._on_event, namespace=self.settings.namespace)
            self._connected = False
            # Long-polling follows a redirect only to a load target; a websocket handshake follows none.
            s = self.settings
            check = functools.partial(require_loopback, allow_remote=s.i_own_this_host, owned=s.owned_hosts)
            self.sio.eio.http_factory = functools.partial(GuardedSession, check)
            self.sio.eio.websocket_extra_options = {**self.sio.eio.websocket_extra_options, "redirect_limit": 0}

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
            t_ns, start_ns = emit_times(due, s.open_model)
            try:
                socketio.Client.call(self.sio, "echo", self.payload, namespace=s.namespace, timeout=s.call_timeout)
            except Exception as exc:
                self.record("ack", "echo", t_ns, _now_ns() - start_ns, exception=exc)
                return
            self.record("ack", "echo", t_ns, _now_ns() - start_ns, nbytes=len(self.payload))

        def on_stop(self) -> None:
            self.disconnect()
