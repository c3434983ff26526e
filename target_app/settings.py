"""Target settings: one value object, filled from flags or ``TARGET_*`` env vars.

Only the standard library is imported here: ``__main__`` parses settings
before it monkey-patches for eventlet or gevent.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from .gc_setting import GC_HELP, GcSetting

ASYNC_MODES: tuple[str, ...] = ("threading", "eventlet", "gevent", "asgi")
SERVERS: tuple[str, ...] = ("dev", "gunicorn", "uvicorn")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")

# Which servers can host which async mode.
SERVERS_BY_MODE: dict[str, tuple[str, ...]] = {
    "threading": ("dev", "gunicorn"),
    "eventlet": ("dev", "gunicorn"),
    "gevent": ("dev", "gunicorn"),
    "asgi": ("uvicorn",),
}

ENV_PREFIX = "TARGET_"
#: URL schemes of a message queue (python-socketio's Redis manager).
MESSAGE_QUEUE_SCHEMES: tuple[str, ...] = ("redis", "rediss", "unix")


#: the largest --handler-cost-us: a second of work per event is a stalled server, not a knob
MAX_HANDLER_COST_US = 1_000_000.0
#: the largest --handler-loop: about a second of work per event, too
MAX_HANDLER_LOOP = 10_000_000


@dataclass(frozen=True)
class TargetSettings:
    """Everything that shapes a target process."""

    async_mode: str = "threading"
    server: str = "dev"
    host: str = "127.0.0.1"
    port: int = 5000
    # None: same origin only. "*" allows any origin.
    cors_origins: tuple[str, ...] | None = None
    message_queue: str | None = None
    auth_token: str | None = None
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    # Largest accepted message (bytes); bigger ones close that client only.
    max_http_buffer_size: int = 1_000_000
    # Simultaneous connections the server accepts (eventlet's default is 1024).
    max_connections: int = 10_000
    # Threads for the gunicorn gthread worker (threading mode).
    threads: int = 100
    # TCP_NODELAY on WSGI connections, as uvicorn sets it (see nodelay.py).
    tcp_nodelay: bool = True
    # Busy CPU work added to every handled contract event, in microseconds: a
    # known regression for A/B checks, and "what if my handler cost X" for users.
    handler_cost_us: float = 0.0
    # Iterations of a fixed loop added to every handled contract event and connect: the same regression counted
    # in instructions (the same count at any speed, where --handler-cost-us spins for a time).
    handler_loop: int = 0
    log_level: str = "warning"
    # How the cyclic garbage collector runs (gc_setting.py), and where its pauses are written.
    gc: str = "default"
    gc_log: str | None = None

    def __post_init__(self) -> None:
        if self.async_mode not in ASYNC_MODES:
            raise ValueError(f"async mode must be one of {', '.join(ASYNC_MODES)}, got {self.async_mode!r}")
        if self.server not in SERVERS_BY_MODE[self.async_mode]:
            allowed = ", ".join(SERVERS_BY_MODE[self.async_mode])
            raise ValueError(f"async mode {self.async_mode!r} runs under {allowed}, not {self.server!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, got {self.port}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        for name in ("ping_interval", "ping_timeout"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name.replace('_', ' ')} must be a finite number > 0, got {getattr(self, name)}")
        if not (math.isfinite(self.handler_cost_us) and 0 <= self.handler_cost_us <= MAX_HANDLER_COST_US):
            raise ValueError(f"handler cost must be 0..{MAX_HANDLER_COST_US:g} microseconds, "
                             f"got {self.handler_cost_us}")
        if not 0 <= self.handler_loop <= MAX_HANDLER_LOOP:
            raise ValueError(f"handler loop must be 0..{MAX_HANDLER_LOOP:,} iterations, got {self.handler_loop}")
        for name in ("max_http_buffer_size", "max_connections", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be >= 1, got {getattr(self, name)}")
        GcSetting.parse(self.gc)
        if self.gc_log is not None and not os.path.isdir(os.path.dirname(os.path.abspath(self.gc_log))):
            raise ValueError(f"gc log {self.gc_log!r}: its folder does not exist")
        if self.message_queue is not None and urlsplit(self.message_queue).scheme not in MESSAGE_QUEUE_SCHEMES:
            raise ValueError(f"message queue must be a redis://host:port/db URL (or rediss://, unix://), "
                             f"got {self.message_queue!r}")

    @property
    def cors_allowed_origins(self) -> list[str] | str | None:
        """The value python-socketio expects: None means same origin only.

        (An empty list would switch python-engineio's origin check off
        altogether, letting any web page open a connection.)
        """
        if self.cors_origins is None:
            return None
        if "*" in self.cors_origins:
            return "*"
        return list(self.cors_origins)

    def to_env(self) -> dict[str, str]:
        """The settings as ``TARGET_*`` variables (how gunicorn workers get them)."""
        env: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(value)
            env[ENV_PREFIX + key.upper()] = str(value)
        return env


def _parse_origins(text: str) -> tuple[str, ...] | None:
    origins = tuple(o.strip() for o in text.split(",") if o.strip())
    return origins or None


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


_CONVERTERS: dict[str, Any] = {
    "tcp_nodelay": _parse_bool,
    "port": int,
    "ping_interval": float,
    "ping_timeout": float,
    "max_http_buffer_size": int,
    "max_connections": int,
    "threads": int,
    "handler_cost_us": float,
    "handler_loop": int,
    "cors_origins": _parse_origins,
}


def settings_from_env(environ: Mapping[str, str] | None = None) -> TargetSettings:
    """Settings from ``TARGET_*`` variables, defaults for the rest."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in fields(TargetSettings):
        raw = environ.get(ENV_PREFIX + field.name.upper())
        if raw is None or raw == "":
            continue
        convert = _CONVERTERS.get(field.name, str)
        try:
            values[field.name] = convert(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{field.name.upper()}={raw!r} is not a valid {field.name}") from None
    return TargetSettings(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m target_app",
        description="Reference Flask-SocketIO target for load tests. "
        "Every flag can also be set as a TARGET_<NAME> environment variable.",
    )
    parser.add_argument("--async-mode", choices=ASYNC_MODES,
                        help="threading, eventlet, gevent, or asgi (python-socketio AsyncServer under uvicorn)")
    parser.add_argument("--server", choices=SERVERS,
                        help="dev (socketio.run-style embedded server), gunicorn, or uvicorn (asgi only)")
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 5000)")
    parser.add_argument("--cors-origins",
                        help="comma-separated allowed origins, '*' for any (default: same origin only)")
    parser.add_argument("--message-queue",
                        help="message queue URL for several instances, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--auth-token", help="require {'token': TOKEN} as the connect auth payload")
    parser.add_argument("--ping-interval", type=float, help="Engine.IO ping interval in seconds (default 25)")
    parser.add_argument("--ping-timeout", type=float, help="Engine.IO ping timeout in seconds (default 20)")
    parser.add_argument("--max-http-buffer-size", type=int, help="largest accepted message in bytes (default 1000000)")
    parser.add_argument("--max-connections", type=int, help="simultaneous connections accepted (default 10000)")
    parser.add_argument("--threads", type=int, help="threads of the gunicorn gthread worker (default 100)")
    parser.add_argument("--tcp-nodelay", action=argparse.BooleanOptionalAction, default=None,
                        help="TCP_NODELAY on WSGI connections (default on, as uvicorn does); "
                             "--no-tcp-nodelay measures the servers' stock Nagle behaviour")
    parser.add_argument("--handler-cost-us", type=float,
                        help="busy CPU work added to every handled event, in microseconds (default 0): a known "
                             "regression for A/B checks, or what a handler costing that much does to the server")
    parser.add_argument("--handler-loop", type=int, metavar="N",
                        help="N iterations of a fixed loop added to every handled event and connect (default 0): "
                             "the same instructions at any speed, a known regression for the instruction count")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="default warning; debug also logs every request")
    parser.add_argument("--gc", metavar="SETTING",
                        help=f"the cyclic garbage collector: {GC_HELP} (default: default). freeze runs "
                             "gc.freeze() once the app is built, off runs gc.disable()")
    parser.add_argument("--gc-log", metavar="PATH",
                        help="write every garbage-collector pause (start, duration, generation) to this CSV")
    return parser


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> TargetSettings:
    """Flags override ``TARGET_*`` variables, which override defaults."""
    args = build_parser().parse_args(argv)
    base = settings_from_env(environ)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    if "cors_origins" in overrides:
        overrides["cors_origins"] = _parse_origins(overrides["cors_origins"])
    if ("async_mode" in overrides and "server" not in overrides
            and base.server not in SERVERS_BY_MODE[overrides["async_mode"]]):
        overrides["server"] = SERVERS_BY_MODE[overrides["async_mode"]][0]
    values = asdict(base) | overrides
    return TargetSettings(**values)
