"""``--samples-via-master`` without Locust or a network: the wire format, the
worker's window, the master's writes and acks, and the report's checks.

The live test (real master and worker processes with no shared folder) is
``tests/test_samples_via_master.py``.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadtests.runtime.recorder import Recorder, rows_to_table
from loadtests.runtime.relay_receiver import ShardReceiver
from loadtests.runtime.relay_sender import ShardSender
from loadtests.runtime.relay_wire import (
    ACK_MESSAGE,
    SHARD_MESSAGE,
    ShardMessage,
    WireError,
    decode_rows,
    encode_rows,
)
from reports.transport import check_relayed
from sioharness.core.schema import RELAY_FILE_GLOB, SAMPLE_SCHEMA, SHARD_GLOB


def direct(func: Any, *args: Any) -> Any:
    return func(*args)


def rows(n: int, worker: str = "h:1", start: int = 0) -> list[tuple]:
    return [(1_700_000_000_000_000_000 + i, "ack", "echo", 400.0 + i, True, 64, worker, i % 5, 0, None)
            for i in range(start, start + n)]


def record(recorder: Recorder, n: int) -> list[tuple]:
    """Count ``n`` rows as taken by ``recorder`` and return them (what a flush hands over)."""
    taken = rows(n, recorder.worker, recorder.recorded)
    recorder.recorded += n
    return taken


class Wire:
    """Messages a sender posted, delivered to a receiver on demand (an in-memory Locust channel)."""

    def __init__(self, node: str = "node-a") -> None:
        self.node = node
        self.to_master: list[dict[str, Any]] = []
        self.to_worker: list[tuple[str, dict[str, Any]]] = []

    def send(self, kind: str, data: dict[str, Any]) -> None:
        assert kind == SHARD_MESSAGE
        self.to_master.append(data)

    def reply(self, node: str, data: dict[str, Any]) -> None:
        self.to_worker.append((node, data))

    def deliver(self, receiver: ShardReceiver, sender: ShardSender | None = None) -> None:
        for data in self.to_master:
            receiver.on_message(SimpleNamespace(node_id=self.node, data=data))
        self.to_master.clear()
        for _, data in self.to_worker:
            if sender is not None:
                sender.on_ack(SimpleNamespace(type=ACK_MESSAGE, data=data))
        self.to_worker.clear()


# --- the wire format -------------------------------------------------------------------

def test_rows_survive_the_wire_and_a_lie_about_them_is_refused() -> None:
    table = rows_to_table(rows(1000))
    payload = encode_rows(table)
    assert decode_rows(payload, 1000).equals(table)
    assert len(payload) / 1000 < 40  # compressed: about 20 bytes a sample
    with pytest.raises(WireError, match="says 999 rows"):
        decode_rows(payload, 999)
    with pytest.raises(WireError, match="not a zstd-compressed Arrow IPC stream"):
        decode_rows(b"PAR1 not arrow", 1)
    other = pa.table({"t_ns": pa.array([1], pa.int64())})
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as compressed, pa.ipc.new_stream(compressed, other.schema) as writer:
        writer.write_table(other)
    with pytest.raises(WireError, match="sample schema"):
        decode_rows(sink.getvalue().to_pybytes(), 1)


BOMB = """
import resource, sys, time
import pyarrow as pa
from loadtests.runtime.relay_wire import WireError, decode_rows
sink = pa.BufferOutputStream()
with pa.CompressedOutputStream(sink, "zstd") as out:
    for _ in range(1024):  # 1 GiB of one byte: a row whose name is 1 GiB of "a"
        out.write(b"a" * (1 << 20))
payload = sink.getvalue().to_pybytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
try:
    decode_rows(payload, 1)
except WireError as exc:
    print(len(payload), round(time.monotonic() - started, 3),
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, exc, flush=True)
"""


def test_a_decompression_bomb_is_refused_before_it_is_decompressed() -> None:
    """A 1 GiB zstd bomb of ~35 KB, declared as one row: refused after decoding ~1 MiB, in a real process."""
    import subprocess
    import sys

    from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT

    done = subprocess.run([sys.executable, "-c", BOMB], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    size, seconds, grew_kb, message = done.stdout.split(" ", 3)
    assert int(size) < 100_000
    assert "decompress to more than 1,049,600 bytes, the most 1 row(s) may take" in message
    assert int(grew_kb) < 64 * 1024, f"the decoder's memory grew {grew_kb} KB"
    assert float(seconds) < 5


@pytest.mark.parametrize("change, error", [
    ({"tag": "../../etc"}, "file-name-safe"),
    ({"tag": "-rf"}, "file-name-safe"),
    ({"seq": 0}, "seq > 0, rows > 0"),
    ({"rows": -1}, "'rows' must be an integer >= 0"),
    ({"v": 99}, "unknown format version"),
    ({"files": {"../run.json": {}}}, "fanout-"),
    ({"arrow": "text"}, "'arrow' must be bytes"),
])
def test_a_bad_message_is_refused_with_its_reason(change: dict[str, Any], error: str) -> None:
    good = ShardMessage(worker="h:1", tag="h-1", seq=1, rows=1, arrow=b"x", taken=1).to_data()
    assert ShardMessage.from_data(good).seq == 1
    with pytest.raises(WireError, match=error):
        ShardMessage.from_data(good | change)


# --- the worker's window ------------------------------------------------------------------

def test_the_window_bounds_what_is_in_flight_and_the_rest_stays_on_the_workers_disk(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "worker")
    wire = Wire()
    sender = ShardSender(recorder, wire.send, max_shards=2, run_in_thread=direct)
    sender.enabled = True
    recorder.relay = sender
    for _ in range(3):
        sender.ship(record(recorder, 10), in_thread=True, wait=False)
    assert len(wire.to_master) == 2 and sender.in_flight_rows == 20
    # The third shard did not wait: written here, under the name the master would have used.
    kept = sorted(p.name for p in (tmp_path / "worker").glob(SHARD_GLOB))
    assert kept == [f"samples-{recorder.tag}-00003.parquet"] and sender.kept_rows == 10
    assert recorder.written == 10 and recorder.lost == 20  # the 20 in flight are not written anywhere yet
    account = json.loads((tmp_path / "worker" / f"recorder-{recorder.tag}.json").read_text())
    assert account["pending"] == 20 and account["via_master"]["kept_rows"] == 10

    receiver = ShardReceiver(lambda: tmp_path / "master", wire.reply, run_in_thread=direct)
    wire.deliver(receiver, sender)
    assert sender.in_flight_rows == 0 and recorder.written == recorder.recorded == 30
    # A bounded wait for room: nothing acknowledges, so the shard is kept after wait_s.
    sender.max_shards, sender.wait_s = 1, 0.05
    sender.ship(record(recorder, 5), in_thread=False, wait=False)
    sender.ship(record(recorder, 5), in_thread=False, wait=True)
    assert sender.kept_shards == 2 and "unacknowledged" in sender.errors[-1]
    sender.abandon()  # the worker quits: what the master never acknowledged stays here
    assert sender.kept_shards == 3 and recorder.lost == 0
    assert sorted(p.name for p in (tmp_path / "worker").glob(SHARD_GLOB))[-2:] == [
        f"samples-{recorder.tag}-00004.parquet", f"samples-{recorder.tag}-00005.parquet"]


def test_a_shard_the_master_refuses_is_kept_by_the_worker(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "worker")
    wire = Wire()
    sender = ShardSender(recorder, wire.send, run_in_thread=direct)
    sender.enabled = True
    sender.ship(record(recorder, 7), in_thread=False, wait=False)
    receiver = ShardReceiver(lambda: None, wire.reply, run_in_thread=direct)  # a master with no results folder
    wire.deliver(receiver, sender)
    assert sender.refused == 1 and sender.kept_rows == 7 and recorder.lost == 0
    assert "no --results-dir" in sender.errors[-1]
    assert pq.read_table(tmp_path / "worker" / f"samples-{recorder.tag}-00001.parquet").num_rows == 7


def test_the_final_message_carries_the_counts_and_the_declared_fanout(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "worker")
    wire = Wire()
    sender = ShardSender(recorder, wire.send, run_in_thread=direct)
    sender.enabled = True
    receiver = ShardReceiver(lambda: tmp_path / "master", wire.reply, run_in_thread=direct)
    sender.begin()
    sender.ship(record(recorder, 6), in_thread=False, wait=False)
    sender.add_file(f"fanout-{recorder.tag}.json", {"worker": recorder.worker, "pairs": {"say": "said"}})
    sender.finish()
    wire.deliver(receiver, sender)
    assert json.loads((tmp_path / "master" / f"fanout-{recorder.tag}.json").read_text())["pairs"] == {"say": "said"}
    account = json.loads((tmp_path / "master" / f"relayed-{recorder.tag}.json").read_text())
    assert (account["final"], account["taken"], account["rows"], account["shards"]) == (True, 6, 6, 1)
    # The next test (web UI): the worker's counts start again from zero.
    sender.begin()
    sender.ship(record(recorder, 2), in_thread=False, wait=False)
    sender.finish()
    receiver2 = ShardReceiver(lambda: tmp_path / "master2", wire.reply, run_in_thread=direct)
    wire.deliver(receiver2, sender)
    account = json.loads((tmp_path / "master2" / f"relayed-{recorder.tag}.json").read_text())
    assert (account["final"], account["taken"], account["rows"]) == (True, 2, 2)


def test_a_send_that_fails_keeps_the_shard_here(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)

    def broken(kind: str, data: dict[str, Any]) -> None:
        raise ConnectionError("master gone")

    sender = ShardSender(recorder, broken, run_in_thread=direct)
    sender.ship(record(recorder, 3), in_thread=False, wait=False)
    assert sender.kept_rows == 3 and sender.sent_shards == 0 and "master gone" in sender.errors[-1]


# --- the master ---------------------------------------------------------------------

def test_the_master_writes_whole_shards_names_each_worker_uniquely_and_keeps_accounts(tmp_path: Path) -> None:
    master = tmp_path / "master"
    wire_a, wire_b = Wire("node-a"), Wire("node-b")
    receiver = ShardReceiver(lambda: master, lambda node, data: (wire_a if node == "node-a" else wire_b)
                             .reply(node, data), run_in_thread=direct)
    # Two workers with the same host name and pid (two containers): one tag each in this folder.
    for wire in (wire_a, wire_b):
        message = ShardMessage(worker="box:1", tag="box-1", seq=1, rows=4, arrow=encode_rows(rows_to_table(
            rows(4, "box:1"))), taken=4, flush_s=2.0, files={"fanout-box-1.json": {"pairs": {"a": "b"}}})
        wire.send(SHARD_MESSAGE, message.to_data())
        wire.deliver(receiver)
    names = sorted(p.name for p in master.glob(SHARD_GLOB))
    assert len(names) == 2 and names[0] != names[1] and all(n.endswith("-00001.parquet") for n in names)
    assert sorted(p.name for p in master.glob("fanout-*.json")) == sorted(
        f"fanout-{n[len('samples-'):-len('-00001.parquet')]}.json" for n in names)
    assert not [p for p in master.iterdir() if p.name.startswith(".")]  # no temporary file left
    accounts = [json.loads(p.read_text()) for p in sorted(master.glob(RELAY_FILE_GLOB))]
    assert [(a["shards"], a["rows"], a["last_seq"], a["final"]) for a in accounts] == [(1, 4, 1, False)] * 2
    # A shard whose rows do not match its count is refused, and nothing is written for it.
    lie = ShardMessage(worker="box:1", tag="box-1", seq=2, rows=5, arrow=encode_rows(rows_to_table(rows(4))),
                       taken=9).to_data()
    receiver.on_message(SimpleNamespace(node_id="node-a", data=lie))
    assert wire_a.to_worker == [("node-a", {"seq": 2, "ok": False, "error": wire_a.to_worker[0][1]["error"]})]
    assert "says 5 rows" in wire_a.to_worker[0][1]["error"]
    assert len(list(master.glob(SHARD_GLOB))) == 2
    # The final message, and a worker the master lost.
    final = ShardMessage(worker="box:1", tag="box-1", seq=0, rows=0, arrow=b"", taken=4, final=True).to_data()
    receiver.on_message(SimpleNamespace(node_id="node-a", data=final))
    receiver.finish({"node-b": 1_700_000_000_000_000_000})
    by_node = {a["node"]: a for a in (json.loads(p.read_text()) for p in master.glob(RELAY_FILE_GLOB))}
    assert by_node["node-a"]["final"] and by_node["node-a"]["refused"] == 1
    assert not by_node["node-b"]["final"] and by_node["node-b"]["lost_at_ns"] == 1_700_000_000_000_000_000


def test_only_registered_workers_are_heard_and_a_shard_is_never_written_twice(tmp_path: Path) -> None:
    master = tmp_path / "master"
    replies: list[tuple[str, dict[str, Any]]] = []
    receiver = ShardReceiver(lambda: master, lambda node, data: replies.append((node, data)), run_in_thread=direct,
                             registered=lambda node: node == "node-a")

    def shard(seq: int, n: int) -> dict[str, Any]:
        return ShardMessage(worker="box:1", tag="box-1", seq=seq, rows=n, arrow=encode_rows(rows_to_table(
            rows(n, "box:1"))), taken=n).to_data()

    # A node that never registered: nothing written, not even an account.
    receiver.on_message(SimpleNamespace(node_id="intruder", data=shard(1, 10)))
    receiver.on_message(SimpleNamespace(node_id="", data=shard(1, 10)))
    assert not master.exists() or not list(master.iterdir())
    # The registered worker's shard 1, then shard 1 again with other rows: refused, the first kept.
    receiver.on_message(SimpleNamespace(node_id="node-a", data=shard(1, 10)))
    receiver.on_message(SimpleNamespace(node_id="node-a", data=shard(1, 3)))
    [path] = master.glob(SHARD_GLOB)
    assert pq.read_table(path).num_rows == 10
    assert replies[0] == ("node-a", {"seq": 1, "ok": True, "error": None})
    assert replies[1][1]["ok"] is False and "received already" in replies[1][1]["error"]
    [account] = [json.loads(p.read_text()) for p in master.glob(RELAY_FILE_GLOB)]
    assert (account["shards"], account["rows"], account["refused"]) == (1, 10, 1) and "seqs" not in account


# --- the report's checks --------------------------------------------------------------------

def relayed_file(folder: Path, tag: str, **fields: Any) -> None:
    document = {"worker": f"host:{tag}", "node": f"node-{tag}", "tag": tag, "shards": 3, "rows": 300,
                "bytes": 6000, "last_seq": 3, "first_message_ns": 1_000_000_000, "last_flush_ns": 5_000_000_000,
                "final": True, "taken": 300, "kept_rows": 0, "kept_shards": 0, "kept_names": [], "dropped": 0,
                "flush_s": 2.0, "lost_at_ns": None} | fields
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"relayed-{tag}.json").write_text(json.dumps(document))


def checks(folder: Path) -> tuple[list[str], list[str], list[str]]:
    problems: list[str] = []
    lost: list[str] = []
    notes: list[str] = []
    check_relayed(folder, load_started_ns=1_000_000_000, problems=problems, lost=lost, notes=notes)
    return problems, lost, notes


def test_the_report_names_a_lost_worker_and_its_unflushed_interval(tmp_path: Path) -> None:
    relayed_file(tmp_path, "1")
    relayed_file(tmp_path, "2", final=False, lost_at_ns=8_000_000_000)
    problems, lost, notes = checks(tmp_path)
    assert problems == lost and len(problems) == 1
    assert "worker host:2 (Locust node-2) was lost without its final flush" in problems[0]
    assert "last flushed at +4.0 s into the load" in problems[0]
    assert "unflushed interval (3.0 s from its last flush to when the master lost it at +7.0 s" in problems[0]
    assert notes == ["samples came through the Locust master from 2 workers (600 in 6 shards, "
                     "20.0 bytes per sample on the wire)"]


def test_the_report_checks_final_counts_and_shards_kept_on_a_worker(tmp_path: Path) -> None:
    relayed_file(tmp_path, "1", taken=350)  # 50 samples neither arrived nor were kept
    relayed_file(tmp_path, "2", kept_rows=10, kept_shards=1, kept_names=["samples-2-00004.parquet"], taken=310)
    problems, lost, _ = checks(tmp_path)
    assert len(lost) == 2
    assert "took 350 samples but only 300 reached the master" in lost[0] and ": 50 never arrived" in lost[0]
    assert "host:2" in lost[1] and "copy samples-2-*.parquet" in lost[1]
    # On a shared folder the kept shard is already here: nothing is missing.
    pq.write_table(SAMPLE_SCHEMA.empty_table(), tmp_path / "samples-2-00004.parquet")
    problems, lost, _ = checks(tmp_path)
    assert len(lost) == 1 and "host:1" in lost[0]


def test_local_shards_have_nothing_to_check_and_a_broken_account_is_a_problem(tmp_path: Path) -> None:
    assert checks(tmp_path) == ([], [], [])
    (tmp_path / "relayed-x.json").write_text("{not json")
    problems, lost, _ = checks(tmp_path)
    assert lost == [] and "relayed-x.json unreadable" in problems[0]
