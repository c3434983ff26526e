"""Several target instances sharing a private Redis, and Locust's worker processes, for real.

- target level: a broadcast emitted on one instance reaches clients on every
  instance, each instance's ack counts its own recipients, and with Redis
  gone a broadcast is refused with an error ack while echoes go on;
- runner level: a ``gevent-dev-x2`` cell spreads its users over both
  instances and measures cross-instance fan-out with nothing lost; a cell
  run by two Locust processes records both and matches a one-process run of
  the same load.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from reports.build import build_cell_report
from sioharness.bench import matrix as bench
from sioharness.bench.redis_server import RedisServer, launch_redis, redis_binary
from target_app.process import start_target

from .conftest import DEV_TARGETS, target_id
from .sio_raw import RawPeer

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(redis_binary() is None,
                                 reason="redis-server is not installed (apt-get install redis-server)")]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = launch_redis(log_path=tmp_path / "redis.log")
    try:
        yield server
    finally:
        server.stop()


def recv_event(peer: RawPeer, event: str) -> object:
    """The next ``event`` push (other packets skipped)."""
    peer.ws.settimeout(10)
    while True:
        packet = peer.recv_packet()
        if packet.startswith("42"):
            name, data = json.loads(packet[2:])
            if name == event:
                return data


@pytest.mark.parametrize("mode_server", DEV_TARGETS, ids=target_id)
def test_broadcast_on_one_instance_reaches_every_instance(mode_server: tuple[str, str], redis: RedisServer,
                                                         tmp_path: Path) -> None:
    mode, server = mode_server
    args = ["--message-queue", redis.url]
    with start_target(mode, server, log_path=tmp_path / "a.log", extra_args=args) as a, \
            start_target(mode, server, log_path=tmp_path / "b.log", extra_args=args) as b:
        assert a.stats()["message_queue"] == {"listening": True, "publish_failures": 0}
        with RawPeer(a.url) as on_a, RawPeer(b.url) as on_b, RawPeer(b.url) as also_b:
            for i, peer in enumerate((on_a, on_b, also_b), 1):
                assert peer.call("join", {"room": "r"}, ack_id=i)["size"] >= 1
            # Each instance counts its own members: the ack says 1 (on_a), not 3.
            assert on_a.call("broadcast", {"room": "r", "payload": {"n": 1}}, ack_id=10) == {"recipients": 1}
            assert recv_event(on_b, "fanout")["payload"] == {"n": 1}
            assert recv_event(also_b, "fanout")["payload"] == {"n": 1}
            # And the other way round, to a room with the sender left out.
            assert on_b.call("room_message", {"room": "r", "payload": "hi"}, ack_id=11) == {"recipients": 1}
            assert recv_event(on_a, "room_message")["payload"] == "hi"
            assert recv_event(also_b, "room_message")["payload"] == "hi"

            redis.kill()
            refused = on_a.call("broadcast", {"room": "r", "payload": {"n": 2}}, ack_id=12)
            assert refused["error"].startswith("message queue unavailable, nothing delivered: ")
            assert "Connection" in refused["error"] or "connect" in refused["error"].lower()
            assert on_a.call("echo", "still here", ack_id=13) == "still here"
        assert a.stats()["message_queue"]["publish_failures"] >= 1
        assert a.alive() and b.alive()
        assert "publish failed" in a.log_tail(50)


def bench_cell(tmp_path: Path, run_id: str, target: str, scenario: str, *args: str) -> Path:
    code = bench.main(["--profile", "scaleout", "--targets", target, "--scenarios", scenario,
                       "--results", str(tmp_path), "--run-id", run_id, *args])
    cell = tmp_path / run_id / f"{target}--{scenario}"
    assert code == 0, (cell / "run.json").read_text()
    return cell


def samples_of(cell: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(cell.glob("samples-*.parquet"))])


def test_runner_spreads_users_over_instances_and_measures_cross_instance_fanout(tmp_path: Path) -> None:
    cell = bench_cell(tmp_path, "x2", "gevent-dev-x2", "broadcast", "--users", "8", "--duration", "4",
                      "--warmup", "1", "--emit-rate", "10", "--no-report")
    build_cell_report(cell, html=False)
    info = json.loads((cell / "run.json").read_text())
    assert info["status"] == "ok" and len(info["instances"]) == 2 and info["message_queue"]["kind"] == "redis"
    assert info["target_urls"] == [row["url"] for row in info["instances"]]
    assert "--target-urls" in info["command"]

    # Users spread over both instances: user k -> instance k mod 2.
    (mapping,) = [json.loads(p.read_text()) for p in cell.glob("targets-*.json")]
    assert set(mapping["users"].values()) == set(info["target_urls"])

    samples = samples_of(cell)
    assert samples.ok.all(), samples[~samples.ok].error.value_counts().to_string()
    joins = samples[(samples.kind == "ack") & (samples.name == "join")]
    sends = samples[(samples.kind == "ack") & (samples.name == "broadcast")]
    pushes = samples[(samples.kind == "push") & (samples.name == "fanout")]
    # Once every member has joined, each broadcast is expected (roster) by the
    # whole room of 8 spread over both instances while the load runs (fewer as
    # members leave at the stop), and reaches exactly that many.
    settled = sends[sends.t_ns > (joins.t_ns + joins.latency_us * 1000).max()]
    during = settled[settled.t_ns < info["load_ended_ns"]]
    assert len(during) > 5 and (during.expected == 8).all(), during.expected.value_counts()
    per_send = pushes.groupby("t_ns").size()
    assert per_send.reindex(settled.t_ns, fill_value=0).tolist() == settled.expected.tolist()

    summary = json.loads((cell / "summary.json").read_text())
    assert summary["fanout"]["lost"] == 0 and summary["fanout"]["received"] > 0
    assert summary["fanout"]["delivery_p50_us"] > 0
    # server.csv sums both instances and Redis.
    server = pd.read_csv(cell / "server.csv")
    assert (server.procs >= 3).all()


def per_user_rate(frame: pd.DataFrame) -> float:
    """Median over users of acks per second across each user's own first to last ack."""
    spans = frame[frame.kind == "ack"].groupby(["worker", "user"]).t_ns.agg(["min", "max", "count"])
    return float(((spans["count"] - 1) / ((spans["max"] - spans["min"]) / 1e9)).median())


def test_two_locust_processes_match_one_at_the_same_load(tmp_path: Path) -> None:
    args = ["--users", "4", "--duration", "3", "--warmup", "1", "--emit-rate", "10", "--no-report"]
    one = bench_cell(tmp_path, "p1", "gevent-dev", "echo", *args)
    two = bench_cell(tmp_path, "p2", "gevent-dev", "echo", *args, "--processes", "2")
    build_cell_report(two, html=False)
    samples = {n: samples_of(cell) for n, cell in (("one", one), ("two", two))}
    assert samples["one"].worker.nunique() == 1 and samples["two"].worker.nunique() == 2
    for frame in samples.values():
        assert frame.ok.all()
        assert (frame.kind == "connect").sum() == 4, "every user connected once"
    # Paced at 10/s per user: the same rate per user, whatever the number of
    # processes. (Counts differ: a distributed run's users start later, once
    # the master has handed them out, within the same -t.)
    rates = {n: per_user_rate(frame) for n, frame in samples.items()}
    assert abs(rates["two"] - rates["one"]) <= 0.15 * rates["one"], rates
    info = json.loads((two / "run.json").read_text())
    assert info["load"]["processes"] == 2 and "--processes" in info["command"]
    summary = json.loads((two / "summary.json").read_text())
    assert summary["samples"]["total"] == len(samples["two"])
    assert summary["locust"] and all(row["locust_requests"] == row["recorder_count"] for row in summary["locust"])
