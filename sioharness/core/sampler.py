"""Sample a process tree's CPU, memory, threads and descriptors into a CSV file.

The runner samples the target into ``server.csv`` and the load generator into
``loadgen.csv``: on a shared two-core machine the client's CPU is part of
every figure. CPU is cumulative over the tree; children that exit take their
CPU with them, so trees are sampled while they run.

Several roots (target instances and their Redis) are summed into one row:
``server.csv`` describes the whole system under test. A root that exits
drops out of the sum; sampling ends when every root is gone.
"""
from __future__ import annotations

import contextlib
import csv
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import psutil

from sioharness.core.stats_client import NoStatsError, fetch_stats

SERVER_CSV_COLUMNS = ("t_ns", "cpu_user_s", "cpu_system_s", "rss_bytes", "threads", "fds", "procs", "connected")


def stats_connected(url: str | Sequence[str]) -> Callable[[], int | None]:
    """A probe that reads ``connected`` from the ``/stats`` of one target or several (summed).

    Instances that do not answer are left out; None when none answers. An
    instance that answers without a ``/stats`` document (a user's app: a 404)
    is asked once, not at every sample.
    """
    urls = [url] if isinstance(url, str) else list(url)

    def probe() -> int | None:
        counts = []
        for one in list(urls):
            try:
                counts.append(int(fetch_stats(one, timeout=0.4)["connected"]))
            except NoStatsError:
                urls.remove(one)
            except (OSError, KeyError, TypeError, ValueError):
                continue
        return sum(counts) if counts else None

    return probe


def _trees(pids: Iterable[int]) -> list[psutil.Process]:
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
    return procs


def sample_tree(pid: int | Sequence[int]) -> dict[str, float | int] | None:
    """One reading of the tree rooted at ``pid`` (or the sum of several trees), None when all are gone."""
    procs = _trees([pid] if isinstance(pid, int) else pid)
    if not procs:
        return None
    totals = {"cpu_user_s": 0.0, "cpu_system_s": 0.0, "rss_bytes": 0, "threads": 0, "fds": 0, "procs": 0}
    for proc in procs:
        with contextlib.suppress(psutil.Error), proc.oneshot():
            cpu = proc.cpu_times()
            totals["cpu_user_s"] += cpu.user
            totals["cpu_system_s"] += cpu.system
            totals["rss_bytes"] += proc.memory_info().rss
            totals["threads"] += proc.num_threads()
            totals["fds"] += proc.num_fds()
            totals["procs"] += 1
    return totals if totals["procs"] else None


class TreeSampler:
    """A background thread writing one CSV row per interval until stopped.

    ``pid`` is one root process or several, whose trees are summed.
    """

    def __init__(self, pid: int | Sequence[int], path: Path, *, interval_s: float = 0.5,
                 connected: Callable[[], int | None] | None = None) -> None:
        self.pid: int | tuple[int, ...] = pid if isinstance(pid, int) else tuple(pid)
        self.path, self.interval_s, self.connected = path, interval_s, connected
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.pid}", daemon=True)
        self.last: dict[str, float | int] | None = None
        self.rows = 0

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with open(self.path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(SERVER_CSV_COLUMNS)
            next_at = time.monotonic()
            while not self._stop.is_set():
                reading = sample_tree(self.pid)
                if reading is None:
                    return
                connected = self.connected() if self.connected else None
                self.last = reading
                writer.writerow([time.time_ns(), f"{reading['cpu_user_s']:.3f}", f"{reading['cpu_system_s']:.3f}",
                                 reading["rss_bytes"], reading["threads"], reading["fds"], reading["procs"],
                                 "" if connected is None else connected])
                handle.flush()
                self.rows += 1
                next_at += self.interval_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    @property
    def cpu_s(self) -> float | None:
        return None if self.last is None else float(self.last["cpu_user_s"] + self.last["cpu_system_s"])
