"""Counters behind the target's ``/stats`` endpoint."""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any


class ServerStats:
    """Connection and event counters, safe to update from any thread or greenlet.

    Under eventlet or gevent the lock is a patched (cooperative) lock; it is
    only held for a counter update, so it never blocks across I/O.
    """

    def __init__(self, *, async_mode: str, server: str) -> None:
        self.async_mode = async_mode
        self.server = server
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._connected: Counter[str] = Counter()
        #: (namespace, sid) of every connection the real lifecycle opened
        self._sessions: set[tuple[str, str]] = set()
        self._events: Counter[str] = Counter()
        self.connects_total = 0
        self.disconnects_total = 0
        self.rejected_total = 0
        #: the admission's limit and refusals, in /stats once the app has one
        self.admission: Any = None

    def is_connected(self, namespace: str, sid: str) -> bool:
        """True once ``sid`` has connected to ``namespace`` (and not disconnected since)."""
        with self._lock:
            return (namespace, sid) in self._sessions

    def connected(self, namespace: str, sid: str) -> None:
        """A connection opened; an event that merely carries the name ``connect`` changes nothing."""
        with self._lock:
            if (namespace, sid) in self._sessions:
                return
            self._sessions.add((namespace, sid))
            self._connected[namespace] += 1
            self.connects_total += 1

    def disconnected(self, namespace: str, sid: str) -> None:
        """A connection closed; only one that :meth:`connected` counted moves the counters."""
        with self._lock:
            if (namespace, sid) not in self._sessions:
                return
            self._sessions.discard((namespace, sid))
            self._connected[namespace] -= 1
            self.disconnects_total += 1

    def rejected(self) -> None:
        with self._lock:
            self.rejected_total += 1

    def event(self, name: str) -> None:
        with self._lock:
            self._events[name] += 1

    def snapshot(self) -> dict[str, Any]:
        """The ``/stats`` document. It holds counters only, never settings or secrets."""
        with self._lock:
            by_namespace = {ns: n for ns, n in self._connected.items()}
            events = dict(self._events)
            connects, disconnects, rejected = self.connects_total, self.disconnects_total, self.rejected_total
        return {
            "pid": os.getpid(),
            "async_mode": self.async_mode,
            "server": self.server,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "connected": sum(by_namespace.values()),
            "connected_by_namespace": by_namespace,
            "connects_total": connects,
            "disconnects_total": disconnects,
            "rejected_total": rejected,
            "events": events,
            **({"admission": self.admission.snapshot()} if self.admission is not None else {}),
        }
