"""The sample schema: one row per measured thing, shared by recorder and reports.

Columns
-------
t_ns        int64    wall clock (epoch ns) when the measured thing started: the
                     connect call, the emit of an acked event, or, for a push,
                     the sender's timestamp carried in the message (for paced
                     open-model emits, the *intended* send time).
kind        string   one of KINDS.
name        string   what was measured: "connect", "disconnect", an event name
                     ("echo", "broadcast", ...) or a push name ("fanout", "tick").
latency_us  float64  microseconds from t_ns to completion (ack, connected,
                     closed, push received).
ok          bool     False when it failed (timeout, refused, error ack).
bytes       int64    payload bytes sent (acks) or received (pushes); 0 if n/a.
worker      string   load-generator process ("host:pid").
user        int64    user number within the worker.
expected    int64    deliveries this operation should cause (a broadcast's
                     recipients from its ack); 0 otherwise.
error       string   error class and message when ok is False, else null.

Connect and disconnect are separate rows: a slow close never hides in connect
time.
"""
from __future__ import annotations

import pyarrow as pa

KINDS: tuple[str, ...] = ("connect", "disconnect", "ack", "push", "error")

SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("t_ns", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("latency_us", pa.float64(), nullable=False),
        pa.field("ok", pa.bool_(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("worker", pa.string(), nullable=False),
        pa.field("user", pa.int64(), nullable=False),
        pa.field("expected", pa.int64(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
    ]
)

SAMPLE_COLUMNS: tuple[str, ...] = tuple(SAMPLE_SCHEMA.names)

# Shards are named samples-<worker-tag>-<seq>.parquet; each is a complete file
# written under a temporary name and renamed, so a killed run leaves only
# whole shards behind.
SHARD_GLOB = "samples-*.parquet"

# Declared fan-out pairs (acked event -> push) of one recording process, written
# beside its shards (loadtests.runtime.fanout); the reports pair these names too.
FANOUT_FILE_GLOB = "fanout-*.json"
# Its optional "primary": the main event a user class declared, or this value for
# a class ranked by its connect rate.
PRIMARY_CONNECTS = "connects/s"

# Accounting of one recording process (loadtests.runtime.recorder), written beside its
# shards atomically after each flush: {"worker": "host:pid", "taken": int,
# "written": int, "pending": int, "dropped": int, "errors": [str, ...]}; the
# reports sum them to tell samples lost before reaching disk.
RECORDER_FILE_GLOB = "recorder-*.json"

# Samples relayed to the Locust master (--samples-via-master): the master's
# accounting of one sending worker, written beside the shards it received
# (loadtests.runtime.relay_receiver): shards and rows received, the last sequence
# number, whether the worker's final flush arrived, what it kept on its own
# disk; the reports name a worker whose samples did not all arrive.
RELAY_FILE_GLOB = "relayed-*.json"

# Locust's final request counts (its --json-file), in the cell's folder: written by
# Locust when the runner asks for it, else by the harness at quit, after the last
# sample (the --csv stats file is rewritten only every second, and misses the stop).
LOCUST_STATS_JSON = "locust_stats.json"

# What the --app launcher found about a user's app (sioharness/bench/app_launcher.py), in
# the cell's folder: {"app": spec, "async_mode": str, "server": str,
# "socketio_logs_packets": bool, "engineio_logs_packets": bool, "tcp_nodelay": bool}.
APP_INFO_FILE = "app.json"
