"""Wires the recorder, the watchdog and option checks into a Locust run.

``locustfile.py`` registers :func:`add_arguments` and
:func:`on_init`; everything else hangs off the environment's events:

- ``init``: check the options, refuse a target outside loopback unless
  ``--i-own-this-host``, create the recorder (when a results folder is set)
  and the watchdog, in every process (master, workers, standalone).
- ``test_start``: check the options and the target again (the web UI may
  have changed them), reset the fan-out ledger and the room roster, start
  the flush timer, arm the watchdog.
- ``test_stop`` / ``quitting`` / ``quit``: flush; report fan-out losses;
  with several instances, write which instance each user loaded.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import gevent
import psutil
from locust.env import Environment
from locust.runners import MasterRunner

from loadtests.runtime.env_state import set_harness, set_settings
from loadtests.runtime.fanout import LEDGER, ROSTER, pairs_of, primary_of
from loadtests.runtime.instances import USER_TARGETS
from loadtests.runtime.options import LoadSettings, add_arguments, check_host
from loadtests.runtime.recorder import Recorder, ResultsFolderError, check_results_folder, shard_tag, worker_id
from loadtests.runtime.relay_sender import ShardSender
from loadtests.runtime.roles import role_of
from loadtests.runtime.run_owner import RunOwner
from loadtests.runtime.watchdog import Watchdog, deadline_seconds
from sioharness.core.exit_codes import EXIT_SAMPLES_LOST
from sioharness.core.files import write_json
from sioharness.core.schema import LOCUST_STATS_JSON

__all__ = ["add_arguments", "install", "on_init", "Harness"]

logger = logging.getLogger(__name__)


ENV_HEARTBEAT_LIVENESS = "LOCUST_HEARTBEAT_LIVENESS"


class Harness:
    """What every Locust process of a run does: record (when it records), flush, guard its deadline.

    Its :attr:`role` (:mod:`loadtests.runtime.roles`) adds what a master or a
    worker does besides; the master or the only process also keeps the
    run's own files (:attr:`run_owner`).
    """

    def __init__(self, environment: Environment, settings: LoadSettings) -> None:
        self.environment = environment
        self.settings = settings
        #: the target given on the command line (--host), for a test started with an empty host field
        self.started_host = environment.host
        self.role = role_of(self)
        self.recorder: Recorder | None = None
        self.watchdog = Watchdog([])
        self._flusher: gevent.Greenlet | None = None
        self._pairs_written_to: Path | None = None
        if (recorder := self.role.first_recorder(settings)) is not None:
            self.start_recording(recorder)
            logger.info("recording samples to %s as %s", recorder.results_dir, recorder.tag)
        self.role.attach(environment)
        self.run_owner = RunOwner(self) if self.role.owns_the_run else None
        if self.run_owner is not None:
            self.run_owner.attach(environment)
        events = environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        events.quit.add_listener(self.on_quit)

    def start_recording(self, recorder: Recorder) -> Recorder:
        """Record this process's samples with ``recorder`` from now on, flushed when the watchdog fires."""
        self.recorder = recorder
        self.environment.events.request.add_listener(recorder.on_request)
        if self.flush not in self.watchdog.on_expire:
            self.watchdog.on_expire.append(self.flush)
        return recorder

    @property
    def sender(self) -> ShardSender | None:
        """A worker's sender of samples to the master (``--samples-via-master``), if any."""
        return self.role.sender

    def load_started_ns(self) -> int | None:
        return self.run_owner.load_bounds.get("load_started_ns") if self.run_owner is not None else None

    def flush(self) -> None:
        if self.recorder is not None:
            self.recorder.flush(timeout=5.0)
            self.write_fanout_pairs()

    def write_fanout_pairs(self) -> None:
        """``fanout-<host>-<pid>.json``: the fan-out and main figure the user classes declared, for the reports."""
        pairs = pairs_of(self.environment.user_classes)
        primary = primary_of(self.environment.user_classes)
        if self.recorder is None or not (pairs or primary) or self._pairs_written_to == self.recorder.results_dir:
            return
        path = self.recorder.results_dir / f"fanout-{shard_tag()}.json"
        document: dict[str, Any] = {"worker": worker_id(), "pairs": pairs}
        if primary is not None:
            document["primary"] = primary
        if sender := self.role.relaying():
            sender.add_file(path.name, document)
        try:
            write_json(path, document, indent=1)
            self._pairs_written_to = self.recorder.results_dir
        except OSError as exc:
            logger.warning("cannot write %s: %s", path, exc)

    def _flush_periodically(self) -> None:
        while True:
            gevent.sleep(self.settings.flush_interval)
            try:
                if self.recorder is not None:
                    self.recorder.flush_in_thread()
            except Exception:
                logger.exception("recorder: periodic flush failed")

    def deadline(self) -> float | None:
        """Seconds from now until the watchdog ends the process (None: no deadline)."""
        return deadline_seconds(
            run_time=self.role.run_time(),
            stop_timeout=self.environment.stop_timeout,
            grace=self.settings.watchdog_grace,
            run_deadline=self.settings.run_deadline,
        )

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        # An empty host field in the web UI means the target Locust was started with
        # (Locust's form overwrites parsed_options.host too: the value kept at init counts).
        if not environment.host and self.started_host:
            environment.host = self.started_host
        try:
            self.settings = LoadSettings.from_options(environment.parsed_options)
            if self.role.owns_the_run:  # workers load what the master chose
                check_host(environment.host, self.settings)
            set_settings(environment, self.settings)  # what the users read
            self.role.on_test_start(self.settings)
        except ValueError as exc:
            logger.error("bad load test option: %s; stopping", exc)
            if environment.runner is not None:
                # The web UI lives on (the user fixes the form); a headless run ends.
                gevent.spawn(environment.runner.stop if environment.web_ui is not None else environment.runner.quit)
            return
        LEDGER.reset()
        ROSTER.reset()
        if self.settings.transport != "websocket":
            lean = [cls.__name__ for cls in environment.user_classes if cls.__name__ != "ReferenceUser"]
            if lean:
                logger.warning("--transport %s applies to ReferenceUser only; %s speak websocket",
                               self.settings.transport, ", ".join(lean))
        if sender := self.role.relaying():
            sender.begin()
        if self.recorder is not None and self._flusher is None:
            self._flusher = gevent.spawn(self._flush_periodically)
        seconds = self.deadline()
        if seconds is not None:
            self.watchdog.arm(seconds)
            logger.info("watchdog: this process ends at the latest %.1f s from now", seconds)

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        if not getattr(environment.parsed_options, "headless", False):
            # A web UI session (master and its workers) lives on after a test: the
            # watchdog guards one test, and the next start arms it again.
            self.watchdog.disarm()
        self.flush()
        self.write_user_targets()
        if sender := self.role.relaying():
            sender.finish()
        expected, delivered = LEDGER.totals()
        if expected or delivered:
            lost = expected - delivered
            report = logger.warning if lost else logger.info
            report("fan-out deliveries: %d promised by acks, %d received, %d lost", expected, delivered, lost)

    def write_user_targets(self) -> None:
        """``targets-<host>-<pid>.json``: the instance each user of this process loaded.

        Written only with several instances; join it to the samples on
        (``worker``, ``user``). Written under a temporary name, then renamed.
        """

        if self.recorder is None or len(self.settings.urls) < 2 or not USER_TARGETS:
            return
        final = self.recorder.results_dir / f"targets-{shard_tag()}.json"
        document = {"worker": worker_id(), "urls": list(self.settings.urls),
                    "users": {str(user): url for user, url in sorted(USER_TARGETS.items())}}
        if sender := self.role.relaying():
            sender.add_file(final.name, document)
        try:
            write_json(final, document, indent=1)
        except OSError as exc:
            logger.warning("cannot write %s: %s", final, exc)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        self.flush()
        self.role.quitting()
        recorder = self.recorder
        if recorder is not None and recorder.lost:
            logger.error("recorder: %d of %d samples could not be written to %s (%s); exit status %d",
                         recorder.lost, recorder.recorded, recorder.results_dir,
                         recorder.errors[-1] if recorder.errors else "no error kept", EXIT_SAMPLES_LOST)
            environment.process_exit_code = EXIT_SAMPLES_LOST

    def on_quit(self, **_: Any) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None
        self.flush()
        self.role.quitting()
        self.write_final_locust_stats()

    def write_final_locust_stats(self) -> None:
        """Locust's final counts beside the samples, when no --json-file asked Locust for them.

        Its --csv stats are rewritten once a second and miss what users record
        while they stop (calls in flight, drained pushes, disconnects): the
        report would hold the recorder against stale counts.
        """
        runner = self.environment.runner
        options = self.environment.parsed_options
        # A web UI session's counts span all its tests, while each test has a folder of its own.
        if (self.recorder is None or runner is None or not self.role.owns_the_run
                or getattr(options, "json_file", None) or not getattr(options, "headless", False)):
            return
        try:
            write_json(self.recorder.results_dir / LOCUST_STATS_JSON, runner.stats.serialize_stats(), indent=1)
        except OSError as exc:
            logger.warning("cannot write %s: %s", LOCUST_STATS_JSON, exc)


_installed = False


def check_locust_counts(options: Any) -> None:
    """ValueError for Locust's own numbers it would take and fail on later with a traceback (``-u -5``)."""
    users = getattr(options, "num_users", None)
    if users is not None and users < 0:
        raise ValueError(f"-u/--users must be >= 0, got {users}")
    rate = getattr(options, "spawn_rate", None)
    if rate is not None and not rate > 0:
        raise ValueError(f"-r/--spawn-rate must be > 0, got {rate}")


def install() -> None:
    """Register the harness with Locust (its options and its ``init`` hook), once per process.

    :mod:`loadtests.socketio_user` calls it on import, so a locustfile that
    imports the public API gets the recorder, the watchdog and the option
    checks without a line of set-up.
    """
    global _installed
    if _installed:
        return
    import locust.runners
    from locust import events

    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(on_init)
    # Missed heartbeats a worker is allowed before the master drops it (Locust's
    # default is 3; the containers set 10 for a busy two-core host).
    if os.environ.get(ENV_HEARTBEAT_LIVENESS):
        locust.runners.HEARTBEAT_LIVENESS = int(os.environ[ENV_HEARTBEAT_LIVENESS])
    _installed = True


def on_init(environment: Environment, **_: Any) -> None:
    """Locust ``init`` listener: check the options and set up the harness."""
    try:
        settings = LoadSettings.from_options(environment.parsed_options)
        check_host(environment.host, settings)
        check_locust_counts(environment.parsed_options)
    except ValueError as exc:
        sys.stderr.write(f"locust: error: {exc}\n")
        sys.exit(2)
    if settings.target_pid and not psutil.pid_exists(settings.target_pid):
        sys.stderr.write(f"locust: error: --target-pid {settings.target_pid}: no such process on this machine\n")
        sys.exit(2)
    if settings.results_dir and (settings.samples_via_master or not isinstance(environment.runner, MasterRunner)):
        try:
            check_results_folder(Path(settings.results_dir))
        except ResultsFolderError as exc:
            sys.stderr.write(f"locust: error: {exc}\n")
            sys.exit(2)
    headless = environment.parsed_options is not None and getattr(environment.parsed_options, "headless", False)
    if headless and not environment.host and not settings.urls:
        sys.stderr.write("locust: error: no target; pass --host http://127.0.0.1:PORT\n")
        sys.exit(2)
    set_settings(environment, settings)
    set_harness(environment, Harness(environment, settings))
    # gevent's loop caches "now" and has not run since start-up; the imports
    # and the recorder's warm-up above leave it seconds stale, and Locust
    # schedules --run-time from it next, so a 3 s run would stop after 1 s.
    gevent.get_hub().loop.update_now()
