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
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import psutil
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from core.exit_codes import EXIT_SAMPLES_LOST
from core.files import write_json
from core.run_record import LOAD_BOUNDS_FILE, RunRecord, ramp_warmup_s
from core.sampler import TreeSampler, stats_connected
from core.schema import LOCUST_STATS_JSON
from loadtests.env_state import set_harness, set_settings
from loadtests.fail_fast import FailFast
from loadtests.fanout import pairs_of, primary_of
from loadtests.instances import ROSTER, USER_TARGETS
from loadtests.options import ENV_RESULTS_DIR, LoadSettings, add_arguments, check_host
from loadtests.pacing import LEDGER
from loadtests.plain_run import owns_run_record, plain_run_record
from loadtests.recorder import Recorder, ResultsFolderError, check_results_folder, shard_tag, worker_id
from loadtests.relay_receiver import ShardReceiver
from loadtests.relay_sender import ShardSender
from loadtests.relay_wire import ACK_MESSAGE, SHARD_MESSAGE
from loadtests.watchdog import Watchdog, deadline_seconds, run_time_from_argv

__all__ = ["add_arguments", "install", "on_init", "Harness"]

logger = logging.getLogger(__name__)


ENV_HEARTBEAT_LIVENESS = "LOCUST_HEARTBEAT_LIVENESS"

# Custom Locust messages between master and workers.
_STOP = "loadtests_stop"
_STOPPED = "loadtests_stopped"
#: seconds a stopping worker waits for the master to acknowledge its last shards (--samples-via-master)
RELAY_DRAIN_S = 10.0


class Harness:
    """The per-process pieces of a run: recorder (optional) and watchdog."""

    def __init__(self, environment: Environment, settings: LoadSettings) -> None:
        self.environment = environment
        self.settings = settings
        #: the target given on the command line (--host), for a test started with an empty host field
        self.started_host = environment.host
        self.recorder: Recorder | None = None
        self._flusher: gevent.Greenlet | None = None
        self._pairs_written_to: Path | None = None
        is_master = isinstance(environment.runner, MasterRunner)
        if settings.results_dir and not is_master:
            self.recorder = Recorder(settings.results_dir)
            environment.events.request.add_listener(self.recorder.on_request)
            logger.info("recording samples to %s as %s", settings.results_dir, self.recorder.tag)
        elif settings.samples_via_master and isinstance(environment.runner, WorkerRunner):
            self._record_for_the_master()
        elif not settings.results_dir and not is_master:
            logger.warning("no --results-dir (or $%s): samples are not recorded%s", ENV_RESULTS_DIR,
                           " unless the master asks for --samples-via-master"
                           if isinstance(environment.runner, WorkerRunner) else "")
        self.watchdog = Watchdog([self.flush] if self.recorder else [])
        self._stopped_workers: set[str] = set()
        runner = environment.runner
        #: --samples-via-master: this worker's sender, or the master's receiver
        self.sender: ShardSender | None = None
        self.receiver: ShardReceiver | None = None
        if isinstance(runner, WorkerRunner) and self.recorder is not None:
            self._attach_sender(runner)
        elif isinstance(runner, MasterRunner):
            master = runner
            self.receiver = ShardReceiver(
                lambda: self.settings.results_dir,
                lambda node, data: master.send_message(ACK_MESSAGE, data, client_id=node),
                registered=lambda node: node in master.clients)
            runner.register_message(SHARD_MESSAGE, self.receiver.on_message)
            _sender_is_the_connection(master)
            if settings.samples_via_master and not settings.results_dir:
                logger.warning("--samples-via-master without --results-dir: the master refuses the workers' "
                               "samples, and each worker keeps them on its own disk")
        #: workers that went missing mid-run (master only): id -> seconds into the load
        self.lost_workers: dict[str, float] = {}
        self._worker_watch: gevent.Greenlet | None = None
        if isinstance(runner, MasterRunner):
            runner.register_message(_STOPPED, self._on_worker_stopped)
            environment.events.test_stopping.add_listener(self._stop_workers_first)
            environment.events.test_start.add_listener(self._watch_workers)
            environment.events.test_stop.add_listener(self._unwatch_workers)
            environment.events.test_stop.add_listener(self._finish_relay)
        elif isinstance(runner, WorkerRunner):
            runner.register_message(_STOP, self._on_stop_request, concurrent=True)
        self._load_bounds: dict[str, Any] = {}
        events = environment.events
        if not isinstance(runner, WorkerRunner):
            events.test_start.add_listener(lambda **_: self._load_bounds.update(load_started_ns=time.time_ns()))
            events.test_stopping.add_listener(lambda **_: self._load_bounds.update(load_ended_ns=time.time_ns()))
            events.test_stop.add_listener(lambda **_: self.write_load_bounds())
        #: this run's own run.json (a plain run with --results-dir that no runner set up)
        self.run_record: RunRecord | None = None
        #: the --target-pid sampler of a plain run (master or the only process)
        self.server_sampler: TreeSampler | None = None
        #: stops a run whose every connect fails (master or the only process)
        self.fail_fast = None if isinstance(runner, WorkerRunner) else FailFast(environment, settings.fail_fast_after)
        if not isinstance(runner, WorkerRunner):
            events.test_start.add_listener(self._start_run_record)
            events.test_start.add_listener(self._start_server_sampler)
            events.test_stop.add_listener(self._stop_server_sampler)
            events.test_stop.add_listener(self._finish_run_record)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        events.quit.add_listener(self.on_quit)

    def write_load_bounds(self) -> None:
        """Write ``load.json`` (atomically) into the results folder, if there is one."""
        if not self.settings.results_dir or "load_started_ns" not in self._load_bounds:
            return
        path = Path(self.settings.results_dir) / LOAD_BOUNDS_FILE
        if self.lost_workers:
            self._load_bounds["workers_lost"] = sorted(self.lost_workers)
        try:
            write_json(path, self._load_bounds, indent=None)
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
        record.load_ended_ns = self._load_bounds.get("load_ended_ns") or now
        if record.load_started_ns is not None and record.load_started_ns >= record.load_ended_ns:
            record.load_ended_ns = record.load_started_ns + 1
        if record.load_started_ns is not None:
            span_s = (record.load_ended_ns - record.load_started_ns) / 1e9
            record.load.warmup_s = ramp_warmup_s(record.load.users, record.load.spawn_rate, span_s)
        if self.lost_workers:
            record.status, record.reason = "failed", f"{len(self.lost_workers)} Locust worker(s) lost during the run"
            record.extra["locust_workers_lost"] = sorted(self.lost_workers)
        self._write_run_record()

    def _write_run_record(self) -> None:
        assert self.run_record is not None and self.settings.results_dir
        try:
            self.run_record.write(Path(self.settings.results_dir))
        except OSError as exc:
            logger.warning("cannot write %s: %s", Path(self.settings.results_dir) / "run.json", exc)

    def flush(self) -> None:
        if self.recorder is not None:
            self.recorder.flush(timeout=5.0)
            self.write_fanout_pairs()

    def _record_for_the_master(self) -> None:
        """A worker with no --results-dir whose samples go to the master: a temporary folder keeps
        what cannot be sent."""
        spill = tempfile.mkdtemp(prefix="loadtests-samples-")
        self.recorder = Recorder(spill)
        self.environment.events.request.add_listener(self.recorder.on_request)
        logger.info("sending samples to the master; shards it cannot take go to %s", spill)

    def _attach_sender(self, runner: WorkerRunner) -> None:
        assert self.recorder is not None
        self.sender = ShardSender(self.recorder, runner.send_message, flush_s=self.settings.flush_interval)
        self.sender.enabled = self.settings.samples_via_master
        self.recorder.relay = self.sender
        runner.register_message(ACK_MESSAGE, self.sender.on_ack)

    def _relaying(self) -> ShardSender | None:
        """This worker's sender while samples go via the master."""
        return self.sender if self.sender is not None and self.sender.enabled else None

    def _finish_relay(self, **_: Any) -> None:
        """Master, test stop: tell the receiver which workers were lost, and when."""
        if self.receiver is None:
            return
        started = self._load_bounds.get("load_started_ns")
        self.receiver.finish({node: int(started + seconds * 1e9) if started and seconds >= 0 else -1
                              for node, seconds in self.lost_workers.items()})

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
        if sender := self._relaying():
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
        options = self.environment.parsed_options
        run_time = getattr(options, "run_time", None)
        if not run_time and isinstance(self.environment.runner, WorkerRunner):
            run_time = run_time_from_argv()  # --processes workers lose -t
        return deadline_seconds(
            run_time=run_time,
            stop_timeout=self.environment.stop_timeout,
            grace=self.settings.watchdog_grace,
            run_deadline=self.settings.run_deadline,
        )

    # A headless master quits by telling workers to quit and giving them 0.5 s
    # for a last stats report, while workers may take --stop-timeout (plus
    # fan-out drains) to stop: what they count meanwhile never reaches the
    # master's totals. So the master first asks every worker to stop and
    # report, and waits for them, before Locust's own quit runs.

    def _stop_workers_first(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        assert isinstance(runner, MasterRunner)  # registered on the master only
        workers = {client.id for client in runner.clients.all} - self._missing(runner)
        if not workers:
            return
        self._stopped_workers = set()
        runner.send_message(_STOP)
        limit = (environment.stop_timeout or 0) + self.settings.drain_timeout + 15
        with gevent.Timeout(limit, False):
            while not workers <= self._stopped_workers:
                workers -= self._missing(runner)  # a worker lost meanwhile will never answer
                gevent.sleep(0.05)
        if missing := workers - self._stopped_workers:
            logger.warning("%d worker(s) did not report their final stats within %.0f s", len(missing), limit)

    @staticmethod
    def _missing(runner: MasterRunner) -> set[str]:
        return {client.id for client in runner.clients.missing}

    # A worker process that dies (killed, out of memory) goes "missing" after
    # Locust's heartbeat timeout; the run goes on with the others. Its samples
    # up to its last flush are kept; the loss is logged and written to
    # load.json ("workers_lost"), so the runner can fail the cell.

    def _watch_workers(self, environment: Environment, **_: Any) -> None:
        self.lost_workers = {}
        if self._worker_watch is None:
            self._worker_watch = gevent.spawn(self._note_lost_workers, environment.runner, time.monotonic())

    def _note_lost_workers(self, runner: MasterRunner, started: float) -> None:
        while True:
            for worker in sorted(self._missing(runner) - set(self.lost_workers)):
                self.lost_workers[worker] = round(time.monotonic() - started, 1)
                logger.warning("Locust worker %s lost %.1f s into the load (no heartbeat): its users stopped, "
                               "the samples it flushed are kept", worker, self.lost_workers[worker])
            gevent.sleep(0.5)

    def _unwatch_workers(self, **_: Any) -> None:
        if self._worker_watch is not None:
            self._worker_watch.kill(block=False)
            self._worker_watch = None
        # One last look: the test may stop before the watcher's next round.
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)  # registered on the master only
        for worker in self._missing(runner) - set(self.lost_workers):
            self.lost_workers[worker] = -1.0

    def _on_worker_stopped(self, msg: Any, **_: Any) -> None:
        self._stopped_workers.add(msg.node_id)

    def _on_stop_request(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        assert isinstance(runner, WorkerRunner)  # registered on workers only
        runner.stop()  # users stop (on_stop runs), test_stop fires here
        if sender := self._relaying():
            sender.drain(RELAY_DRAIN_S)  # the last shards are in the master's folder before it ends
        runner._send_stats()  # the final report, before the master goes away
        runner.send_message(_STOPPED)

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        # An empty host field in the web UI means the target Locust was started with
        # (Locust's form overwrites parsed_options.host too: the value kept at init counts).
        if not environment.host and self.started_host:
            environment.host = self.started_host
        try:
            self.settings = LoadSettings.from_options(environment.parsed_options)
            if not isinstance(environment.runner, WorkerRunner):  # workers load what the master chose
                check_host(environment.host, self.settings)
            set_settings(environment, self.settings)  # what the users read
            runner = environment.runner
            if self.settings.samples_via_master and self.recorder is None and isinstance(runner, WorkerRunner):
                self._record_for_the_master()  # the master asks for samples; this worker had no folder
                self.watchdog.on_expire.append(self.flush)
                self._attach_sender(runner)
            if self.sender is not None:  # the master's --samples-via-master reaches workers with each start
                self.sender.enabled = self.settings.samples_via_master
                self.sender.flush_s = self.settings.flush_interval
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
        if sender := self._relaying():
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
        if sender := self._relaying():
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
        if sender := self._relaying():
            sender.add_file(final.name, document)
        try:
            write_json(final, document, indent=1)
        except OSError as exc:
            logger.warning("cannot write %s: %s", final, exc)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        self.flush()
        if self.sender is not None:
            self.sender.abandon()  # what the master never acknowledged stays on this disk
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
        if self.sender is not None:
            self.sender.abandon()
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
        if (self.recorder is None or runner is None or isinstance(runner, WorkerRunner)
                or getattr(options, "json_file", None) or not getattr(options, "headless", False)):
            return
        try:
            write_json(self.recorder.results_dir / LOCUST_STATS_JSON, runner.stats.serialize_stats(), indent=1)
        except OSError as exc:
            logger.warning("cannot write %s: %s", LOCUST_STATS_JSON, exc)


def _sender_is_the_connection(master: MasterRunner) -> None:
    """Name a samples message's sender by the connection it came on, not by the id the message claims.

    Locust hands a custom message's listener only the message, whose
    ``node_id`` its sender wrote; the connection's id is known one call up.
    """
    handle = master.handle_message

    def handle_message(client_id: str, msg: Any) -> None:
        if getattr(msg, "type", None) == SHARD_MESSAGE:
            msg.node_id = client_id
        handle(client_id, msg)

    master.handle_message = handle_message  # type: ignore[method-assign]


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
