"""Ctrl-C, SIGTERM (what CI sends on cancel) and SIGHUP end a long command the same way: cleanly.

Inside :func:`interrupt_on_signals` each of the three signals sets an event
instead of killing the process; the command ends the run in flight, keeps
what it measured, writes its reports and removes what it made (worktrees,
processes). The previous handlers come back on the way out.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def interrupt_on_signals(prog: str, what_next: str) -> Iterator[threading.Event]:
    """An event set by the first of SIGINT, SIGTERM or SIGHUP; one line on stderr says what happens next."""
    interrupted = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        interrupted.set()
        with contextlib.suppress(OSError):  # after a SIGHUP the terminal may be gone
            print(f"\n{prog}: {signal.Signals(signum).name}: {what_next}", file=sys.stderr)

    previous = {sig: signal.signal(sig, on_signal) for sig in SIGNALS}
    try:
        yield interrupted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
