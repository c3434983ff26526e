"""Run IdleUsers in a real Locust environment and count what wakes them (a test's subprocess).

``python -m tests.idle_probe URL --users N --window S --stop-timeout T``
prints one JSON line: the users' client counters (wakes, pings answered),
the switches into the users' greenlets during the window (greenlet
tracing: every wake, whatever caused it), the request events by kind, and
how long Locust's stop took. ``--freeze-pid PID`` stops that process
(SIGSTOP) for the window and resumes it after: a server gone silent.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402
import greenlet  # noqa: E402
from locust.env import Environment  # noqa: E402

from loadtests.runtime.options import LoadSettings  # noqa: E402
from loadtests.users import IdleUser  # noqa: E402
from sioharness.core.stats_client import fetch_stats  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    parser.add_argument("--freeze-pid", type=int, default=0)
    args = parser.parse_args(argv)

    settings = LoadSettings(call_timeout=5.0)
    env = Environment(user_classes=[IdleUser], host=args.url, stop_timeout=args.stop_timeout,
                      parsed_options=argparse.Namespace(**vars(settings)))
    requests: Counter[str] = Counter()
    failures: list[str] = []

    def on_request(request_type: str, exception: Any = None, **_: Any) -> None:
        requests[request_type] += 1
        if exception is not None:
            failures.append(f"{request_type}: {exception}")

    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    runner.start(args.users, spawn_rate=args.users)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        users = [g.args[0] for g in runner.user_greenlets]
        if len(users) == args.users and all(u.connected for u in users):
            break
        gevent.sleep(0.05)
    else:
        print(json.dumps({"error": "users did not connect", "failures": failures}), flush=True)
        return 1
    gevent.sleep(0.2)  # let each user settle into its wait

    targets = {g.args[0].greenlet for g in runner.user_greenlets}
    switches = [0]

    def trace(event: str, args: tuple[Any, Any]) -> None:
        if event in ("switch", "throw") and args[1] in targets:
            switches[0] += 1

    before = {u.user_id: (u.client.wakes, u.client.pings) for u in users}
    previous = greenlet.settrace(trace)
    if args.freeze_pid:
        os.kill(args.freeze_pid, signal.SIGSTOP)
    try:
        gevent.sleep(args.window)
    finally:
        if args.freeze_pid:
            os.kill(args.freeze_pid, signal.SIGCONT)
    greenlet.settrace(previous)
    after = {u.user_id: (u.client.wakes, u.client.pings) for u in users if u.client is not None}
    connected = sum(u.connected for u in users)
    gevent.sleep(0.5 if args.freeze_pid else 0)  # a resumed server answers the reconnects
    server_connected = fetch_stats(args.url)["connected"]

    started = time.monotonic()
    runner.stop()
    stop_s = time.monotonic() - started
    result = {
        "users": args.users,
        "connected_at_end": connected,
        "server_connected": server_connected,
        "wakes": sum(after[k][0] - before[k][0] for k in after),
        "pings": sum(after[k][1] - before[k][1] for k in after),
        "switches": switches[0],
        "stop_s": stop_s,
        "requests": dict(requests),
        "failures": failures,
    }
    print(json.dumps(result), flush=True)
    runner.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
