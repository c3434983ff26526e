"""Load-generator benchmark: the lean client against Locust's ``SocketIOUser`` (and Artillery).

One gevent target serves every measurement (the floor phase adds the
calibration server, and ``--idle-target`` gives the idle phase its own);
each measurement is a fresh load-generator process running Locust users
programmatically, pinned to a different core than the servers. Per client
it measures:

- echo:  client CPU microseconds per acknowledged echo, and acks per second
         (acks counted by the target's ``/stats``, CPU by the load generator's
         own ``time.process_time``), ``--users`` users echoing flat out; for
         the lean client also the recorder's share of that CPU (its
         ``request`` listener, timed by replaying the window's samples into a
         scratch recorder, plus its shard writes, timed in the writing
         thread) and the cyclic GC's (``gc.callbacks``);
- churn: connects per second (target's count) with connect / disconnect
         latency medians timed separately;
- idle:  load-generator RSS per idle connection while holding
         ``--idle-connections`` connections (RSS growth over the process's
         RSS before the users started), and its CPU over a steady window
         of ``--idle-window`` seconds once every connection is up (cores,
         and microseconds per connection-second, from ``process_time``),
         the target pinging every ``--idle-ping-interval`` seconds;
- reply: the two ways to time a round trip with the lean user, against
         ``examples/classic/app.py`` served by ``--app`` (gevent, TCP_NODELAY):
         ``call("my_event")`` (Flask-SocketIO acks after the handler) and
         ``request("my_event", reply="my_response")`` (the reply event):
         client CPU microseconds per recorded round trip;
- floor: the lean EchoUser paced (``--floor-users`` x ``--floor-rate``
         echoes per second) against the calibration server
         (``target_app.calibration``: Engine.IO/Socket.IO with no
         Flask-SocketIO) and against the target, same rate: ack latency
         p50/p99/p99.9 of each, the calibration's being the load generator's
         own floor.

Clients run interleaved and repeated (lean, locust, artillery, lean, ...);
the table shows medians over the repeats and the ratios of medians.

Artillery 2's socketio engine (``benchmarks.artillery``) is the third client
of the echo phase when node and Artillery are found (``--artillery``, see
there): the same users, payload, warm-up and window, its process tree's CPU.

Run it on a quiet machine::

    python -m benchmarks.loadgen             # the full benchmark (several minutes)
    python -m benchmarks.loadgen --quick     # smoke check (under a minute)

Both Locust clients use the harness's accounting: the lean users fire one
Locust request event per measured thing and feed the sample recorder (as in
a real run); Locust's stock user fires its own events (two per call). The
benchmark adds a request listener of its own only where it needs latencies
(churn, floor); failures come from Locust's stats.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import artillery

REPO = Path(__file__).resolve().parent.parent
CLIENTS = ("lean", "locust", "artillery")
#: the clients a phase can measure (Artillery: echo only)
PHASE_CLIENTS = {"echo": CLIENTS, "churn": ("lean", "locust"), "idle": ("lean", "locust"), "floor": ("lean",)}
PHASES = ("echo", "churn", "idle", "floor", "reply")
#: the reply phase's two styles of the lean user, measured interleaved
REPLY_STYLES = ("call", "request")
#: request() at most this much of call()'s client CPU per round trip
TARGET_REQUEST_CPU_RATIO = 1.10
#: the servers the floor phase measures: the calibration server, then the target
FLOOR_SERVERS = ("calibration", "target")
#: lean at most 1/4 of Locust's SocketIOUser's CPU per ack, and 1/3 of Artillery's
TARGET_CPU_RATIO = 4.0
TARGET_CPU_RATIO_ARTILLERY = 3.0
#: the recorder (request listener + shard writes) at most this share of the lean client's CPU
TARGET_RECORDER_SHARE = 0.05
TARGET_IDLE_KB = 15.0
#: 10,000 idle connections in at most 0.05 of a core: 5 us per connection-second
TARGET_IDLE_US_PER_CONN_S = 5.0


@dataclass(frozen=True)
class Plan:
    repeats: int
    users: int
    churn_users: int
    warmup_s: float
    window_s: float
    idle_connections: int
    payload_bytes: int
    idle_window_s: float = 10.0
    #: the target's ping interval: a window as long holds one ping per idle connection
    idle_ping_s: float = 10.0
    floor_users: int = 20
    floor_rate: float = 50.0


FULL = Plan(repeats=3, users=50, churn_users=20, warmup_s=3.0, window_s=10.0, idle_connections=10_000,
            payload_bytes=64)
QUICK = Plan(repeats=1, users=20, churn_users=10, warmup_s=1.0, window_s=3.0, idle_connections=500,
             payload_bytes=64, idle_window_s=3.0, idle_ping_s=3.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run: 1 repeat, short windows")
    parser.add_argument("--repeats", type=int, help="repeats of each (phase, client) pair")
    parser.add_argument("--users", type=int, help="echo users per client")
    parser.add_argument("--churn-users", type=int, help="churn users per client")
    parser.add_argument("--window", type=float, help="measured seconds per echo/churn run")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each window")
    parser.add_argument("--idle-connections", type=int, help="connections held in the idle phase")
    parser.add_argument("--idle-window", type=float, help="seconds of steady state the idle CPU is measured over")
    parser.add_argument("--idle-ping-interval", type=float,
                        help="the targets' --ping-interval (default 10 s: the idle window holds one ping per "
                             "connection, 2.5x Engine.IO's default rate)")
    parser.add_argument("--idle-target", default="gevent-dev", metavar="MODE-SERVER",
                        help="the target of the idle phase (default: gevent-dev, the one every phase shares; "
                             "asgi-uvicorn holds 10,000 connections in one descriptor each)")
    parser.add_argument("--floor-users", type=int, help="paced echo users of the floor phase (default 20)")
    parser.add_argument("--floor-rate", type=float, help="echoes per second per floor user (default 50)")
    parser.add_argument("--clients",
                        help="comma-separated subset of lean,locust,artillery (default: all three, artillery "
                             "when it is found)")
    parser.add_argument("--artillery", metavar="PATH",
                        help="Artillery's install folder (npm --prefix) or executable "
                             f"(default: ${artillery.ENV_COMMAND}, or artillery on the PATH)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help="comma-separated subset of echo,churn,idle,floor,reply")
    parser.add_argument("--json", type=Path, help="also write the raw measurements and medians here")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless lean is >= {TARGET_CPU_RATIO:g}x cheaper per ack than Locust "
                             f"(and >= {TARGET_CPU_RATIO_ARTILLERY:g}x than Artillery, when measured), its recorder "
                             f"<= {TARGET_RECORDER_SHARE * 100:g}%% of its CPU, <= {TARGET_IDLE_KB:g} KB and "
                             f"<= {TARGET_IDLE_US_PER_CONN_S:g} us of CPU per idle connection-second")
    # Internal: one measurement in a child process.
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=("lean", "locust", *REPLY_STYLES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--payload-bytes", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    args.plan = Plan(
        repeats=args.repeats or base.repeats,
        users=args.users or base.users,
        churn_users=args.churn_users or base.churn_users,
        warmup_s=base.warmup_s if args.warmup is None else args.warmup,
        window_s=args.window or base.window_s,
        idle_connections=args.idle_connections or base.idle_connections,
        payload_bytes=args.payload_bytes,
        idle_window_s=args.idle_window or base.idle_window_s,
        idle_ping_s=args.idle_ping_interval or base.idle_ping_s,
        floor_users=args.floor_users or base.floor_users,
        floor_rate=args.floor_rate or base.floor_rate,
    )
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    if bad := set(args.phase_list) - set(PHASES):
        parser.error(f"unknown phase(s) {', '.join(sorted(bad))}; choose from {', '.join(PHASES)}")
    args.artillery_cmd, args.artillery_missing = None, ""
    if args.child:
        args.client_list = [args.client]
        return args
    args.artillery_cmd, args.artillery_missing = artillery.find(args.artillery)
    if args.clients is None:
        args.client_list = [c for c in CLIENTS if c != "artillery" or args.artillery_cmd]
    else:
        args.client_list = [c.strip() for c in args.clients.split(",") if c.strip()]
    if bad := set(args.client_list) - set(CLIENTS):
        parser.error(f"unknown client(s) {', '.join(sorted(bad))}; choose from {', '.join(CLIENTS)}")
    if "artillery" in args.client_list and args.artillery_cmd is None:
        parser.error(f"--clients artillery: {args.artillery_missing}")
    return args


# --- child: one measurement ---------------------------------------------


def child_main(args: argparse.Namespace) -> int:
    # Locust patches on import anyway; python-socketio needs it before anything else.
    from gevent import monkey

    monkey.patch_all()
    import gc
    import resource

    import gevent
    import psutil
    from locust import User, constant, task
    from locust.contrib.socketio import SocketIOUser
    from locust.env import Environment

    from benchmarks.recorder_cost import GcClock, TimedRecorder, listener_seconds_per_sample
    from loadtests.runtime.options import LoadSettings
    from loadtests.users import ChurnUser, EchoUser, IdleUser
    from sioharness.core.stats_client import fetch_stats

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    plan: Plan = args.plan
    payload = "x" * plan.payload_bytes

    class StockEcho(SocketIOUser):
        """Locust's SocketIOUser used as its docs show: call() in a loop."""

        wait_time = constant(0)

        def on_start(self) -> None:
            self.sio.connect(self.host, transports=["websocket"], wait_timeout=10)

        @task
        def echo(self) -> None:
            self.sio.call("echo", payload, timeout=10)

    class StockChurn(SocketIOUser):
        wait_time = constant(0)

        @task
        def cycle(self) -> None:
            self.sio.connect(self.host, transports=["websocket"], wait_timeout=10)
            self.sio.call("echo", payload, timeout=10)
            with self.environment.events.request.measure("WS", "disconnect"):
                self.sio.disconnect()

    class StockIdle(SocketIOUser):
        wait_time = constant(3600)

        def on_start(self) -> None:
            self.sio.connect(self.host, transports=["websocket"], wait_timeout=30)

        @task
        def hold(self) -> None:
            pass

    classes: dict[tuple[str, str], type[User]] = {
        ("echo", "lean"): EchoUser, ("churn", "lean"): ChurnUser, ("idle", "lean"): IdleUser,
        ("echo", "locust"): StockEcho, ("churn", "locust"): StockChurn, ("idle", "locust"): StockIdle,
    }
    classes[("floor", "lean")] = EchoUser

    from loadtests.socketio_user import SocketIOUser as LeanUser

    class ReplyUser(LeanUser):
        """The classic example's my_event, timed by its ack (call) or by its my_response (request)."""

        @task
        def round_trip(self) -> None:
            if self.ensure_connected():
                if args.client == "request":
                    self.request("my_event", {"data": payload}, reply="my_response")
                else:
                    self.call("my_event", {"data": payload})

    for style in REPLY_STYLES:
        classes[("reply", style)] = ReplyUser
    user_class = classes[(args.child, args.client)]
    record_dir = tempfile.mkdtemp(prefix="bench-loadgen-")
    settings = LoadSettings(payload_bytes=plan.payload_bytes, results_dir=record_dir, call_timeout=10,
                            emit_rate=plan.floor_rate if args.child == "floor" else 0.0)
    env = Environment(user_classes=[user_class], host=args.url, parsed_options=argparse.Namespace(**vars(settings)),
                      stop_timeout=0)
    recorder: TimedRecorder | None = None
    if args.client != "locust":
        recorder = TimedRecorder(record_dir)
        env.events.request.add_listener(recorder.on_request)

        def flush_periodically() -> None:
            while True:
                gevent.sleep(settings.flush_interval)
                recorder.flush_in_thread()

        gevent.spawn(flush_periodically)

    timings: dict[str, list[float]] = {"connect": [], "disconnect": []}
    if args.child == "floor":
        timings["echo"] = []
    window_open = [False]

    def on_request(request_type: str, name: str, response_time: float, exception: Any = None, **_: Any) -> None:
        if exception is None and window_open[0] and name in timings:
            timings[name].append(response_time)

    if args.child in ("churn", "floor"):  # a listener of its own costs CPU: only where latencies are read
        env.events.request.add_listener(on_request)

    def target_stats() -> dict[str, Any]:
        return fetch_stats(args.url, timeout=10)

    process = psutil.Process()
    runner = env.create_local_runner()
    gc.collect()
    result: dict[str, Any] = {"phase": args.child, "client": args.client}

    if args.child == "idle":
        n = plan.idle_connections
        rss_base = process.memory_info().rss
        runner.start(n, spawn_rate=min(n, 500))
        deadline = time.monotonic() + 120
        while target_stats()["connected"] < n and time.monotonic() < deadline:
            gevent.sleep(0.5)
        gevent.sleep(2.0)  # let greenlets settle into their idle waits
        gc.collect()
        held = target_stats()["connected"]
        rss_held = process.memory_info().rss
        # CPU over a steady window: every connection up, nothing but pings.
        clients = [g.args[0].client for g in runner.user_greenlets] if args.client == "lean" else []
        wakes_before = sum(c.wakes for c in clients if c is not None)
        cpu_before, t_before = time.process_time(), time.monotonic()
        gevent.sleep(plan.idle_window_s)
        cpu_after, t_after = time.process_time(), time.monotonic()
        elapsed = t_after - t_before
        cpu = cpu_after - cpu_before
        result.update(held=held, rss_base=rss_base, rss_held=rss_held,
                      rss_per_conn_kb=(rss_held - rss_base) / max(held, 1) / 1024,
                      idle_window_s=elapsed, idle_cpu_s=cpu, idle_cores=cpu / elapsed,
                      cpu_us_per_conn_s=cpu / (max(held, 1) * elapsed) * 1e6)
        if clients:
            wakes = sum(c.wakes for c in clients if c is not None) - wakes_before
            result["wakes_per_conn_min"] = wakes / max(held, 1) / elapsed * 60
    elif args.child == "floor":
        runner.start(plan.floor_users, spawn_rate=plan.floor_users)
        gevent.sleep(plan.warmup_s)
        before, t_before = target_stats(), time.monotonic()
        window_open[0] = True
        gevent.sleep(plan.window_s)
        window_open[0] = False
        after, elapsed = target_stats(), time.monotonic() - t_before
        latencies = sorted(timings["echo"])
        result.update(window_s=elapsed, acks=len(latencies), acks_per_s=len(latencies) / elapsed,
                      server_acks=after["events"].get("echo", 0) - before["events"].get("echo", 0),
                      p50_ms=_quantile(latencies, 0.5), p99_ms=_quantile(latencies, 0.99),
                      p999_ms=_quantile(latencies, 0.999))
    elif args.child == "reply":
        runner.start(plan.users, spawn_rate=plan.users)
        gevent.sleep(plan.warmup_s)
        assert recorder is not None
        samples_before, cpu_before, t_before = recorder.recorded, time.process_time(), time.monotonic()
        gevent.sleep(plan.window_s)
        samples, cpu = recorder.recorded - samples_before, time.process_time() - cpu_before
        elapsed = time.monotonic() - t_before
        result.update(window_s=elapsed, cpu_s=cpu, round_trips=samples, round_trips_per_s=samples / elapsed,
                      cpu_us_per_round_trip=cpu / samples * 1e6 if samples else None)
    else:
        users = plan.users if args.child == "echo" else plan.churn_users
        runner.start(users, spawn_rate=users)
        gevent.sleep(plan.warmup_s)
        gc_clock = GcClock()
        samples_before = recorder.recorded if recorder is not None else 0
        # process_time: this process's CPU (all threads) at ns resolution;
        # os.times() counts in 10 ms ticks, too coarse for short windows.
        before, cpu_before, t_before = target_stats(), time.process_time(), time.monotonic()
        window_open[0] = True
        gc.callbacks.append(gc_clock)
        gevent.sleep(plan.window_s)
        gc.callbacks.remove(gc_clock)
        window_open[0] = False
        after, cpu_after, t_after = target_stats(), time.process_time(), time.monotonic()
        elapsed = t_after - t_before
        cpu = cpu_after - cpu_before
        result.update(gc_s=gc_clock.seconds, gc_share=gc_clock.seconds / cpu if cpu else None)
        if recorder is not None and args.child == "echo":
            samples = recorder.recorded - samples_before
            listener_s = samples * listener_seconds_per_sample(settings.payload_bytes)
            writes_s = recorder.write_cpu_between(t_before, t_after)
            result.update(recorder_samples=samples, recorder_listener_s=listener_s, recorder_writes_s=writes_s,
                          recorder_share=(listener_s + writes_s) / cpu if cpu else None)
        acks = after["events"].get("echo", 0) - before["events"].get("echo", 0)
        connects = after["connects_total"] - before["connects_total"]
        result.update(window_s=elapsed, cpu_s=cpu, acks=acks, acks_per_s=acks / elapsed,
                      cpu_us_per_ack=cpu / acks * 1e6 if acks else None)
        if args.child == "churn":
            result.update(connects=connects, connects_per_s=connects / elapsed,
                          connect_ms_p50=_median(timings["connect"]),
                          disconnect_ms_p50=_median(timings["disconnect"]),
                          cpu_us_per_cycle=cpu / connects * 1e6 if connects else None)
    result["failures"] = runner.stats.total.num_failures
    print(json.dumps(result), flush=True)
    shutil.rmtree(record_dir, ignore_errors=True)
    # Leave without Locust's teardown: the stock client's disconnect stalls.
    os._exit(0)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _quantile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values (nearest rank), None when there are none."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- parent: orchestration ----------------------------------------------


def run_child(args: argparse.Namespace, phase: str, client: str, url: str, cores: list[int] | None) -> dict:
    plan: Plan = args.plan
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--child", phase, "--client", client, "--url", url,
            "--repeats", "1", "--users", str(plan.users), "--churn-users", str(plan.churn_users),
            "--window", str(plan.window_s), "--warmup", str(plan.warmup_s),
            "--idle-connections", str(plan.idle_connections), "--payload-bytes", str(plan.payload_bytes),
            "--idle-window", str(plan.idle_window_s), "--floor-users", str(plan.floor_users),
            "--floor-rate", str(plan.floor_rate)]
    if cores:
        argv = ["taskset", "--cpu-list", ",".join(map(str, cores))] + argv
    env = os.environ | {"PYTHONPATH": str(REPO)}
    timeout = plan.warmup_s + plan.window_s + (180 + plan.idle_window_s if phase == "idle" else 60)
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{phase}/{client} measurement failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def wait_target_idle(target: Any, timeout: float = 60.0) -> None:
    """Let the target drop the last run's connections before the next one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.stats()["connected"] == 0:
            return
        time.sleep(0.25)


METRICS = (
    # (phase, key, label, better)
    ("echo", "cpu_us_per_ack", "client CPU per acked echo (us)", "lower"),
    ("echo", "acks_per_s", "acks per second", "higher"),
    ("echo", "recorder_share", "recorder's share of the client's CPU", "info"),
    ("echo", "gc_share", "cyclic GC's share of the client's CPU", "info"),
    ("churn", "connects_per_s", "connects per second (churn)", "higher"),
    ("churn", "connect_ms_p50", "connect p50 (ms)", "lower"),
    ("churn", "disconnect_ms_p50", "disconnect p50 (ms, timed separately)", "lower"),
    ("churn", "cpu_us_per_cycle", "client CPU per churn cycle (us)", "lower"),
    ("idle", "rss_per_conn_kb", "RSS per idle connection (KB)", "lower"),
    ("idle", "idle_cores", "CPU while holding them (cores)", "lower"),
    ("idle", "cpu_us_per_conn_s", "CPU per idle connection-second (us)", "lower"),
)
#: the clients lean is compared with, each a column of ratios
RIVALS = ("locust", "artillery")


def summarize(measurements: list[dict], phases: list[str]) -> list[dict]:
    """One row per metric: the median of each client over its repeats, and lean's advantage over each rival.

    An advantage is "times better for lean" (> 1: lean wins): the rival's
    median over lean's for lower-is-better metrics, lean's over the rival's
    otherwise; None for shares and where a median is missing.
    """
    rows = []
    for phase, key, label, better in METRICS:
        if phase not in phases:
            continue
        medians: dict[str, float | None] = {}
        for client in CLIENTS:
            values = [m[key] for m in measurements if m["phase"] == phase and m["client"] == client
                      and m.get(key) is not None]
            medians[client] = statistics.median(values) if values else None
        row: dict[str, Any] = {"phase": phase, "metric": key, "label": label, **medians,
                               "n": len([m for m in measurements if m["phase"] == phase and m["client"] == "lean"])}
        lean = medians["lean"]
        for rival in RIVALS:
            other = medians[rival]
            ratio = None
            if lean and other and better != "info":
                ratio = other / lean if better == "lower" else lean / other
            row[f"lean_vs_{rival}"] = ratio
        rows.append(row)
    return rows


def summarize_reply(measurements: list[dict]) -> dict[str, Any] | None:
    """Medians of each style's CPU per round trip and round trips/s, and request's CPU over call's."""
    runs = [m for m in measurements if m["phase"] == "reply"]
    if not runs:
        return None
    summary: dict[str, Any] = {"n": len(runs) // len(REPLY_STYLES)}
    for style in REPLY_STYLES:
        for key in ("cpu_us_per_round_trip", "round_trips_per_s"):
            summary[f"{style}_{key}"] = _median([m[key] for m in runs if m["client"] == style and m.get(key)])
    call, request = summary["call_cpu_us_per_round_trip"], summary["request_cpu_us_per_round_trip"]
    summary["request_over_call"] = request / call if call and request else None
    return summary


def format_reply(summary: dict[str, Any]) -> str:
    lines = [f"{'style':10} {'CPU us per round trip':>22} {'round trips/s':>14}", "-" * 48]
    for style in REPLY_STYLES:
        cpu, rate = summary[f"{style}_cpu_us_per_round_trip"], summary[f"{style}_round_trips_per_s"]
        lines.append(f"{style:10} {cpu or float('nan'):22.1f} {rate or float('nan'):14.0f}")
    ratio = summary["request_over_call"]
    lines.append(f"request / call, CPU per round trip: {ratio:.3f}" if ratio else "request / call: n/a")
    return "\n".join(lines)


def summarize_floor(measurements: list[dict]) -> list[dict]:
    """Per server of the floor phase: median p50/p99/p99.9 and acks/s over the repeats."""
    rows = []
    for server in dict.fromkeys(m["server"] for m in measurements if m["phase"] == "floor"):
        runs = [m for m in measurements if m["phase"] == "floor" and m["server"] == server]
        row: dict[str, Any] = {"server": server, "n": len(runs)}
        for key in ("p50_ms", "p99_ms", "p999_ms", "acks_per_s"):
            row[key] = _median([m[key] for m in runs if m.get(key) is not None])
        rows.append(row)
    return rows


def format_floor(rows: list[dict]) -> str:
    lines = [f"{'server':14} {'p50':>9} {'p99':>9} {'p99.9':>9} {'acks/s':>9}", "-" * 54]
    for row in rows:
        cells = [("n/a" if row[k] is None else f"{row[k]:.3f}") for k in ("p50_ms", "p99_ms", "p999_ms")]
        rate = "n/a" if row["acks_per_s"] is None else f"{row['acks_per_s']:,.0f}"
        lines.append(f"{row['server']:14} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9} {rate:>9}")
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    def fmt(row: dict, value: float | None) -> str:
        if value is None:
            return "n/a"
        if row["metric"].endswith("_share"):
            return f"{value:.1%}"
        if abs(value) < 1:
            return f"{value:.3f}"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"

    def times(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}x"

    lines = [f"{'metric':40} {'lean':>9} {'locust':>9} {'artillery':>9} {'vs locust':>10} {'vs artillery':>12}",
             "-" * 94]
    for row in rows:
        if row["metric"].endswith("_share"):  # what a client's CPU went to: not compared
            cells = [fmt(row, row[c]) if row[c] is not None else "" for c in CLIENTS] + ["", ""]
        else:
            cells = [fmt(row, row[c]) for c in CLIENTS] + [times(row[f"lean_vs_{r}"]) for r in RIVALS]
        lines.append(f"{row['label']:40} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9} {cells[3]:>10} {cells[4]:>12}")
    lines.append("(vs: how many times better lean is; CPU per ack: the rival's over lean's)")
    return "\n".join(lines)


def verdicts(rows: list[dict], reply: dict[str, Any] | None = None) -> list[tuple[str, bool]]:
    by_key = {row["metric"]: row for row in rows}
    out = []
    if reply is not None and reply["request_over_call"] is not None:
        ratio = reply["request_over_call"]
        out.append((f"request() client CPU per round trip <= {TARGET_REQUEST_CPU_RATIO:g}x call()'s "
                    f"(request/call = {ratio:.3f})", ratio <= TARGET_REQUEST_CPU_RATIO))
    if row := by_key.get("cpu_us_per_ack"):
        for rival, name, goal in (("locust", "Locust's SocketIOUser", TARGET_CPU_RATIO),
                                  ("artillery", "Artillery's socketio engine", TARGET_CPU_RATIO_ARTILLERY)):
            ratio = row[f"lean_vs_{rival}"]
            if ratio is not None:
                out.append((f"lean client CPU per ack <= 1/{goal:g} of {name}'s (lean/{rival} = {1 / ratio:.3f}, "
                            f"{ratio:.2f}x cheaper)", ratio >= goal))
    if (row := by_key.get("recorder_share")) and row["lean"] is not None:
        out.append((f"recorder <= {TARGET_RECORDER_SHARE:.0%} of the lean client's CPU ({row['lean']:.1%})",
                    row["lean"] <= TARGET_RECORDER_SHARE))
    if (row := by_key.get("rss_per_conn_kb")) and row["lean"] is not None:
        out.append((f"lean client <= {TARGET_IDLE_KB:g} KB per idle connection ({row['lean']:.1f} KB)",
                    row["lean"] <= TARGET_IDLE_KB))
    if (row := by_key.get("cpu_us_per_conn_s")) and row["lean"] is not None:
        out.append((f"lean client <= {TARGET_IDLE_US_PER_CONN_S:g} us of CPU per idle connection-second, i.e. "
                    f"10,000 connections in <= {TARGET_IDLE_US_PER_CONN_S * 0.01:.2f} core "
                    f"({row['lean']:.2f} us: {row['lean'] * 0.01:.3f} core)", row["lean"] <= TARGET_IDLE_US_PER_CONN_S))
    return out


def parent_main(args: argparse.Namespace) -> int:
    from sioharness.bench.cell import core_split
    from sioharness.bench.own_app import app_targets, launch_command
    from target_app.calibration import launch_calibration
    from target_app.process import launch_target

    plan: Plan = args.plan
    target_cores, loadgen_cores = core_split()
    print(f"plan: {plan}")
    if target_cores and loadgen_cores:  # core_split pins both or neither
        print(f"pinning: target on core {target_cores[0]}, load generator on core {loadgen_cores[0]}")
    else:
        print("pinning: unavailable (fewer than 2 cores or no taskset); figures will be noisier")
    if args.artillery_cmd:
        print(f"artillery: {' '.join(args.artillery_cmd)} (echo phase)")
    else:
        print(f"artillery: not measured: {args.artillery_missing}")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-loadgen-target-"))
    # Room for every idle connection and the /stats requests beside them.
    target_args = ["--log-level", "warning", "--max-connections", str(max(10_000, plan.idle_connections + 1_000)),
                   "--ping-interval", f"{plan.idle_ping_s:g}"]
    measurements: list[dict] = []
    with contextlib.ExitStack() as stack:
        target = launch_target("gevent", "dev", log_path=log_dir / "target.log", cpu_affinity=target_cores,
                               extra_args=target_args)
        stack.callback(target.stop)
        idle_target = target
        if "idle" in args.phase_list and args.idle_target != "gevent-dev":
            mode, _, server = args.idle_target.partition("-")
            idle_target = launch_target(mode, server, log_path=log_dir / "idle-target.log",
                                        cpu_affinity=target_cores, extra_args=target_args)
            stack.callback(idle_target.stop)
        calibration = None
        if "floor" in args.phase_list:
            calibration = launch_calibration(log_path=log_dir / "calibration.log", cpu_affinity=target_cores,
                                             extra_args=["--ping-interval", f"{plan.idle_ping_s:g}"])
            stack.callback(calibration.stop)
        classic = None
        if "reply" in args.phase_list:
            [spec] = app_targets(f"{REPO / 'examples' / 'classic' / 'app.py'}:socketio", modes=["gevent"],
                                 nodelay=True)
            classic = launch_command(spec, log_path=log_dir / "classic.log", cpu_affinity=target_cores,
                                     app_info=log_dir / "classic.json")
            stack.callback(classic.stop)

        def measure(repeat: int, phase: str, client: str, server: Any, label: str) -> None:
            if phase != "reply":  # the classic app has no /stats
                wait_target_idle(server)
            started = time.monotonic()
            if client == "artillery":
                result = artillery.measure_echo(
                    args.artillery_cmd, server.url, users=plan.users, payload_bytes=plan.payload_bytes,
                    warmup_s=plan.warmup_s, window_s=plan.window_s, cores=loadgen_cores, stats=server.stats)
                result.update(phase=phase, client=client)
            else:
                result = run_child(args, phase, client, server.url, loadgen_cores)
            result.update(repeat=repeat, server=label)
            measurements.append(result)
            shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()
                     if k not in ("phase", "client", "repeat", "server")}
            print(f"  [{repeat + 1}/{plan.repeats}] {phase:5} {client if phase != 'floor' else label:11} "
                  f"{time.monotonic() - started:5.1f} s {json.dumps(shown)}", flush=True)

        for repeat in range(plan.repeats):
            for phase in args.phase_list:
                if phase == "floor":
                    for label in FLOOR_SERVERS:  # interleaved: calibration, target, calibration, ...
                        measure(repeat, phase, "lean", calibration if label == "calibration" else target,
                                "calibration" if label == "calibration" else "gevent-dev")
                    continue
                if phase == "reply":
                    for style in REPLY_STYLES:  # interleaved: call, request, call, ...
                        measure(repeat, phase, style, classic, "classic-gevent")
                    continue
                for client in args.client_list:  # interleaved: A B C A B C ...
                    if client not in PHASE_CLIENTS[phase]:
                        continue
                    server = idle_target if phase == "idle" else target
                    measure(repeat, phase, client, server, f"{server.mode}-{server.server}")
    rows = summarize(measurements, args.phase_list)
    if rows:
        print()
        print(f"medians over {plan.repeats} repeat(s); ratios are of medians")
        print(format_table(rows))
    if "floor" in args.phase_list:
        print()
        print(f"latency floor: lean EchoUser, {plan.floor_users} users x {plan.floor_rate:g} echoes/s, "
              f"ack latency (ms), medians over {plan.repeats} repeat(s)")
        print(format_floor(summarize_floor(measurements)))
    reply = summarize_reply(measurements)
    if reply is not None:
        print()
        print(f"reply: {plan.users} lean users on examples/classic (gevent, TCP_NODELAY), my_event timed two ways, "
              f"medians over {plan.repeats} repeat(s)")
        print(format_reply(reply))
    checks = verdicts(rows, reply)
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    if args.quick:
        print("(--quick: short windows and few connections; a smoke check, not a measurement)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"plan": vars(plan), "measurements": measurements, "summary": rows,
                                         "floor": summarize_floor(measurements), "reply": reply}, indent=2))
    failures = sum(m.get("failures") or 0 for m in measurements)
    if failures:
        print(f"note: {failures} failed requests across measurements")
    if args.check and not all(ok for _, ok in checks):
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
