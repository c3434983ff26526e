"""The load test's parameters: Locust custom arguments and their value object.

Each parameter is a Locust custom argument, so it shows in the web UI (and
can be changed there per run) and works headless. :class:`LoadSettings` is
what the users read; it validates the values again because the web UI hands
them over unchecked.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, fields
from typing import Any

from loadtests.instances import EXPECTED_FROM, parse_target_urls, resolve_expected_from
from loadtests.safety import require_loopback

TRANSPORTS: tuple[str, ...] = ("websocket", "polling")
ENV_RESULTS_DIR = "LOADTEST_RESULTS_DIR"
ENV_AUTH_TOKEN = "LOADTEST_AUTH_TOKEN"
#: "1" allows non-loopback targets, like --i-own-this-host (containers on a compose network)
ENV_OWN_HOST = "LOADTEST_I_OWN_THIS_HOST"
#: comma-separated hosts allowed besides loopback, like --own-hosts
ENV_OWN_HOSTS = "LOADTEST_OWN_HOSTS"


#: the largest payload a user builds (one string, shared by the users of a process)
MAX_PAYLOAD_BYTES = 64 * 2**20


@dataclass(frozen=True)
class LoadSettings:
    """Parameters every scenario user reads (defaults are the headless defaults)."""

    #: size of the string payload each emit carries
    payload_bytes: int = 64
    #: emits per second per sending user; 0 = as fast as acks come back
    emit_rate: float = 0.0
    #: users per room (broadcast, rooms); users are grouped by their number
    room_size: int = 10
    #: senders per broadcast room; the other members only listen
    senders_per_room: int = 1
    namespace: str = "/"
    #: for ReferenceUser (python-socketio); the lean client is websocket-only
    transport: str = "websocket"
    #: pace emits on a fixed schedule and time them from the intended send time
    open_model: bool = False
    #: seconds before an unanswered call counts as failed
    call_timeout: float = 10.0
    #: seconds a fan-out user waits at stop for in-flight deliveries
    drain_timeout: float = 3.0
    auth_token: str | None = None
    results_dir: str | None = None
    #: seconds between recorder flushes
    flush_interval: float = 2.0
    #: hard deadline in seconds from test start; 0 = run time + stop timeout + grace
    run_deadline: float = 0.0
    #: seconds the watchdog allows beyond run time + stop timeout
    watchdog_grace: float = 15.0
    #: comma-separated instances to spread users over (user k takes URL k mod N); empty = --host
    target_urls: str = ""
    #: a server process (tree) to sample into server.csv during a plain run; 0 = none
    target_pid: int = 0
    #: stop a run whose every connect has failed this long (seconds); 0 = never
    fail_fast_after: float = 5.0
    #: deliveries a fan-out send should cause: "acks" (the server's count), "roster"
    #: (the load generator's room members; needed with several instances) or "auto"
    expected_from: str = "auto"
    #: the user owns the (non-loopback) target hosts and means to load them
    i_own_this_host: bool = False
    #: comma-separated hosts (names or addresses) the user owns: allowed besides loopback, no others
    own_hosts: str = ""
    #: workers send their sample shards to the Locust master, which writes them (no shared folder needed)
    samples_via_master: bool = False

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        need(0 <= self.payload_bytes <= MAX_PAYLOAD_BYTES,
             f"--payload-bytes must be 0..{MAX_PAYLOAD_BYTES} (the server's message limit is lower still), "
             f"got {self.payload_bytes}")
        need(math.isfinite(self.emit_rate), f"--emit-rate must be a finite number, got {self.emit_rate}")
        need(self.emit_rate >= 0, f"--emit-rate must be >= 0 (0 = flat out), got {self.emit_rate}")
        need(self.room_size >= 1, f"--room-size must be >= 1, got {self.room_size}")
        need(
            1 <= self.senders_per_room <= self.room_size,
            f"--senders-per-room must be 1..room size ({self.room_size}), got {self.senders_per_room}",
        )
        need(
            self.namespace.startswith("/") and "," not in self.namespace,
            f"--namespace must start with '/' and contain no ',', got {self.namespace!r}",
        )
        need(self.transport in TRANSPORTS,
             f"--transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}")
        need(
            not self.open_model or self.emit_rate > 0,
            "--open-model needs an --emit-rate > 0: the schedule is what latency is measured from",
        )
        need(self.call_timeout > 0, f"--call-timeout must be > 0, got {self.call_timeout}")
        need(self.drain_timeout >= 0, f"--drain-timeout must be >= 0, got {self.drain_timeout}")
        need(self.flush_interval > 0, f"--flush-interval must be > 0, got {self.flush_interval}")
        need(self.run_deadline >= 0, f"--run-deadline must be >= 0, got {self.run_deadline}")
        need(self.watchdog_grace >= 0, f"--watchdog-grace must be >= 0, got {self.watchdog_grace}")
        need(all("/" not in h and " " not in h for h in self.owned_hosts),
             f"--own-hosts must be host names or addresses separated by commas, got {self.own_hosts!r}")
        urls = parse_target_urls(self.target_urls)  # ValueError names the bad URL
        for url in urls:
            require_loopback(url, allow_remote=self.i_own_this_host, owned=self.owned_hosts)
        resolve_expected_from(self.expected_from, len(urls))

    @property
    def owned_hosts(self) -> tuple[str, ...]:
        """The hosts of ``--own-hosts`` (allowed as targets besides loopback)."""
        return tuple(h.strip() for h in self.own_hosts.split(",") if h.strip())

    @property
    def urls(self) -> tuple[str, ...]:
        """The instances of ``--target-urls`` (empty: every user loads ``--host``)."""
        return parse_target_urls(self.target_urls)

    @property
    def expected_source(self) -> str:
        """``acks`` or ``roster``: where a fan-out send's ``expected`` comes from."""
        return resolve_expected_from(self.expected_from, len(self.urls))

    @property
    def auth(self) -> dict[str, str] | None:
        """The CONNECT auth payload, or None when no token is set."""
        return {"token": self.auth_token} if self.auth_token else None

    @classmethod
    def from_options(cls, options: Any) -> LoadSettings:
        """Build from Locust's ``parsed_options`` (None or missing fields: defaults).

        Raises ValueError naming the bad option.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = getattr(options, f.name, None) if options is not None else None
            if value is None or value == "":
                continue
            values[f.name] = _coerce(f.name, f.type, value)
        return cls(**values)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind = str(kind)
    try:
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("bool"):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    except (TypeError, ValueError):
        raise ValueError(f"--{name.replace('_', '-')} must be a number, got {value!r}") from None
    return str(value)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def check_host(host: str | None, settings: LoadSettings) -> None:
    """Refuse a ``--host`` outside loopback unless the user owns it (UnsafeTargetError)."""
    if host:
        require_loopback(host, allow_remote=settings.i_own_this_host, owned=settings.owned_hosts)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


#: Locust's own listeners default to every interface; here to loopback. A flag
#: (--web-host, --master-bind-host) or LOCUST_WEB_HOST / LOCUST_MASTER_BIND_HOST
#: still chooses another interface (containers do).
LOOPBACK_LISTENERS = {"web_host": "127.0.0.1", "master_bind_host": "127.0.0.1"}


def add_arguments(parser: Any) -> None:
    """Register the custom arguments on Locust's parser (``init_command_line_parser``).

    Also makes Locust's web UI and master listen on loopback by default.
    """
    parser.set_defaults(**LOOPBACK_LISTENERS)
    d = LoadSettings()
    # On the parser itself, not an argument group: only Locust's parser knows
    # the web-UI flags (include_in_web_ui, is_secret).
    add = parser.add_argument
    add("--payload-bytes", type=_non_negative_int, default=d.payload_bytes,
        help=f"Size of the payload string each emit carries (default {d.payload_bytes})")
    add("--emit-rate", type=_non_negative_float, default=d.emit_rate,
        help="Emits per second per sending user; 0 = as fast as acks return (default 0)")
    add("--room-size", type=_non_negative_int, default=d.room_size,
        help=f"Users per room in the broadcast and rooms scenarios (default {d.room_size})")
    add("--senders-per-room", type=_non_negative_int, default=d.senders_per_room,
        help=f"Senders per broadcast room; the rest only listen (default {d.senders_per_room})")
    add("--namespace", default=d.namespace,
        help="Socket.IO namespace to connect to (default /)")
    add("--transport", choices=TRANSPORTS, default=d.transport,
        help="Transport of ReferenceUser (python-socketio); the lean users are websocket-only")
    add("--open-model", action="store_true", default=d.open_model,
        help="Pace emits on a fixed schedule (needs --emit-rate) and time them from the intended "
             "send time, so a stalled server shows in the percentiles")
    add("--call-timeout", type=_non_negative_float, default=d.call_timeout,
        help=f"Seconds before an unanswered call fails (default {d.call_timeout:g})")
    add("--drain-timeout", type=_non_negative_float, default=d.drain_timeout,
        include_in_web_ui=False,
        help=f"Seconds fan-out users wait at stop for deliveries in flight (default {d.drain_timeout:g})")
    add("--auth-token", default=os.environ.get(ENV_AUTH_TOKEN, ""), is_secret=True,
        help=f"Token for the CONNECT auth payload (default: ${ENV_AUTH_TOKEN})")
    add("--results-dir", default=os.environ.get(ENV_RESULTS_DIR, ""),
        help=f"Folder for the sample shards (default: ${ENV_RESULTS_DIR}; unset = no recording)")
    add("--flush-interval", type=_non_negative_float, default=d.flush_interval,
        include_in_web_ui=False,
        help=f"Seconds between sample shard flushes (default {d.flush_interval:g})")
    add("--run-deadline", type=_non_negative_float, default=d.run_deadline,
        include_in_web_ui=False,
        help="Hard deadline in seconds from test start, after which the process flushes and "
             "exits; 0 = run time + stop timeout + grace (default 0)")
    add("--watchdog-grace", type=_non_negative_float, default=d.watchdog_grace,
        include_in_web_ui=False,
        help=f"Seconds the watchdog allows beyond run time + stop timeout (default {d.watchdog_grace:g})")
    add("--target-urls", default=d.target_urls,
        help="Comma-separated target instances sharing a message queue; user k loads URL k mod N "
             "(default: every user loads --host)")
    add("--fail-fast-after", type=_non_negative_float, default=d.fail_fast_after, include_in_web_ui=False,
        help=f"Stop the run when every connect has failed for this many seconds, exit status 4 "
             f"(default {d.fail_fast_after:g}; 0 = never)")
    add("--target-pid", type=_non_negative_int, default=d.target_pid, include_in_web_ui=False,
        help="Sample this server process tree (CPU, memory, threads, descriptors) into server.csv in "
             "--results-dir while the test runs (default 0 = none)")
    add("--expected-from", choices=EXPECTED_FROM, default=d.expected_from,
        help="Deliveries a broadcast should cause: 'acks' (the server's recipients, one instance), "
             "'roster' (this load generator's room members), 'auto' = roster with several --target-urls")
    add("--samples-via-master", action="store_true", default=d.samples_via_master, include_in_web_ui=False,
        help="Workers send their samples to the master over Locust's own channel, and the master writes "
             "them into its --results-dir (for workers on other hosts, with no shared folder); set it on the "
             "master, workers follow (default: each process writes its own shards)")
    add("--own-hosts", default=os.environ.get(ENV_OWN_HOSTS, ""), include_in_web_ui=False,
        help=f"Comma-separated hosts you own that may be load targets besides loopback; no other host is "
             f"(narrower than --i-own-this-host; also ${ENV_OWN_HOSTS})")
    add("--i-own-this-host", action="store_true", default=_env_flag(ENV_OWN_HOST),
        include_in_web_ui=False,
        help=f"Allow targets outside loopback (127.0.0.0/8, ::1): only for hosts you own "
             f"(also ${ENV_OWN_HOST}=1)")
