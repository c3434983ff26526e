"""Progress of a long report build on stderr."""
from __future__ import annotations

from typing import TextIO


class Progress:
    """Progress on stderr: a rewritten line on a terminal, a few plain lines otherwise."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self._last_quarter = -1
        self._open = False  # a rewritten line is on screen

    def say(self, message: str) -> None:
        if self.enabled:
            self._end_line()
            print(message, file=self.stream, flush=True)

    def shard(self, done: int, total: int, name: str) -> None:
        """``load_cell``'s progress callback."""
        if not self.enabled or total < 2:
            return
        if self.tty:
            self.stream.write(f"\r  reading shards {done}/{total} ({name})\x1b[K")
            self.stream.flush()
            self._open = True
            return
        quarter = done * 4 // total
        if total >= 8 and quarter != self._last_quarter:
            self._last_quarter = quarter
            print(f"  reading shards {done}/{total}", file=self.stream, flush=True)

    def _end_line(self) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False
        self._last_quarter = -1
