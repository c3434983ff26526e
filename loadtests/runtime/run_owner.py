"""What the process that owns a run (the master, or the only process) writes and watches.

- ``load.json``: when the load started and stopped, and the workers lost;
- a plain run's own ``run.json`` (a ``--results-dir`` no runner set up);
- the ``--target-pid`` sampler of the server's CPU and memory;
- fail-fast: a run whose every connect fails is stopped.

Workers do none of this: the master speaks for the run.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from locust.env import Environment

from loadtests.runtime.fail_fast import FailFast
from loadtests.runtime.options import LoadSettings
from loadtests.runtime.plain_run import owns_run_record, plain_run_record
from loadtests.runtime.roles import Harness
from sioharness.core.files import write_json
from sioharness.core.run_record import LOAD_BOUNDS_FILE, RunRecord, ramp_warmup_s
from sioharness.core.sampler import TreeSampler, stats_connected

logger = logging.getLogger(__name__)


class RunOwner:
    """The run's own files and watchers, kept by the master or the only process."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.load_bounds: dict[str, Any] = {}
        #: this run's own run.json (a plain run with --results-dir that no runner set up)
        self.run_record: RunRecord | None = None
        #: the --target-pid sampler of a plain run
        self.server_sampler: TreeSampler | None = None
        #: stops a run whose every connect fails
        self.fail_fast = FailFast(harness.environment, harness.settings.fail_fast_after)

    def attach(self, environment: Environment) -> None:
        """Register the listeners, after the role's (a master's lost workers are known before load.json)."""
        events = environment.events
        events.test_start.add_listener(lambda **_: self.load_bounds.update(load_started_ns=time.time_ns()))
        events.test_stopping.add_listener(lambda **_: self.load_bounds.update(load_ended_ns=time.time_ns()))
        events.test_stop.add_listener(lambda **_: self.write_load_bounds())
        events.test_start.add_listener(self._start_run_record)
        events.test_start.add_listener(self._start_server_sampler)
        events.test_stop.add_listener(self._stop_server_sampler)
        events.test_stop.add_listener(self._finish_run_record)

    @property
    def settings(self) -> LoadSettings:
        return self.harness.settings

    def write_load_bounds(self) -> None:
        """Write ``load.json`` (atomically) into the results folder, if there is one."""
        if not self.settings.results_dir or "load_started_ns" not in self.load_bounds:
            return
        path = Path(self.settings.results_dir) / LOAD_BOUNDS_FILE
        if lost := self.harness.role.lost_workers:
            self.load_bounds["workers_lost"] = sorted(lost)
        try:
            write_json(path, self.load_bounds, indent=None)
        except OSError as exc:
            logger.warning("cannot write %s: %s", path, exc)

    def _start_server_sampler(self, environment: Environment, **_: Any) -> None:
        pid, folder = self.settings.target_pid, self.settings.results_dir
        if not pid or not folder or self.server_sampler is not None:
            return
        host = environment.host or (self.settings.urls[0] if self.settings.urls else "")
        self.server_sampler = TreeSampler(pid, Path(folder) / "server.csv",
                                          connected=stats_connected(host) if host else None).start()
        logger.info("sampling server process %d into %s", pid, Path(folder) / "server.csv")

    def _stop_server_sampler(self, **_: Any) -> None:
        if self.server_sampler is not None:
            self.server_sampler.stop()
            self.server_sampler = None

    def _start_run_record(self, environment: Environment, **_: Any) -> None:
        if not owns_run_record(self.settings.results_dir, web_ui=environment.web_ui is not None) \
                and self.run_record is None:
            return
        settings = LoadSettings.from_options(environment.parsed_options)
        self.run_record = plain_run_record(environment, settings, started_ns=time.time_ns())
        self._write_run_record()

    def _finish_run_record(self, **_: Any) -> None:
        record = self.run_record
        if record is None:
            return
        now = time.time_ns()
        record.status, record.ended_ns = "ok", now
        record.load_ended_ns = self.load_bounds.get("load_ended_ns") or now
        if record.load_started_ns is not None and record.load_started_ns >= record.load_ended_ns:
            record.load_ended_ns = record.load_started_ns + 1
        if record.load_started_ns is not None:
            span_s = (record.load_ended_ns - record.load_started_ns) / 1e9
            record.load.warmup_s = ramp_warmup_s(record.load.users, record.load.spawn_rate, span_s)
        if lost := self.harness.role.lost_workers:
            record.status, record.reason = "failed", f"{len(lost)} Locust worker(s) lost during the run"
            record.extra["locust_workers_lost"] = sorted(lost)
        self._write_run_record()

    def _write_run_record(self) -> None:
        assert self.run_record is not None and self.settings.results_dir
        try:
            self.run_record.write(Path(self.settings.results_dir))
        except OSError as exc:
            logger.warning("cannot write %s: %s", Path(self.settings.results_dir) / "run.json", exc)
