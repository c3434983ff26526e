"""Each scenario as a short headless Locust run against a real target.

Checks: the run exits 0 by its deadline, no failures, the recorder wrote one
row per request Locust counted, and the scenario's own invariants (connects
match disconnects, every promised fan-out delivery arrived, the open model
keeps its schedule).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from sioharness.core.schema import SAMPLE_SCHEMA, SHARD_GLOB
from target_app.process import start_target

REPO = Path(__file__).resolve().parent.parent
LOCUST = [sys.executable, "-m", "locust"]
RUN_TIME = 3
STOP_TIMEOUT = 5
GRACE = 10
# Startup (imports) and shutdown on a busy two-core machine, beyond the deadline.
MARGIN = 30

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator:
    log = tmp_path_factory.mktemp("scenario-target") / "target.log"
    # Pings every second (timeout 2 s): a user that stopped answering would be
    # dropped within a run and show up as a failure.
    with start_target("gevent", server="dev", log_path=log,
                      extra_args=["--ping-interval", "1", "--ping-timeout", "2"]) as t:
        yield t


@dataclass
class Run:
    returncode: int
    stats: list[dict]
    samples: pd.DataFrame
    log: str

    @property
    def locust_requests(self) -> int:
        return sum(entry["num_requests"] for entry in self.stats)

    @property
    def locust_failures(self) -> int:
        return sum(entry["num_failures"] for entry in self.stats)

    def count(self, kind: str, name: str | None = None) -> int:
        rows = self.samples[self.samples.kind == kind]
        if name is not None:
            rows = rows[rows.name == name]
        return len(rows)


def run_locust(target, tmp_path: Path, user_class: str, *args: str, users: int = 4) -> Run:
    results = tmp_path / "cell"
    argv = ["nice", "-n", "10", *LOCUST, "-f", "locustfile.py", "--headless",
            "-u", str(users), "-r", str(users), "-t", f"{RUN_TIME}s", "--stop-timeout", str(STOP_TIMEOUT),
            "--watchdog-grace", str(GRACE), "--host", target.url, "--results-dir", str(results),
            "--json-file", str(tmp_path / "stats"), "--loglevel", "INFO", *args, user_class]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=RUN_TIME + STOP_TIMEOUT + GRACE + MARGIN)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"locust {user_class} did not exit by its deadline:\n{exc.stderr}")
    stats = json.loads((tmp_path / "stats.json").read_text()) if (tmp_path / "stats.json").exists() else []
    shards = sorted(results.glob(SHARD_GLOB))
    samples = pd.concat([pd.read_parquet(p) for p in shards]) if shards else pd.DataFrame(
        columns=SAMPLE_SCHEMA.names)
    return Run(proc.returncode, stats, samples, proc.stderr)


def check_common(run: Run) -> None:
    assert run.samples.ok.all(), run.samples[~run.samples.ok].error.value_counts().to_string()
    assert run.returncode == 0, run.log[-3000:]
    assert "watchdog" not in run.log.lower().replace("watchdog: this process ends", "")
    assert run.locust_requests > 0
    assert len(run.samples) == run.locust_requests, f"one recorded sample per Locust request\n{run.log[-3000:]}"
    assert run.locust_failures == 0, run.log[-3000:]
    assert (run.samples.latency_us >= 0).all()


def check_fanout(run: Run, send: str, push: str) -> None:
    acks = run.samples[(run.samples.kind == "ack") & (run.samples.name == send)]
    pushes = run.samples[(run.samples.kind == "push") & (run.samples.name == push)]
    assert len(acks) > 0 and len(pushes) > 0
    assert acks.expected.sum() == len(pushes), "every delivery an ack promised was received"
    # Receivers time each push from the sender's t_ns: each push matches its send.
    per_send = pushes.groupby("t_ns").size()
    expected = acks.set_index("t_ns").expected
    assert per_send.reindex(expected.index, fill_value=0).equals(expected.astype(per_send.dtype))


def test_churn(target, tmp_path):
    run = run_locust(target, tmp_path, "ChurnUser")
    check_common(run)
    assert run.count("connect") == run.count("disconnect") >= 4
    assert run.count("ack", "echo") == run.count("connect")
    assert "Invalid HTTP" not in target.log_tail(200)


def test_echo_flat_out(target, tmp_path):
    run = run_locust(target, tmp_path, "EchoUser", "--payload-bytes", "100", "--namespace", "/bench")
    check_common(run)
    assert run.count("connect") == run.count("disconnect") == 4
    assert run.count("ack", "echo") > 20
    assert (run.samples[run.samples.kind == "ack"].bytes > 100).all()


def test_echo_open_model_keeps_its_schedule(target, tmp_path):
    run = run_locust(target, tmp_path, "EchoUser", "--open-model", "--emit-rate", "50", users=2)
    check_common(run)
    for _, acks in run.samples[run.samples.kind == "ack"].groupby("user"):
        gaps_ms = acks.t_ns.sort_values().diff().dropna() / 1e6
        assert len(gaps_ms) > 10
        # Intended send times are the schedule itself: 20 ms apart.
        assert gaps_ms.between(19.5, 20.5).all(), gaps_ms.describe().to_string()


def test_broadcast_fanout_loses_nothing(target, tmp_path):
    run = run_locust(target, tmp_path, "BroadcastUser", "--room-size", "4", "--emit-rate", "20", users=8)
    check_common(run)
    assert run.count("ack", "join") == 8
    check_fanout(run, "broadcast", "fanout")
    # Two rooms of four, the sender included in its own recipients (fewer
    # only while the room is still filling up).
    recipients = run.samples[run.samples.name == "broadcast"].expected
    assert recipients.max() == 4 and recipients.min() >= 1


def test_rooms_chat(target, tmp_path):
    run = run_locust(target, tmp_path, "RoomsUser", "--room-size", "3", "--emit-rate", "10", users=6)
    check_common(run)
    check_fanout(run, "room_message", "room_message")
    # Messages reach the other members only (fewer while the room fills up).
    recipients = run.samples[(run.samples.kind == "ack") & (run.samples.name == "room_message")].expected
    assert recipients.max() == 2 and recipients.min() >= 0


def test_idle_hold_answers_pings(target, tmp_path):
    run = run_locust(target, tmp_path, "IdleUser", users=10)
    check_common(run)
    # Held for three ping intervals: still connected at the end, nothing dropped.
    assert run.count("connect") == run.count("disconnect") == 10
    assert run.count("error") == 0


def test_reference_user_over_long_polling(target, tmp_path):
    run = run_locust(target, tmp_path, "ReferenceUser", "--transport", "polling", users=2)
    check_common(run)
    assert run.count("connect") == run.count("disconnect") == 2
    assert run.count("ack", "echo") > 5


def test_processes_each_write_their_own_shards(target, tmp_path):
    run = run_locust(target, tmp_path, "EchoUser", "--processes", "2")
    check_common(run)
    assert run.samples.worker.nunique() == 2
