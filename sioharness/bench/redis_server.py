"""A private ``redis-server`` for the message queue: loopback, free port, no persistence.

The runner starts one per multi-instance cell and the tests one per test
module; each is its own process session, ended by its PID and nothing else.
It never touches a Redis the machine already runs (6379 is left alone).
"""
from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sioharness.core.children import dies_with_parent
from target_app.process import LOOPBACK, free_port

BINARY = "redis-server"


class RedisUnavailable(RuntimeError):
    """No ``redis-server`` binary here; the message says how to get one."""


class RedisStartError(RuntimeError):
    """``redis-server`` did not answer PING; the message holds its log's tail."""


def redis_binary() -> str | None:
    """Path of ``redis-server`` on PATH, or None."""
    return shutil.which(BINARY)


def require_redis_binary() -> str:
    path = redis_binary()
    if path is None:
        raise RedisUnavailable(
            f"{BINARY} is not installed: several target instances share a Redis message queue. "
            f"Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis).")
    return path


def redis_argv(binary: str, host: str, port: int) -> list[str]:
    """A throw-away server: no RDB snapshots, no AOF, protected mode, logging to stdout."""
    return [binary, "--bind", host, "--port", str(port), "--protected-mode", "yes",
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Redis answers PING at host:port (inline command, no client library).

    A server with a password answers NOAUTH: it is up all the same.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


@dataclass
class RedisServer:
    """A running private Redis and how to reach it."""

    process: subprocess.Popen
    host: str
    port: int
    log_path: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        """The message-queue URL for ``--message-queue`` (database 0)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.port}/0"

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 10) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        return self.process.returncode


def launch_redis(*, host: str = LOOPBACK, port: int | None = None, log_path: Path | None = None,
                 ready_timeout: float = 10.0, extra_args: Sequence[str] = ()) -> RedisServer:
    """Start a private ``redis-server`` and wait until it answers PING; the caller must ``stop()`` it.

    ``extra_args`` are more ``redis-server`` options, e.g. ``["--requirepass", "pw"]``.
    """
    binary = require_redis_binary()
    port = port or free_port(host)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(log_path, "ab")) if log_path else subprocess.DEVNULL
        process = subprocess.Popen(dies_with_parent([*redis_argv(binary, host, port), *extra_args]), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = RedisServer(process, host, port, log_path)
    deadline = time.monotonic() + ready_timeout
    while not ping(host, port, timeout=0.5):
        if not server.alive() or time.monotonic() > deadline:
            server.stop()
            raise RedisStartError(f"{BINARY} on {host}:{port} did not answer PING "
                                  f"(exit code {server.returncode}). Log tail:\n{server.log_tail()}")
        time.sleep(0.05)
    return server
