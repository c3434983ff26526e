"""A deadline that ends the process even when Locust cannot.

A Locust run can outlive its ``-t``: a user that ignores ``GreenletExit``, an
``on_stop`` that blocks, or a greenlet that blocks the whole hub (a C call, an
unpatched sleep) keeps ``runner.quit()`` waiting forever. The watchdog is an
OS thread, not a greenlet, so it runs whatever the hub is doing: at the
deadline it runs its flush callbacks (each bounded in time), says so on
stderr, and calls ``os._exit``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Sequence

try:
    from gevent.monkey import get_original

    _start_thread = get_original("_thread", "start_new_thread")
    _allocate_lock = get_original("_thread", "allocate_lock")
    _monotonic = get_original("time", "monotonic")
except ImportError:  # pragma: no cover - gevent is a dependency
    from _thread import allocate_lock as _allocate_lock
    from _thread import start_new_thread as _start_thread
    from time import monotonic as _monotonic

#: exit status of a process the watchdog ended
WATCHDOG_EXIT_CODE = 3


class Watchdog:
    """Exits the process ``os._exit(exit_code)`` at a deadline unless disarmed.

    :param on_expire: callables run (in order, each at most ``flush_timeout``
        seconds) before exiting, e.g. the recorder's flush.
    """

    def __init__(
        self,
        on_expire: Sequence[Callable[[], object]] = (),
        *,
        exit_code: int = WATCHDOG_EXIT_CODE,
        flush_timeout: float = 10.0,
        exit: Callable[[int], object] = os._exit,
    ) -> None:
        self.on_expire = list(on_expire)
        self.exit_code = exit_code
        self.flush_timeout = flush_timeout
        self._exit = exit
        self._deadline: float | None = None
        self._wake = _allocate_lock()
        self._wake.acquire()  # held = nothing to report; released = re-check
        self._started = False
        self.expired = False

    @property
    def remaining(self) -> float | None:
        """Seconds left, or None when disarmed."""
        return None if self._deadline is None else self._deadline - _monotonic()

    def arm(self, seconds: float) -> None:
        """(Re)set the deadline to ``seconds`` from now."""
        self._deadline = _monotonic() + seconds
        if not self._started:
            self._started = True
            _start_thread(self._run, ())
        else:
            self._poke()

    def disarm(self) -> None:
        self._deadline = None
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(RuntimeError):  # already released: the thread will re-check anyway
            self._wake.release()

    def _run(self) -> None:
        while True:
            deadline = self._deadline
            wait = 3600.0 if deadline is None else deadline - _monotonic()
            if deadline is not None and wait <= 0:
                break
            # A lock acquire with timeout is an interruptible sleep.
            self._wake.acquire(True, min(wait, 3600.0))
        self.expired = True
        sys.stderr.write(f"watchdog: run deadline passed, flushing and exiting with status {self.exit_code}\n")
        for callback in self.on_expire:
            _run_bounded(callback, self.flush_timeout)
        try:
            sys.stderr.flush()
            sys.stdout.flush()
        except Exception:
            pass
        self._exit(self.exit_code)


def _run_bounded(callback: Callable[[], object], timeout: float) -> None:
    """Run ``callback`` in its own OS thread; give up waiting after ``timeout``."""
    done = _allocate_lock()
    done.acquire()

    def run() -> None:
        try:
            callback()
        except BaseException as exc:  # report and carry on: the exit must happen
            sys.stderr.write(f"watchdog: {callback!r} failed: {exc!r}\n")
        finally:
            done.release()

    _start_thread(run, ())
    if not done.acquire(True, timeout):
        sys.stderr.write(f"watchdog: {callback!r} still running after {timeout:g} s, exiting anyway\n")


def deadline_seconds(
    *,
    run_time: float | None,
    stop_timeout: float | None,
    grace: float,
    run_deadline: float = 0.0,
) -> float | None:
    """Seconds from test start to the hard deadline, or None for no deadline."""
    if run_deadline and run_deadline > 0:
        return run_deadline
    if not run_time:
        return None
    return float(run_time) + float(stop_timeout or 0) + grace


def run_time_from_argv(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> float | None:
    """The ``-t/--run-time`` given on the command line or in ``LOCUST_RUN_TIME``.

    Locust clears ``run_time`` in the worker processes ``--processes`` forks,
    yet those workers need the deadline too.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-t", "--run-time")
    known, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    text = known.run_time or (os.environ if environ is None else environ).get("LOCUST_RUN_TIME")
    if not text:
        return None
    return parse_timespan(text)


_TIMESPAN = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s?)?$")


def parse_timespan(text: str) -> float | None:
    """Seconds in a Locust timespan ("90", "20s", "1h30m10s"); None if malformed.

    (Locust's own parser lives in the ``locust`` package, whose import
    monkey-patches the process.)
    """
    match = _TIMESPAN.match(text.strip())
    if not text.strip() or match is None:
        return None
    h, m, s = (int(match.group(k) or 0) for k in ("h", "m", "s"))
    return float(h * 3600 + m * 60 + s)
