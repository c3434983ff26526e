"""Which clients have a running tick stream, so a stream can be stopped."""
from __future__ import annotations

import itertools
import threading


class TickSubscriptions:
    """One live tick stream per client; a new subscribe replaces the old one.

    Each stream holds a token; the sending loop checks its token before every
    tick, so cancelling (unsubscribe, disconnect) needs no cross-thread kill.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._live: dict[str, int] = {}

    def start(self, sid: str) -> int:
        with self._lock:
            token = next(self._tokens)
            self._live[sid] = token
            return token

    def active(self, sid: str, token: int) -> bool:
        return self._live.get(sid) == token

    def finish(self, sid: str, token: int) -> None:
        with self._lock:
            if self._live.get(sid) == token:
                del self._live[sid]

    def cancel(self, sid: str) -> bool:
        """Stop the client's stream; True if one was running."""
        with self._lock:
            return self._live.pop(sid, None) is not None
