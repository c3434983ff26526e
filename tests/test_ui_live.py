"""Live figures of the Socket.IO page from real shards and server.csv files (no network, no Locust)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from loadtests.runtime.recorder import Recorder
from sioharness.webui import live as live_module
from sioharness.webui.live import LiveCell, ServerSeries
from sioharness.webui.panel import WebAuthError, locust_tab_rows, parse_credentials

S = 1_000_000_000
T0 = 1_800_000_000 * S  # a fixed epoch start: figures are exact


def recorder(folder: Path, worker: str) -> Recorder:
    """A recorder posing as one Locust worker process (shard names carry the tag)."""
    rec = Recorder(folder)
    rec.tag, rec.worker = worker.replace(":", "-"), worker
    return rec


def sample(rec: Recorder, kind: str, name: str, t_ns: int, latency_us: float, *, ok: bool = True,
           expected: int = 0) -> None:
    rec.on_request(kind, name, latency_us / 1000, exception=None if ok else RuntimeError("boom"),
                   context={"kind": kind, "t_ns": t_ns, "user": 0, "expected": expected})


def test_percentiles_are_exact_microseconds_over_every_worker(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    a, b = recorder(tmp_path, "host:1"), recorder(tmp_path, "host:2")
    lat_a, lat_b = rng.uniform(100, 900, 501), rng.uniform(300, 5000, 377)
    for i, value in enumerate(lat_a):
        sample(a, "ack", "echo", T0 + i * 1_000_000, value)
    for i, value in enumerate(lat_b):
        sample(b, "ack", "echo", T0 + i * 1_000_000, value)
    sample(b, "ack", "echo", T0, 1e9, ok=False)  # a failure is counted, never timed
    a.flush(), b.flush()

    live = LiveCell(tmp_path, T0)
    assert live.update() == 501 + 377 + 1
    echo = next(e for e in live.snapshot(now_ns=T0 + 2 * S, running=False)["events"] if e["name"] == "echo")
    both = np.concatenate([lat_a, lat_b])
    assert echo["count"] == 879 and echo["failed"] == 1 and echo["ok"] == 878
    for key, q in (("p50_us", 0.5), ("p90_us", 0.9), ("p99_us", 0.99), ("p999_us", 0.999)):
        assert echo[key] == pytest.approx(np.quantile(both, q), rel=1e-12)
    assert echo["max_us"] == pytest.approx(both.max()) and echo["mean_us"] == pytest.approx(both.mean())
    # Not Locust's whole milliseconds: sub-millisecond values survive.
    assert echo["p50_us"] % 1000 != 0
    assert live.snapshot(now_ns=T0 + 2 * S, running=False)["recorders"] == 2


def test_update_reads_only_new_shards(tmp_path: Path) -> None:
    rec = recorder(tmp_path, "host:1")
    sample(rec, "ack", "echo", T0, 100.0)
    rec.flush()
    live = LiveCell(tmp_path, T0)
    assert live.update() == 1
    assert live.update() == 0  # nothing new: nothing read twice
    sample(rec, "ack", "echo", T0 + S, 300.0)
    rec.flush()
    assert live.update() == 1
    echo = live.snapshot(now_ns=T0 + 3 * S, running=False)["events"][0]
    assert (echo["count"], echo["p50_us"], echo["max_us"]) == (2, 200.0, 300.0)


def test_connections_per_second_and_concurrency(tmp_path: Path) -> None:
    rec = recorder(tmp_path, "host:1")
    for i in range(10):  # 10 connects in second 0, each done 2 ms later
        sample(rec, "connect", "connect", T0 + i * 10_000_000, 2000.0)
    sample(rec, "connect", "connect", T0 + 100_000_000, 500.0, ok=False)  # refused: never connected
    for i in range(4):  # 4 leave in second 2
        sample(rec, "disconnect", "disconnect", T0 + 2 * S + i, 1000.0)
    sample(rec, "error", "connection", T0 + 3 * S, 0.0, ok=False)  # one found dead in second 3
    rec.flush()
    live = LiveCell(tmp_path, T0)
    live.update()
    snap = live.snapshot(now_ns=T0 + 5 * S, running=False)
    series, conn = snap["series"], snap["connections"]
    assert series["t"] == [0, 1, 2, 3, 4]
    assert series["connects"] == [10, 0, 0, 0, 0] and series["connect_failures"] == [1, 0, 0, 0, 0]
    assert series["disconnects"] == [0, 0, 4, 0, 0]
    assert series["concurrent"] == [10, 10, 6, 5, 5]
    assert (conn["concurrent"], conn["peak"], conn["connects"], conn["connect_failures"]) == (5, 10, 10, 1)
    assert (conn["disconnects"], conn["lost"]) == (4, 1)
    assert conn["connects_per_s"] == pytest.approx(10 / 5) and conn["disconnects_per_s"] == pytest.approx(4 / 5)
    assert [e["kind"] for e in snap["events"]] == ["connect", "disconnect"]  # lost connections are not timed


def test_series_stop_where_a_worker_has_not_flushed_yet(tmp_path: Path) -> None:
    start = time.time_ns() - 5 * S
    fast, slow = recorder(tmp_path, "host:1"), recorder(tmp_path, "host:2")
    sample(fast, "ack", "echo", start, 100.0)
    fast.flush()
    time.sleep(0.05)
    sample(slow, "ack", "echo", start, 100.0)
    slow.flush()
    live = LiveCell(tmp_path, start)
    live.update()
    assert set(live.writers) == {"host-1", "host-2"}
    oldest = min(live.writers.values())
    now = oldest + 10 * S
    # While running, the series end at the oldest recorder's last flush; after the stop, now.
    assert live.complete_until_ns(now, running=True) == oldest == live.writers["host-1"]
    assert live.snapshot(now_ns=now, running=True)["series"]["t"] == list(range((oldest - start) // S))
    assert live.complete_until_ns(now, running=False) == now
    assert LiveCell(tmp_path / "empty", start).complete_until_ns(now, running=True) == start


def test_fanout_counts_and_loss_with_settled_window(tmp_path: Path) -> None:
    sender, listener = recorder(tmp_path, "host:1"), recorder(tmp_path, "host:2")
    for i in range(10):  # 10 broadcasts promising 3 deliveries each, one per 100 ms
        t = T0 + i * 100_000_000
        sample(sender, "ack", "broadcast", t, 800.0, expected=3)
        for _ in range(3 if i != 4 else 1):  # broadcast 4 loses two deliveries
            sample(listener, "push", "fanout", t, 400.0)
    sample(sender, "ack", "broadcast", T0 + 3 * S, 800.0, expected=3)  # too recent to judge while running
    sender.flush(), listener.flush()
    live = LiveCell(tmp_path, T0)
    live.update()
    done = live.snapshot(now_ns=T0 + 10 * S, running=False)["fanout"]
    assert (done["expected"], done["received"]) == (33, 28)
    assert (done["settled_expected"], done["settled_received"], done["lost"]) == (33, 28, 5)
    assert done["loss_ratio"] == pytest.approx(5 / 33)

    # While running: shards flushed up to 4 s in; sends from the last second are not judged yet.
    live.writers = {tag: T0 + 4 * S for tag in live.writers}
    running = live.snapshot(now_ns=T0 + 10 * S, running=True)["fanout"]
    assert (running["settled_expected"], running["settled_received"], running["lost"]) == (30, 28, 2)
    assert running["series_expected"] == [30, 0, 0, 3] and running["series_received"] == [28, 0, 0, 0]


def test_a_corrupt_shard_is_named_and_skipped(tmp_path: Path) -> None:
    rec = recorder(tmp_path, "host:1")
    sample(rec, "ack", "echo", T0, 100.0)
    rec.flush()
    (tmp_path / "samples-host-9-00001.parquet").write_bytes(b"PAR1 not parquet")
    live = LiveCell(tmp_path, T0)
    assert live.update() == 1
    snap = live.snapshot(now_ns=T0 + S, running=False)
    assert list(snap["shards_failed"]) == ["samples-host-9-00001.parquet"] and snap["samples"] == 1


def test_server_series_reads_whole_lines_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "ui-server.csv"
    header = "t_ns,cpu_user_s,cpu_system_s,rss_bytes,threads,fds,procs,connected\n"
    rows = [f"{T0 - 5 * S},1.0,0.0,{100 * 2**20},1,5,1,0\n",     # before the lead: not shown
            f"{T0},2.0,0.5,{100 * 2**20},1,5,1,0\n",
            f"{T0 + S // 2},2.2,0.55,{110 * 2**20},1,7,1,3\n"]
    path.write_text(header + "".join(rows) + f"{T0 + S},2.5")  # the last line is still being written
    series = ServerSeries(path)
    assert series.update() == 3
    with path.open("a") as handle:
        handle.write(f",0.6,{120 * 2**20},1,9,1,\n")
    assert series.update() == 1 and series.update() == 0
    shown = series.since(T0)
    assert shown["t"] == [0.0, 0.5, 1.0]
    assert shown["cpu_pct"][0] is None  # no previous row in view
    assert shown["cpu_pct"][1:] == [pytest.approx(50.0), pytest.approx(70.0)]  # 0.25 s and 0.35 s per 0.5 s
    assert shown["rss_mib"] == [100.0, 110.0, 120.0] and shown["connected"] == [0, 3, None]
    assert shown["rss_mib_peak"] == 120.0 and shown["cpu_pct_now"] == pytest.approx(60.0)
    assert ServerSeries(tmp_path / "missing.csv").update() == 0


def test_server_figures_ride_along_when_sampled(tmp_path: Path) -> None:
    (tmp_path / "ui-server.csv").write_text(
        "t_ns,cpu_user_s,cpu_system_s,rss_bytes,threads,fds,procs,connected\n"
        f"{T0},1.0,0.0,{50 * 2**20},1,5,1,0\n{T0 + S},1.5,0.0,{60 * 2**20},1,5,1,2\n")
    live = LiveCell(tmp_path / "cell", T0, server=ServerSeries(tmp_path / "ui-server.csv"))
    live.update()
    server = live.snapshot(now_ns=T0 + S, running=False)["server"]
    assert server["cpu_pct"] == [None, pytest.approx(50.0)] and server["connected_now"] == 2
    assert LiveCell(tmp_path / "cell", T0).snapshot(now_ns=T0, running=False)["server"] is None


def test_locust_tab_rows_carry_the_figures(tmp_path: Path) -> None:
    rec = recorder(tmp_path, "host:1")
    sample(rec, "connect", "connect", T0, 1500.0)
    sample(rec, "ack", "echo", T0, 123.456)
    rec.flush()
    live = LiveCell(tmp_path, T0)
    live.update()
    snapshot = {"cell": "gevent-dev--echo-101500", "recording": True,
                "figures": live.snapshot(now_ns=T0 + S, running=False), "report": {}}
    tabs = {tab["key"]: tab["data"] for tab in json.loads(json.dumps(locust_tab_rows(snapshot)))}
    echo = next(row for row in tabs["socketio"] if row["name"] == "echo")
    assert echo["p50_us"] == 123.5 and echo["count"] == 1
    figures = {row["figure"]: row["value"] for row in tabs["socketio-figures"]}
    assert figures["test folder"] == "gevent-dev--echo-101500" and figures["concurrent connections"] == "1"
    assert "sioharness.bench.ui" in figures["target CPU and RSS"]


def test_web_login_credentials_are_checked() -> None:
    assert parse_credentials("ann:pass:word") == ("ann", "pass:word")
    for bad in (None, "", "ann", "ann:", ":pw"):
        with pytest.raises(WebAuthError, match="LOADTEST_WEB_AUTH"):
            parse_credentials(bad)


def test_live_percentiles_of_big_runs_refresh_at_most_once_a_second_per_million(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(live_module.time, "monotonic", lambda: clock[0])
    event = live_module._Event("ack", "echo")
    event.add(np.full(500_000, 100.0), np.ones(500_000, bool))
    assert event.figures(fresh=False)["p50_us"] == 100.0
    event.add(np.full(1_500_000, 300.0), np.ones(1_500_000, bool))
    clock[0] += 1.0  # 2 M samples: a live view may reuse figures up to 2 s old
    assert event.figures(fresh=False)["p50_us"] == 100.0
    clock[0] += 1.5
    assert event.figures(fresh=False)["p50_us"] == 300.0
    event.add(np.full(10, 5.0), np.ones(10, bool))
    # A stopped test's figures are always exact.
    assert event.figures(fresh=True)["mean_us"] == pytest.approx((5e5 * 100 + 1.5e6 * 300 + 10 * 5) / 2_000_010)
