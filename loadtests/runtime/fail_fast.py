"""Stop a run that can measure nothing, and say so in the exit status.

A headless run whose every connect is refused used to spend its whole
``-t`` at 100% failures and exit like any run with failures. Here the
master (or the only process) watches Locust's own counts: when every
connect has failed for ``--fail-fast-after`` seconds it logs one line with
the first error and stops the run; and any run that ends with no successful
request at all exits with :data:`sioharness.core.exit_codes.EXIT_NOTHING_MEASURED`.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import gevent

from sioharness.core.exit_codes import EXIT_NOTHING_MEASURED

if TYPE_CHECKING:
    from locust.env import Environment

logger = logging.getLogger(__name__)
CHECK_INTERVAL_S = 0.5


def connect_counts(environment: Environment) -> tuple[int, int]:
    """(connects attempted, connects failed) so far, over every user class."""
    requests = failures = 0
    for entry in environment.stats.entries.values():
        if entry.method == "connect":
            requests += entry.num_requests
            failures += entry.num_failures
    return requests, failures


def first_error(environment: Environment, method: str | None = None) -> str:
    for error in environment.stats.errors.values():
        if method is None or error.method == method:
            return f"{error.name}: {error.error}"
    return "no error recorded"


class FailFast:
    """Watches one test of the master (or the only process); see the module."""

    def __init__(self, environment: Environment, grace_s: float) -> None:
        self.environment = environment
        self.grace_s = grace_s
        self.reason: str | None = None
        self._watch: gevent.Greenlet | None = None
        events = environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)

    def on_test_start(self, **_: Any) -> None:
        self.reason = None
        if self.grace_s > 0 and self._watch is None:
            self._watch = gevent.spawn(self._run)

    def on_test_stop(self, **_: Any) -> None:
        if self._watch is not None:
            self._watch.kill(block=False)
            self._watch = None

    def _run(self) -> None:
        failing_since: float | None = None
        while True:
            gevent.sleep(CHECK_INTERVAL_S)
            requests, failures = connect_counts(self.environment)
            if not requests or failures < requests:
                failing_since = None
                continue
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since >= self.grace_s:
                self.stop(f"every connect failed for {self.grace_s:g} s ({failures:,} of {requests:,}; "
                          f"{first_error(self.environment, 'connect')})")
                return

    def stop(self, reason: str) -> None:
        self.reason = reason
        logger.error("%s: stopping the run (exit status %d)", reason, EXIT_NOTHING_MEASURED)
        runner = self.environment.runner
        self._watch = None
        if runner is None:
            return
        if self.environment.web_ui is not None:
            gevent.spawn(runner.stop)  # the web UI lives on; this test ends
        else:
            self.environment.process_exit_code = EXIT_NOTHING_MEASURED
            gevent.spawn(runner.quit)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        """Headless or not: a run with requests and not one success measured nothing."""
        total = environment.stats.total
        if environment.web_ui is not None or environment.process_exit_code is not None:
            return
        if total.num_requests and total.num_failures == total.num_requests:
            logger.error("no successful request in the run: all %d failed (%s)", total.num_requests,
                         first_error(environment))
            environment.process_exit_code = EXIT_NOTHING_MEASURED
