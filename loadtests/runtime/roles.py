"""What each kind of Locust process adds to the harness: a standalone process, a master, a worker.

:class:`loadtests.runtime.harness.Harness` holds what every process does
(the recorder, the watchdog, flushing, the fan-out pairs); it asks its role,
chosen once from the runner, for the rest:

- :class:`LocalRole`: one process that generates the load and records it;
- :class:`MasterRole`: records nothing itself, takes the workers' samples
  when they come through it (``--samples-via-master``), asks every worker to
  stop and report before Locust's own quit, and notes workers that go
  missing mid-run;
- :class:`WorkerRole`: records its users' samples, or sends them to the
  master, and stops when the master asks.
"""
from __future__ import annotations

import logging
import tempfile
import time
from typing import Any, Protocol

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.runtime.options import ENV_RESULTS_DIR, LoadSettings
from loadtests.runtime.recorder import Recorder
from loadtests.runtime.relay_receiver import ShardReceiver
from loadtests.runtime.relay_sender import ShardSender
from loadtests.runtime.relay_wire import ACK_MESSAGE, SHARD_MESSAGE
from loadtests.runtime.watchdog import run_time_from_argv

logger = logging.getLogger(__name__)

# Custom Locust messages between master and workers.
STOP_MESSAGE = "loadtests_stop"
STOPPED_MESSAGE = "loadtests_stopped"
#: seconds a stopping worker waits for the master to acknowledge its last shards (--samples-via-master)
RELAY_DRAIN_S = 10.0


class Harness(Protocol):
    """What a role (and the run owner) reads of the harness it belongs to (:mod:`loadtests.runtime.harness`)."""

    environment: Environment
    settings: LoadSettings
    recorder: Recorder | None
    role: LocalRole

    def start_recording(self, recorder: Recorder) -> Recorder: ...

    def load_started_ns(self) -> int | None: ...


class LocalRole:
    """A standalone Locust process: it generates the load, records its samples and owns the run."""

    #: the master or the only process writes the run's own files (run.json, load.json) and checks the target
    owns_the_run = True

    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    def first_recorder(self, settings: LoadSettings) -> Recorder | None:
        """The recorder this process starts with, if it records."""
        if settings.results_dir:
            return Recorder(settings.results_dir)
        logger.warning("no --results-dir (or $%s): samples are not recorded", ENV_RESULTS_DIR)
        return None

    def attach(self, environment: Environment) -> None:
        """Register this role's messages and listeners (before the harness's own)."""

    def on_test_start(self, settings: LoadSettings) -> None:
        """A test starts with these settings (already checked)."""

    def run_time(self) -> Any:
        """The ``--run-time`` this process's watchdog deadline counts from."""
        return getattr(self.harness.environment.parsed_options, "run_time", None)

    @property
    def sender(self) -> ShardSender | None:
        """The worker's sender of samples to the master (``--samples-via-master``), if any."""
        return None

    def relaying(self) -> ShardSender | None:
        """The sender while samples go via the master."""
        sender = self.sender
        return sender if sender is not None and sender.enabled else None

    @property
    def lost_workers(self) -> dict[str, float]:
        """Workers that went missing mid-run: id -> seconds into the load (-1: found at the end)."""
        return {}

    def quitting(self) -> None:
        """The process quits: what it still holds for another process is kept here."""


class WorkerRole(LocalRole):
    """A worker: its users' samples go to its own folder, or through the master; it stops when asked."""

    owns_the_run = False

    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self._sender: ShardSender | None = None

    @property
    def runner(self) -> WorkerRunner:
        runner = self.harness.environment.runner
        assert isinstance(runner, WorkerRunner)
        return runner

    def first_recorder(self, settings: LoadSettings) -> Recorder | None:
        if settings.results_dir:
            return Recorder(settings.results_dir)
        if settings.samples_via_master:
            return self._spill_recorder()
        logger.warning("no --results-dir (or $%s): samples are not recorded unless the master asks for "
                       "--samples-via-master", ENV_RESULTS_DIR)
        return None

    def _spill_recorder(self) -> Recorder:
        """A worker with no --results-dir whose samples go to the master: a temporary folder keeps what
        cannot be sent."""
        spill = tempfile.mkdtemp(prefix="loadtests-samples-")
        logger.info("sending samples to the master; shards it cannot take go to %s", spill)
        return Recorder(spill)

    def attach(self, environment: Environment) -> None:
        if self.harness.recorder is not None:
            self._attach_sender(self.harness.recorder)
        self.runner.register_message(STOP_MESSAGE, self._on_stop_request, concurrent=True)

    def _attach_sender(self, recorder: Recorder) -> None:
        settings = self.harness.settings
        self._sender = ShardSender(recorder, self.runner.send_message, flush_s=settings.flush_interval)
        self._sender.enabled = settings.samples_via_master
        recorder.relay = self._sender
        self.runner.register_message(ACK_MESSAGE, self._sender.on_ack)

    def on_test_start(self, settings: LoadSettings) -> None:
        if settings.samples_via_master and self.harness.recorder is None:
            # The master asks for samples; this worker had no folder.
            self._attach_sender(self.harness.start_recording(self._spill_recorder()))
        if self._sender is not None:  # the master's --samples-via-master reaches workers with each start
            self._sender.enabled = settings.samples_via_master
            self._sender.flush_s = settings.flush_interval

    def run_time(self) -> Any:
        return super().run_time() or run_time_from_argv()  # --processes workers lose -t

    @property
    def sender(self) -> ShardSender | None:
        return self._sender

    def _on_stop_request(self, environment: Environment, **_: Any) -> None:
        self.runner.stop()  # users stop (on_stop runs), test_stop fires here
        if sender := self.relaying():
            sender.drain(RELAY_DRAIN_S)  # the last shards are in the master's folder before it ends
        self.runner._send_stats()  # the final report, before the master goes away
        self.runner.send_message(STOPPED_MESSAGE)

    def quitting(self) -> None:
        if self._sender is not None:
            self._sender.abandon()  # what the master never acknowledged stays on this disk


class MasterRole(LocalRole):
    """The master: no samples of its own, the workers' when they come through it, and their stopping."""

    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self.receiver: ShardReceiver | None = None
        self._lost_workers: dict[str, float] = {}
        self._stopped_workers: set[str] = set()
        self._worker_watch: gevent.Greenlet | None = None

    @property
    def runner(self) -> MasterRunner:
        runner = self.harness.environment.runner
        assert isinstance(runner, MasterRunner)
        return runner

    def first_recorder(self, settings: LoadSettings) -> Recorder | None:
        if settings.samples_via_master and not settings.results_dir:
            logger.warning("--samples-via-master without --results-dir: the master refuses the workers' "
                           "samples, and each worker keeps them on its own disk")
        return None

    def attach(self, environment: Environment) -> None:
        master = self.runner
        self.receiver = ShardReceiver(
            lambda: self.harness.settings.results_dir,
            lambda node, data: master.send_message(ACK_MESSAGE, data, client_id=node),
            registered=lambda node: node in master.clients)
        master.register_message(SHARD_MESSAGE, self.receiver.on_message)
        _sender_is_the_connection(master)
        master.register_message(STOPPED_MESSAGE, self._on_worker_stopped)
        events = environment.events
        events.test_stopping.add_listener(self._stop_workers_first)
        events.test_start.add_listener(self._watch_workers)
        events.test_stop.add_listener(self._unwatch_workers)
        events.test_stop.add_listener(self._finish_relay)

    @property
    def lost_workers(self) -> dict[str, float]:
        return self._lost_workers

    # A headless master quits by telling workers to quit and giving them 0.5 s
    # for a last stats report, while workers may take --stop-timeout (plus
    # fan-out drains) to stop: what they count meanwhile never reaches the
    # master's totals. So the master first asks every worker to stop and
    # report, and waits for them, before Locust's own quit runs.

    def _stop_workers_first(self, environment: Environment, **_: Any) -> None:
        runner = self.runner
        workers = {client.id for client in runner.clients.all} - self._missing()
        if not workers:
            return
        self._stopped_workers = set()
        runner.send_message(STOP_MESSAGE)
        limit = (environment.stop_timeout or 0) + self.harness.settings.drain_timeout + 15
        with gevent.Timeout(limit, False):
            while not workers <= self._stopped_workers:
                workers -= self._missing()  # a worker lost meanwhile will never answer
                gevent.sleep(0.05)
        if missing := workers - self._stopped_workers:
            logger.warning("%d worker(s) did not report their final stats within %.0f s", len(missing), limit)

    def _missing(self) -> set[str]:
        return {client.id for client in self.runner.clients.missing}

    def _on_worker_stopped(self, msg: Any, **_: Any) -> None:
        self._stopped_workers.add(msg.node_id)

    # A worker process that dies (killed, out of memory) goes "missing" after
    # Locust's heartbeat timeout; the run goes on with the others. Its samples
    # up to its last flush are kept; the loss is logged and written to
    # load.json ("workers_lost"), so the runner can fail the cell.

    def _watch_workers(self, **_: Any) -> None:
        self._lost_workers.clear()
        if self._worker_watch is None:
            self._worker_watch = gevent.spawn(self._note_lost_workers, time.monotonic())

    def _note_lost_workers(self, started: float) -> None:
        while True:
            for worker in sorted(self._missing() - set(self._lost_workers)):
                self._lost_workers[worker] = round(time.monotonic() - started, 1)
                logger.warning("Locust worker %s lost %.1f s into the load (no heartbeat): its users stopped, "
                               "the samples it flushed are kept", worker, self._lost_workers[worker])
            gevent.sleep(0.5)

    def _unwatch_workers(self, **_: Any) -> None:
        if self._worker_watch is not None:
            self._worker_watch.kill(block=False)
            self._worker_watch = None
        # One last look: the test may stop before the watcher's next round.
        for worker in self._missing() - set(self._lost_workers):
            self._lost_workers[worker] = -1.0

    def _finish_relay(self, **_: Any) -> None:
        """Test stop: tell the receiver which workers were lost, and when."""
        if self.receiver is None:
            return
        started = self.harness.load_started_ns()
        self.receiver.finish({node: int(started + seconds * 1e9) if started and seconds >= 0 else -1
                              for node, seconds in self._lost_workers.items()})


def role_of(harness: Harness) -> LocalRole:
    """The role of the process ``harness`` runs in, from its Locust runner."""
    runner = harness.environment.runner
    if isinstance(runner, MasterRunner):
        return MasterRole(harness)
    if isinstance(runner, WorkerRunner):
        return WorkerRole(harness)
    return LocalRole(harness)


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
