"""The system under test of one cell: target instances, their message queue, or a server already running.

- One instance (``gevent-dev``): one target process, its log ``target.log``,
  its garbage-collector pauses ``gc.csv`` (``--gc-log``).
- Several (``gevent-dev-x3``), or one behind the queue (``-x1``): a private
  ``redis-server`` on a free loopback port, then N targets started with
  ``--message-queue redis://127.0.0.1:PORT/0``; logs ``target-1.log``...,
  ``redis.log``, ``gc-1.csv``..., and at the end one ``target.log`` with every instance's log
  under a header (the report scans that file).
- External (``--target-url``): servers the user started; never stopped here.

:meth:`TargetGroup.check` tells the runner, once per poll, what died since
the last poll, so the cell can go on while some instances still serve and
say afterwards what was lost.
"""
from __future__ import annotations

import contextlib
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import psutil

from sioharness.bench.own_app import CommandTarget, launch_command
from sioharness.bench.profile import ExternalTarget, TargetSpec
from sioharness.bench.redis_server import RedisServer, RedisStartError, RedisUnavailable, launch_redis
from sioharness.core.files import atomic_open
from sioharness.core.gc_pauses import GC_CSV
from sioharness.core.local_http import open_url
from sioharness.core.schema import APP_INFO_FILE
from sioharness.core.stats_client import probe_stats
from target_app.process import TargetProcess, TargetStartError, launch_target

__all__ = ["ExternalTarget", "TargetGroup", "TargetStartError", "launch_group", "external_group"]


@dataclass
class Fault:
    """Something of the system under test that ended during the run."""

    what: str
    at_s: float
    consequence: str = ""

    @property
    def reason(self) -> str:
        """``target exited with code -9 during the run (at +3.1 s)[: consequence]``."""
        tail = f": {self.consequence}" if self.consequence else ""
        return f"{self.what} during the run (at +{self.at_s:.1f} s){tail}"


@dataclass
class TargetGroup:
    """Every process a cell loads, and how to reach it."""

    spec: TargetSpec | CommandTarget | ExternalTarget
    instances: list[TargetProcess] = field(default_factory=list)
    redis: RedisServer | None = None
    #: URLs of the servers when they are external
    external_urls: tuple[str, ...] = ()
    #: root PIDs of external servers found on this machine (sampled, never signalled)
    external_pids: tuple[int, ...] = ()
    started: float = field(default_factory=time.monotonic)
    faults: list[Fault] = field(default_factory=list)
    _reported: set[str] = field(default_factory=set)

    @property
    def urls(self) -> list[str]:
        return list(self.external_urls) or [t.url for t in self.instances]

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def pids(self) -> list[int]:
        """Roots to sample into server.csv: instances, their Redis, or external servers found here."""
        if self.external_urls:
            return list(self.external_pids)
        return [t.pid for t in self.instances] + ([self.redis.pid] if self.redis else [])

    def label_of(self, index: int) -> str:
        return f"instance {index + 1}/{len(self.instances)} ({self.instances[index].url})"

    def check(self) -> list[Fault]:
        """What exited since the last call (each reported once)."""
        new: list[Fault] = []
        now = time.monotonic() - self.started
        for index, target in enumerate(self.instances):
            key = f"target-{index}"
            if key not in self._reported and not target.alive():
                self._reported.add(key)
                if len(self.instances) == 1:
                    new.append(Fault(f"target exited with code {target.process.returncode}", now))
                else:
                    new.append(Fault(f"{self.label_of(index)} exited with code {target.process.returncode}", now,
                                     "its clients failed, the other instances kept serving"))
        if self.redis is not None and "redis" not in self._reported and not self.redis.alive():
            self._reported.add("redis")
            new.append(Fault(f"message queue redis-server ({self.redis.host}:{self.redis.port}) exited with code "
                             f"{self.redis.returncode}", now,
                             "broadcasts and room messages are refused from then on (error acks)"))
        self.faults += new
        return new

    def all_down(self) -> bool:
        """True when no instance is left to load (never for external servers)."""
        return bool(self.instances) and not any(t.alive() for t in self.instances)

    def describe(self) -> list[dict[str, Any]]:
        """run.json ``instances``: each one's URL, PID, log and exit code."""
        rows = [{"url": t.url, "pid": t.pid, "log": t.log_path.name if t.log_path else None,
                 "exit_code": t.process.poll()} for t in self.instances]
        rows += [{"url": url, "pid": None, "log": None, "exit_code": None} for url in self.external_urls]
        return rows

    def describe_queue(self) -> dict[str, Any] | None:
        if self.redis is None:
            return None
        return {"kind": "redis", "url": self.redis.url, "pid": self.redis.pid, "exit_code": self.redis.returncode}

    def stop(self) -> None:
        """Stop what this module started: instances first (they hold Redis connections), then Redis."""
        for target in self.instances:
            target.stop()
        if self.redis is not None:
            self.redis.stop()

    def merge_logs(self, cell_dir: Path) -> None:
        """One ``target.log`` with each instance's log under a header (several instances only)."""
        if len(self.instances) < 2 and self.redis is None:
            return
        final = cell_dir / "target.log"
        with atomic_open(final, "wb") as out:
            for index, target in enumerate(self.instances):
                assert target.log_path is not None  # launch_group gives every instance a log
                out.write(f"==> {self.label_of(index)}, pid {target.pid}, {target.log_path.name} <==\n".encode())
                if target.log_path.exists():
                    out.write(target.log_path.read_bytes())


def launch_group(spec: TargetSpec, cell_dir: Path, *, extra_args: Sequence[str] = (),
                 cpu_affinity: Sequence[int] | None = None) -> TargetGroup:
    """Start the cell's Redis (if any) and every instance; TargetStartError naming what failed.

    On failure everything started so far is stopped.
    """
    group = TargetGroup(spec)
    try:
        args = list(extra_args)
        if spec.message_queue:
            try:
                group.redis = launch_redis(log_path=cell_dir / "redis.log")
            except (RedisUnavailable, RedisStartError) as exc:
                raise TargetStartError(f"message queue: {exc}") from None
            args += ["--message-queue", group.redis.url]
        several = spec.message_queue
        for index in range(spec.instances):
            log = cell_dir / (f"target-{index + 1}.log" if several else "target.log")
            gc_log = cell_dir / (f"gc-{index + 1}.csv" if several else GC_CSV)
            try:
                group.instances.append(launch_target(spec.mode, spec.server, log_path=log,
                                                     extra_args=[*args, "--gc-log", str(gc_log.resolve())],
                                                     cpu_affinity=cpu_affinity))
            except TargetStartError as exc:
                if spec.instances == 1:
                    raise
                raise TargetStartError(f"instance {index + 1}/{spec.instances}: {exc}") from None
    except BaseException:
        group.stop()
        group.merge_logs(cell_dir)
        raise
    group.started = time.monotonic()
    return group


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]")
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def command_group(spec: CommandTarget, cell_dir: Path, *,
                  cpu_affinity: Sequence[int] | None = None) -> TargetGroup:
    """The user's own server, started from ``--target-cmd``; TargetStartError with its log tail."""
    target = launch_command(spec, log_path=cell_dir / "target.log", cpu_affinity=cpu_affinity,
                            gc_log=cell_dir / GC_CSV, app_info=cell_dir / APP_INFO_FILE)
    return TargetGroup(spec, instances=[target])


def external_group(urls: Sequence[str], *, extra_pids: Sequence[int] = ()) -> TargetGroup:
    """The group for servers the user runs; mode, server and (loopback) PIDs from their ``/stats``.

    Raises TargetStartError when a URL does not answer at all.
    """
    modes, servers, pids = set(), set(), []
    for url in urls:
        try:
            with open_url(url.rstrip("/") + "/", timeout=5.0):
                pass
        except urllib.error.HTTPError:
            pass  # it answers: a 404 for / is fine
        except (OSError, urllib.error.URLError) as exc:
            raise TargetStartError(f"target {url} does not answer: {exc}") from None
        stats = probe_stats(url)
        if stats:
            modes.add(str(stats.get("async_mode", "external")))
            servers.add(str(stats.get("server", "external")))
            pid = stats.get("pid")
            if _is_local(url) and isinstance(pid, int):
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid)  # visible from here: sample it
                    pids.append(pid)
    pids += [pid for pid in extra_pids if pid not in pids]
    spec = ExternalTarget(tuple(urls), mode=modes.pop() if len(modes) == 1 else "external",
                          server=servers.pop() if len(servers) == 1 else "external", pids=tuple(extra_pids))
    return TargetGroup(spec, external_urls=tuple(urls), external_pids=tuple(pids))
