"""Start the target as a subprocess, wait until it is healthy, always stop it.

Used by the tests and the runner alike. The process gets its own session so
its whole tree (a gunicorn master and worker, say) can be ended together, by
the PIDs this module started and nothing else.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import psutil

from sioharness.core.children import dies_with_parent
from sioharness.core.local_http import open_url
from sioharness.core.paths import IMPORT_ROOT, python_path_with
from sioharness.core.stats_client import fetch_stats

LOOPBACK = "127.0.0.1"


class TargetStartError(RuntimeError):
    """The target did not become healthy; the message holds its log's tail."""


def free_port(host: str = LOOPBACK) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on ``host:port`` (a server started there would not get it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class TargetProcess:
    """A running target and how to reach it."""

    process: subprocess.Popen
    host: str
    port: int
    log_path: Path | None
    mode: str
    server: str
    argv: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        return fetch_stats(self.url, timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise TargetStartError(
                    f"target {self.mode}/{self.server} exited with code {self.process.returncode} "
                    f"before it was healthy. Log tail:\n{self.log_tail()}")
            try:
                with open_url(self.url + "/healthz", timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        raise TargetStartError(
            f"target {self.mode}/{self.server} not healthy at {self.url}/healthz after {timeout:.0f} s. "
            f"Log tail:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the tree, then SIGKILL what is left after ``timeout``."""
        try:
            tree = [psutil.Process(self.pid)] + psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        return self.process.returncode


def target_argv(mode: str, server: str, host: str, port: int, extra_args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "target_app", "--async-mode", mode, "--server", server,
            "--host", host, "--port", str(port), *extra_args]


def launch_target(mode: str, server: str = "dev", *, host: str = LOOPBACK, port: int | None = None,
                  log_path: Path | None = None, extra_args: Sequence[str] = (),
                  cpu_affinity: Sequence[int] | None = None, env: dict[str, str] | None = None,
                  ready_timeout: float = 30.0) -> TargetProcess:
    """Start a target and wait for ``/healthz``; the caller must ``stop()`` it."""
    port = port or free_port(host)
    return launch_server(target_argv(mode, server, host, port, extra_args), mode=mode, server=server, host=host,
                         port=port, log_path=log_path, cpu_affinity=cpu_affinity, env=env,
                         ready_timeout=ready_timeout)


def launch_server(argv: list[str], *, mode: str, server: str, host: str, port: int, log_path: Path | None = None,
                  cpu_affinity: Sequence[int] | None = None, env: dict[str, str] | None = None,
                  ready_timeout: float = 30.0) -> TargetProcess:
    """Start any server command that answers ``/healthz`` on ``host:port``, and wait for it."""
    if cpu_affinity:
        argv = ["taskset", "--cpu-list", ",".join(map(str, cpu_affinity))] + argv
    child_env = os.environ | (env or {})
    child_env["PYTHONPATH"] = python_path_with(IMPORT_ROOT, child_env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(log_path, "ab")) if log_path else subprocess.DEVNULL
        process = subprocess.Popen(dies_with_parent(argv), cwd=IMPORT_ROOT, env=child_env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    target = TargetProcess(process=process, host=host, port=port, log_path=log_path,
                           mode=mode, server=server, argv=argv)
    try:
        target.wait_healthy(ready_timeout)
    except BaseException:
        target.stop()
        raise
    return target


@contextlib.contextmanager
def start_target(mode: str, server: str = "dev", **kwargs: Any) -> Iterator[TargetProcess]:
    """Context manager around ``launch_target`` that always stops the target."""
    target = launch_target(mode, server, **kwargs)
    try:
        yield target
    finally:
        target.stop()
