"""The public base class: a Locust user that speaks Socket.IO and records every operation.

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

The users never sleep through Locust's ``wait_time``: they pace inside their
tasks while reading their connection, so pings are answered and pushes are
timed when they arrive, not when the user wakes up.

Importing this module registers the harness with Locust (its options, the
recorder and the watchdog): a locustfile needs nothing but the import.
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
from locust import User, constant
from locust.env import Environment
from locust.exception import LocustError, StopUser
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

from loadtests.answers import answer_of
from loadtests.pacing import Pacer
from loadtests.runtime import harness
from loadtests.runtime.env_state import set_settings, settings_of
from loadtests.runtime.fanout import LEDGER, ROSTER, FanOut, check_declarations, check_primary, check_stamp, sent_ns_of
from loadtests.runtime.instances import USER_TARGETS, TargetChoice, on_instance, pick_target
from loadtests.runtime.options import LoadSettings
from loadtests.runtime.recorder import shard_tag
from loadtests.wire.client import Client, PendingAck, PendingReply
from loadtests.wire.errors import CallTimeout, ConnectionClosed, SocketIOError, UnansweredAtStop
from loadtests.wire.http_session import TargetHttpSession, cookie_header
from loadtests.wire.safety import require_loopback

logger = logging.getLogger(__name__)

_user_ids = itertools.count()
_class_indexes: defaultdict[str, itertools.count] = defaultdict(itertools.count)
_now_ns = time.perf_counter_ns
_wall_ns = time.time_ns
#: a pause longer than this between the reads of :func:`clock_pair_ns` (the OS ran something else) reads again
PAIR_SLACK_NS = 20_000


def clock_pair_ns() -> tuple[int, int]:
    """(perf ns, wall ns) of one instant, for moving a time from one clock to the other.

    An open-model slot is kept on the perf clock and recorded on the wall clock: a preemption between two
    plain reads would shift the recorded slot by its length. Read again when the perf clock moved more than
    :data:`PAIR_SLACK_NS` around the wall read (three tries at most).
    """
    for _ in range(3):
        before = _now_ns()
        wall = _wall_ns()
        after = _now_ns()
        if after - before <= PAIR_SLACK_NS:
            break
    return before + (after - before) // 2, wall


def emit_times(due_ns: int | None, open_model: bool) -> tuple[int, int]:
    """(wall ns, perf ns) an emit is timed from: its slot ``due_ns`` (perf clock) in the open model, else now."""
    now, wall = clock_pair_ns()
    if due_ns is None or not open_model:
        return wall, now
    return wall - (now - due_ns), due_ns


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

    #: set by :meth:`_join_run`
    settings: LoadSettings
    user_id: int
    index: int
    target: TargetChoice
    payload: str
    pacer: Pacer
    _fire: Callable[..., Any]

    def _join_run(self, environment: Environment) -> None:
        """What every recording user is given: the run's settings, its numbers, its target, payload and pacer."""
        #: the run's parameters
        self.settings = settings_for(environment)
        #: unique within this process (the ``user`` column)
        self.user_id = next(_user_ids)
        #: position among the users of this class in this process (room grouping)
        self.index = next(_class_indexes[type(self).__name__])
        #: the instance this user loads (``--target-urls`` round robin, else ``--host``)
        self.target = choose_target(self)
        self.payload = payload_of(self.settings.payload_bytes)
        # Spread paced users over the interval instead of firing in lockstep.
        self.pacer = Pacer(self.settings.emit_rate, self.settings.open_model, (self.index * 0.618034) % 1.0)
        self._fire = environment.events.request.fire

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

    def record_push(self, name: str, sent_ns: Any, nbytes: int, where: str = "t_ns") -> None:
        """A push received now, sent at the wall-clock ``sent_ns`` (same host), found at ``where``."""
        now = _wall_ns()
        if isinstance(sent_ns, int) and not isinstance(sent_ns, bool):
            self.record("push", name, sent_ns, now - sent_ns, nbytes=nbytes)
        else:
            self.record("push", name, now, 0, nbytes=nbytes,
                        exception=ValueError(f"{name} push without an integer {where}: {sent_ns!r:.40}"))


class SocketIOUser(_Recording, User):
    """A Locust user that speaks Socket.IO on the harness's lean client, and records every operation.

    Subclass it and write tasks with :meth:`connect`, :meth:`call`,
    :meth:`emit`, :meth:`pump`, :meth:`pace` and :meth:`disconnect`. Each
    measured operation is one sample (``connect``, ``ack``, ``disconnect``;
    pushes named in :attr:`pushes` or :attr:`fanout` as ``push``, timed from
    the sender's ``t_ns``, see :func:`loadtests.stamped`); a connection that
    dies between operations is an ``error`` sample. The harness's options
    (``--results-dir``, ``--emit-rate``, ...), recorder and watchdog come with
    the import.
    """

    abstract = True
    #: tasks pace themselves (:meth:`pace`, :meth:`pump`) while reading their connection
    wait_time = constant(0)
    #: seconds to wait after a failed connect before the next attempt
    reconnect_backoff: float = 1.0
    #: push events to record (delivery latency from the push's ``t_ns``)
    pushes: tuple[str, ...] = ()
    #: sent event -> :class:`FanOut`: which push each send causes, and how many
    fanout: dict[str, FanOut] = {}
    #: where pushes carry their sender's ``t_ns``: a dotted path such as ``"data.t_ns"``
    #: (None: ``t_ns`` at the top level or under ``payload``); a :class:`FanOut` may set its own
    stamp: str | None = None
    #: what ranks the cells of this class: the main event's name (its p99, lower is better), or
    #: ``"connects/s"`` for a class that churns connections; None: the busiest acknowledged event
    primary: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_declarations(cls.__name__, cls.fanout)
        check_stamp(f"{cls.__name__}.stamp", cls.stamp)
        check_primary(cls.__name__, cls.primary)
        for event in cls.pushes if isinstance(cls.pushes, (tuple, list)) else [cls.pushes]:
            if not isinstance(event, str) or not event:
                raise ValueError(f"{cls.__name__}.pushes must be a tuple of event names, got {cls.pushes!r}")

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._join_run(environment)
        self.client: Client | None = None
        #: the call being waited for: (pending, event, t_ns, start_perf_ns, expected)
        self._inflight: tuple[PendingAck, str, int, int, int | None] | None = None
        #: the ledger key of a declared fan-out send under way: other users' drains wait for it
        self._inflight_fanout: str | None = None
        #: recorded pushes -> handler registered with :meth:`on_push`, applied to every new connection
        self._push_handlers: dict[str, Callable[..., None] | None] = dict.fromkeys(self.pushes)
        for declaration in self.fanout.values():
            self._push_handlers.setdefault(declaration.push, None)
        #: handlers registered with :meth:`on` (nothing recorded), applied to every new connection
        self._handlers: dict[str, Callable[..., None]] = {}
        #: rooms whose join was acknowledged on the current connection (:meth:`joined`)
        self._rooms: set[str] = set()
        #: push -> where its sender's t_ns is
        self._stamps = {event: self.stamp for event in self._push_handlers}
        #: fan-out push -> the declarations' matches (None: every such push is one)
        self._fanout_matches: dict[str, list[Callable[..., Any] | None]] = {}
        for declaration in self.fanout.values():
            if declaration.stamp is not None:
                self._stamps[declaration.push] = declaration.stamp
            self._fanout_matches.setdefault(declaration.push, []).append(declaration.match)
        self._http: TargetHttpSession | None = None

    @property
    def http(self) -> TargetHttpSession:
        """Locust's HTTP session on this user's target: each request is a sample; its cookies go with connect().

        Redirects may lead only where the load may go (see :mod:`loadtests.wire.http_session`).
        """
        if self._http is None:
            s = self.settings
            self._http = TargetHttpSession(
                self.target.url, self.environment.events.request, self,
                check_url=lambda url: require_loopback(url, allow_remote=s.i_own_this_host, owned=s.owned_hosts))
        return self._http

    def context(self) -> dict[str, Any]:
        """What Locust's HTTP session adds to its samples: this user's number."""
        return {"user": self.user_id}

    # --- measured operations --------------------------------------------

    @property
    def connected(self) -> bool:
        """True while this user's connection is open."""
        return self.client is not None and self.client.connected

    def setup_client(self, client: Client) -> None:
        """Register the push and event handlers on a new client (before it connects)."""
        for event in {**self._push_handlers, **self._handlers}:
            client.on(event, functools.partial(self._on_server_event, event))

    def on_push(self, event: str, handler: Callable[..., None] | None = None) -> None:
        """Record ``event`` pushes (delivery latency from their ``t_ns``); ``handler`` also gets each one."""
        self._push_handlers[event] = handler
        self._stamps.setdefault(event, self.stamp)
        if self.client is not None:
            self.client.on(event, functools.partial(self._on_server_event, event))

    def on(self, event: str, handler: Callable[..., None]) -> None:
        """Call ``handler(*args)`` for each ``event`` the server sends, on this and every later connection.

        Nothing is recorded for it (see :meth:`on_push`). Registered before
        :meth:`connect`, it also gets what the app's connect handler emits.
        """
        self._handlers[event] = handler
        if self.client is not None:
            self.client.on(event, functools.partial(self._on_server_event, event))

    def _on_server_event(self, event: str, *args: Any) -> None:
        if event in self._push_handlers:
            matches = self._fanout_matches.get(event)
            if matches is None or any(match is None or match(*args) for match in matches):
                data = args[0] if args else None
                stamp = self._stamps.get(event)
                self.record_push(event, sent_ns_of(data, stamp), self.client.message_bytes if self.client else 0,
                                 stamp or "t_ns")
                if matches is not None:
                    LEDGER.delivered[_ledger_key(event)] += 1
            if (handler := self._push_handlers.get(event)) is not None:
                handler(*args)
        if (handler := self._handlers.get(event)) is not None:
            handler(*args)

    def connect(self, *, auth: dict[str, Any] | None = None, namespace: str | None = None,
                transport: str | None = None, headers: dict[str, str] | None = None,
                cookies: dict[str, str] | None = None) -> bool:
        """Open a new connection; records a ``connect`` sample. False on failure.

        ``auth`` (the CONNECT payload) defaults to ``--auth-token``'s
        ``{"token": ...}``, ``namespace`` to ``--namespace``. ``headers`` go
        with the websocket upgrade request, and so do ``cookies``, which
        default to those :attr:`http` holds (log in over HTTP, then connect).
        The lean client speaks websocket only: ``transport="polling"`` is
        refused (Locust's python-socketio ``ReferenceUser`` does long-polling).
        """
        s = self.settings
        if (transport or "websocket") != "websocket":
            raise LocustError(f"{type(self).__name__}.connect(transport={transport!r}): the lean client speaks "
                              "websocket only; ReferenceUser runs long-polling")
        request_headers = dict(headers or {})
        if cookies is None and self._http is not None:
            cookies = {k: v or "" for k, v in self._http.cookies.get_dict().items()}
        if cookies:
            request_headers["Cookie"] = cookie_header(cookies)
        client = Client(self.target.url, namespace=namespace or s.namespace, auth=auth if auth is not None else
                        s.auth, timeout=s.call_timeout, close_timeout=min(s.call_timeout, 5.0),
                        headers=request_headers)
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
        """Close the connection; records a ``disconnect`` sample if it was open.

        A call still waiting for its ack is recorded first, as unanswered:
        every call ends as a sample.
        """
        self._leave_rooms()
        self._abandon_inflight("the connection was closed")
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
        self._leave_rooms()
        self._abandon_inflight("the connection was dropped")
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def _abandon_inflight(self, why: str) -> None:
        self._settle_fanout_send()
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            _, name, t_ns, start_ns, _ = inflight
            self.record("ack", name, t_ns, _now_ns() - start_ns,
                        exception=UnansweredAtStop(f"{name}: {why} while the call waited for its ack"))

    def start_times(self, due_ns: int | None) -> tuple[int, int]:
        """(wall ns, perf ns) an emit is timed from: its slot in the open model, else now."""
        return emit_times(due_ns, self.pacer.open_model)

    def call(
        self,
        event: str,
        *args: Any,
        name: str | None = None,
        t_ns: int | None = None,
        start_ns: int | None = None,
        expected: int | None = None,
    ) -> Any:
        """Call ``event`` with ``args`` and record an ``ack`` sample; the ack, or None on failure only.

        An ack with no arguments (or only null) returns :data:`ACKED`, so
        ``call(...) is not None`` always means it succeeded. ``t_ns``/
        ``start_ns`` (wall / perf clock) time it from an intended send time
        instead of now. ``expected`` (deliveries the send should cause) is
        given, or else taken from an ack ``{"recipients": n}``.
        """
        client = self._client_for("call", event)
        return self._round_trip(client.call_async, event, args, name, t_ns, start_ns, expected)

    def request(
        self,
        event: str,
        *args: Any,
        reply: str,
        match: Callable[..., Any] | None = None,
        name: str | None = None,
        t_ns: int | None = None,
        start_ns: int | None = None,
        expected: int | None = None,
    ) -> Any:
        """Emit ``event`` and time the round trip until the server emits ``reply`` back; one ``ack`` sample.

        The pattern of a handler that answers with ``emit("my_response", ...)``.
        ``match`` is called with the reply's arguments, as a handler would be,
        and picks the reply that belongs to this request (default: the next
        ``reply`` to arrive). Returns what the reply carried (:data:`ACKED`
        when nothing), or None when it failed: no reply within
        ``--call-timeout``, or the connection ended. ``name`` names the
        sample (default: ``event``); the other keywords are :meth:`call`'s.
        """
        client = self._client_for("request", event)

        def send(ev: str, *a: Any) -> PendingReply:
            return client.request_async(ev, *a, reply=reply, match=match)

        return self._round_trip(send, event, args, name, t_ns, start_ns, expected)

    def _client_for(self, what: str, event: str) -> Client:
        client = self.client
        if client is None:
            raise LocustError(f"{type(self).__name__}.{what}({event!r}) before connect(): connect first "
                              "(it returns False when the connection failed)")
        return client

    def _round_trip(self, send: Callable[..., PendingAck], event: str, args: tuple[Any, ...], name: str | None,
                    t_ns: int | None, start_ns: int | None, expected: int | None) -> Any:
        """Send with ``send(event, *args)``, wait for its answer, record the ``ack`` sample."""
        client = self.client
        assert client is not None
        if t_ns is None or start_ns is None:
            t_ns, start_ns = _wall_ns(), _now_ns()
        name = name or event
        declaration = self.fanout.get(event)
        data = args[0] if args else None
        if declaration is not None and expected is None and declaration.expected == "roster":
            expected = self.roster_count(data, declaration)
        try:
            if declaration is not None:
                # Until its ack adds what it promised, a member that stops must not leave before its delivery.
                self._inflight_fanout = _ledger_key(declaration.push)
                LEDGER.inflight[self._inflight_fanout] += 1
            pending = send(event, *args)
            self._inflight = (pending, name, t_ns, start_ns, expected)
            ack = pending.wait(self.settings.call_timeout)
        except SocketIOError as exc:
            self._inflight = None
            self._settle_fanout_send()
            self.record("ack", name, t_ns, _now_ns() - start_ns, exception=exc)
            if not client.connected:
                self.drop_client()
            return None
        self._inflight = None
        latency_ns = _now_ns() - start_ns
        if declaration is None and not isinstance(ack, dict):
            # The common case (an echo): what _record_ack does, without its checks.
            self.record("ack", name, t_ns, latency_ns, nbytes=pending.sent_bytes,
                        expected=0 if expected is None else expected)
            return answer_of(ack)
        try:
            if declaration is not None and callable(declaration.expected) and expected is None:
                expected = int(declaration.expected(self, data, ack))
            answer = self._record_ack(pending, ack, name, t_ns, latency_ns, expected)
            if declaration is not None and answer is not None:
                LEDGER.expected[_ledger_key(declaration.push)] += promised(answer, expected)
            return answer
        finally:
            self._settle_fanout_send()

    def _settle_fanout_send(self) -> None:
        """The declared fan-out send under way has its outcome: drains stop waiting for it."""
        key, self._inflight_fanout = self._inflight_fanout, None
        if key is not None:
            LEDGER.inflight[key] -= 1

    def emit(self, event: str, *args: Any) -> bool:
        """Send ``event`` with ``args`` (none: no argument at all) without an ack: no sample.

        False when not connected. A send declared in :attr:`fanout` with
        ``expected="roster"`` promises a delivery to each room member.
        """
        client = self.client
        if client is None or not client.connected:
            return False
        declaration = self.fanout.get(event)
        try:
            client.emit(event, *args)
        except SocketIOError as exc:
            self.connection_lost(exc)
            return False
        if declaration is not None and declaration.expected == "roster":
            LEDGER.expected[_ledger_key(declaration.push)] += self.roster_count(args[0] if args else None,
                                                                                declaration)
        return True

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
        return None if exception is not None else answer_of(ack)

    def finish_inflight(self, timeout: float) -> Any:
        """Wait for a call a stop interrupted and record it; its ack or None."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return None
        pending, name, t_ns, start_ns, expected = inflight
        declaration = self.fanout.get(name)
        try:
            try:
                ack = pending.wait(timeout)
            except CallTimeout:
                self.record("ack", name, t_ns, _now_ns() - start_ns, exception=UnansweredAtStop(
                    f"{name}: in flight when the load stopped, no ack within {timeout:g} s more"))
                return None
            except SocketIOError as exc:
                self.record("ack", name, t_ns, _now_ns() - start_ns, exception=exc)
                return None
            answer = self._record_ack(pending, ack, name, t_ns, _now_ns() - start_ns, expected)
            if declaration is not None and answer is not None:
                LEDGER.expected[_ledger_key(declaration.push)] += promised(answer, expected)
            return answer
        finally:
            self._settle_fanout_send()

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

    def pump(self, seconds: float) -> None:
        """Read the connection (answer pings, record pushes) for ``seconds``."""
        self.wait_until(_now_ns() + int(seconds * 1e9))

    def idle(self, seconds: float | None = None) -> None:
        """Sleep on the connection for ``seconds`` (None: until it ends or the user stops).

        The greenlet blocks on the socket and wakes only when a frame arrives:
        a ping to answer, a push to record. Its one timer is re-armed at each
        ping and fires only when the server has been silent for ping interval
        + ping timeout (Engine.IO's rule for a dead connection: an ``error``
        sample), so an idle connection costs no CPU between the server's
        pings. Like Locust's ``wait_time``, the wait lets a stop end the user
        at once (``on_stop`` still disconnects and records); :meth:`pump`
        instead finishes its time first. A lost connection ends the wait.
        """
        deadline = None if seconds is None else _now_ns() + int(seconds * 1e9)
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_WAITING
        while (client := self.client) is not None and client.connected:
            # A hair past the silence limit, so the timer's end is the verdict.
            timeout = max(client.ping_interval + client.ping_timeout - client.silent_for, 0.0) + 0.01
            if deadline is not None:
                if (remaining := (deadline - _now_ns()) / 1e9) <= 0:
                    break
                timeout = min(timeout, remaining)
            pings = client.pings
            try:
                client.wait_for(lambda: client.pings != pings, timeout)  # noqa: B023 (called in this loop only)
            except SocketIOError as exc:
                self.connection_lost(exc)
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_RUNNING

    def pace(self) -> int | None:
        """Wait (reading) for this user's next ``--emit-rate`` slot; its perf time, None when unpaced."""
        if not self.pacer.paced:
            return None
        due = self.pacer.next_due(_now_ns())
        self.wait_until(due)
        return due

    def connection_lost(self, exc: BaseException) -> None:
        """Record a connection that died between measured operations."""
        self.record("error", "connection", _wall_ns(), 0, exception=exc)
        self.drop_client()

    # --- rooms and fan-out ----------------------------------------------

    def group_room(self, prefix: str, size: int) -> str:
        """A room shared by ``size`` users of this class in this process: ``<prefix>-<worker>-<n>``.

        Rooms named per process let a roster count (:meth:`joined`) see every member.
        """
        return f"{prefix}-{shard_tag()}-{self.index // max(1, size)}"

    def joined(self, room: str) -> None:
        """Note that this user's join of ``room`` was acknowledged (the roster of ``expected="roster"``).

        The connection's end (:meth:`disconnect`, a lost connection) leaves every room joined on it.
        """
        ROSTER.join(room, self.user_id)
        self._rooms.add(room)

    def left(self, room: str) -> None:
        """Note that this user left ``room``."""
        ROSTER.leave(room, self.user_id)
        self._rooms.discard(room)

    def _leave_rooms(self) -> None:
        for room in list(self._rooms):
            self.left(room)

    def roster_count(self, data: Any, declaration: FanOut) -> int:
        """Deliveries a send to ``data[room_key]`` should cause by the roster of this process."""
        room = data.get(declaration.room_key) if isinstance(data, dict) else None
        members = ROSTER.size(str(room)) if room is not None else 0
        return members if declaration.includes_sender else max(0, members - 1)

    def drain(self, timeout: float | None = None) -> None:
        """Read until every delivery the declared fan-out promised has arrived (at most ``timeout``)."""
        keys = [_ledger_key(d.push) for d in self.fanout.values()]
        client = self.client
        if not keys or client is None or not client.connected:
            return
        try:
            client.wait_for(lambda: all(LEDGER.settled(k) for k in keys),
                            self.settings.drain_timeout if timeout is None else timeout, poll=0.02)
        except SocketIOError as exc:
            self.connection_lost(exc)

    def on_stop(self) -> None:
        """Finish a call a stop interrupted, wait for promised deliveries, then disconnect."""
        self.finish_inflight(self.settings.drain_timeout)
        self.drain()
        self.disconnect()


def _ledger_key(push: str) -> str:
    return f"push:{push}"


def promised(ack: Any, expected: int | None) -> int:
    """Deliveries a successful send promised: the declared count, else the ack's ``recipients``."""
    if expected is not None:
        return expected
    recipients = ack.get("recipients") if isinstance(ack, dict) else None
    return recipients if isinstance(recipients, int) and not isinstance(recipients, bool) else 0


harness.install()
