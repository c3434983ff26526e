"""What recording costs a load generator: the recorder's share of its CPU, and the cyclic GC's.

Imported by the benchmark's child process after gevent's monkey-patching.
The recorder's cost has two parts: its ``request`` listener, run for every
sample on the users' thread (timed here by replaying samples into a scratch
recorder: timing each real call would cost as much as the call), and its
shard writes, run in gevent's thread pool (timed in the thread that runs
them).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from loadtests.runtime.recorder import Recorder


class TimedRecorder(Recorder):
    """A recorder that times its shard writes, in the thread that writes them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (monotonic start, thread CPU seconds) of each write
        self.writes: list[tuple[float, float]] = []

    def write(self, rows: list[tuple], timeout: float = -1) -> Path | None:
        started, cpu = time.monotonic(), time.thread_time()
        try:
            return super().write(rows, timeout)
        finally:
            self.writes.append((started, time.thread_time() - cpu))

    def write_cpu_between(self, start: float, end: float) -> float:
        """CPU seconds of the writes that started in [start, end) (monotonic clock)."""
        return sum(cpu for at, cpu in self.writes if start <= at < end)


def listener_seconds_per_sample(payload_bytes: int, n: int = 20_000) -> float:
    """CPU seconds the recorder's listener takes per ack sample, replayed into a scratch recorder."""
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-replay-") as folder:
        scratch = Recorder(folder, max_rows=n + 1)
        nbytes = payload_bytes + 30  # about what an echo puts on the wire
        context = {"kind": "ack", "t_ns": time.time_ns(), "user": 7, "expected": 0, "bytes": nbytes}
        kwargs: dict[str, Any] = {"request_type": "ack", "name": "echo", "response_time": 1.234,
                                  "response_length": nbytes, "exception": None, "context": context}
        on_request = scratch.on_request
        started = time.thread_time()  # this thread's only: a shard write may run beside it
        for _ in range(n):
            on_request(**kwargs)
        return (time.thread_time() - started) / n


class GcClock:
    """A ``gc.callbacks`` entry adding up the time the cyclic collector runs."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections += 1
