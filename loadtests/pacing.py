"""Emit pacing (no Locust import, testable alone)."""
from __future__ import annotations


class Pacer:
    """When the next emit of one user is due, on the ``perf_counter_ns`` clock.

    Closed model: at most ``rate`` per second, never catching up after a
    slow ack. Open model: a fixed schedule ``t0 + k / rate``; after a stall
    the backlog is sent at once, each emit timed from its own slot, so the
    stall shows in the latencies (coordinated omission corrected).
    """

    __slots__ = ("interval_ns", "open_model", "phase", "_next")

    def __init__(self, rate: float, open_model: bool = False, phase: float = 0.0) -> None:
        self.interval_ns = int(1e9 / rate) if rate > 0 else 0
        self.open_model = open_model
        #: fraction of an interval to delay the first slot, to spread users
        self.phase = phase
        self._next: int | None = None

    @property
    def paced(self) -> bool:
        return self.interval_ns > 0

    def next_due(self, now_ns: int) -> int:
        """The slot of the next emit (may be in the past: send at once)."""
        if self._next is None:
            self._next = now_ns + int(self.phase * self.interval_ns)
        due = self._next
        self._next = (due if self.open_model else max(due, now_ns)) + self.interval_ns
        return due
