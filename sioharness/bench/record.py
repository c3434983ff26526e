"""``python -m sioharness.bench.record``: serve your app unchanged and record every session's Socket.IO traffic.

    python -m sioharness.bench.record --app app.py:socketio --port 5000 --out trace.jsonl

The app runs as ``--app`` runs it (``sioharness/bench/app_launcher.py``, the dev server
of ``--mode``, loopback only), with a recorder inside the server
(``sioharness/bench/trace_recorder.py``): each connect, client event, the emits each
handler made (to the sender, a room, everyone) and each join and leave, one
JSON line each. Drive the app meanwhile (a browser, its own client, a load
run); Ctrl-C, or ``--duration``, ends the recording. ``python -m
loadtests.generate trace.jsonl`` then writes a locustfile from it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sioharness.bench.own_app import APP_MODES, ASGI_MODE, ASGI_SERVER, TargetCommandError, app_targets, launch_command
from sioharness.bench.signals import interrupt_on_signals
from sioharness.bench.trace_recorder import RECORD_ENV, RECORD_MAX_ENV
from sioharness.core.commands import command_line
from sioharness.core.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from sioharness.core.trace_file import TraceError, read_trace
from target_app.process import TargetStartError

DEFAULT_DURATION_S = 600.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sioharness.bench.record", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", required=True, metavar="PATH_OR_MODULE:OBJECT", help="your Flask-SocketIO app")
    parser.add_argument("--mode", default="threading", choices=(*APP_MODES, ASGI_MODE),
                        help="async mode (default threading); asyncio for an ASGI app, served by uvicorn")
    parser.add_argument("--port", type=int, default=0, help="loopback port to serve on (default: a free one)")
    parser.add_argument("--out", type=Path, default=Path("trace.jsonl"), help="the trace (default trace.jsonl)")
    parser.add_argument("--max-records", type=int, default=200_000,
                        help="records kept; later ones are counted as dropped (default 200000)")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_S,
                        help=f"stop recording after this many seconds (default {DEFAULT_DURATION_S:g})")
    parser.add_argument("--app-python", metavar="PYTHON", help="the app's own interpreter (its venv's bin/python)")
    return parser


def summarize(path: Path) -> str:
    """One paragraph on what a trace holds: sessions, events by name, emits by kind."""
    try:
        trace = read_trace(path)
    except TraceError as exc:
        return f"the trace cannot be read: {exc}"
    kinds = Counter(str(r.get("type")) for r in trace.records)
    events = Counter(str(r.get("event")) for r in trace.records if r.get("type") == "event")
    emits = Counter(str(r.get("to")) for r in trace.records if r.get("type") == "emit")
    top = ", ".join(f"{name} {n}" for name, n in events.most_common(8)) or "none"
    return (f"{kinds['connect']} connects, {kinds['event']} client events ({top}), "
            f"{kinds['emit']} emits ({', '.join(f'{k} {n}' for k, n in sorted(emits.items())) or 'none'}), "
            f"{kinds['join']} joins, {kinds['disconnect']} disconnects"
            + (f"; {trace.dropped} records dropped past --max-records" if trace.dropped else ""))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.max_records > 0 and args.duration > 0 and 0 <= args.port < 65536):
        print("sioharness.bench.record: --max-records and --duration must be > 0, --port 0..65535", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        servers = [ASGI_SERVER] if args.mode == ASGI_MODE else ["dev"]
        [spec] = app_targets(args.app, modes=[args.mode], servers=servers, app_python=args.app_python,
                             ready_timeout_s=60)
    except TargetCommandError as exc:
        print(f"sioharness.bench.record: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    env = {RECORD_ENV: str(out), RECORD_MAX_ENV: str(args.max_records)}
    with interrupt_on_signals("sioharness.bench.record", "stopping the app and closing the trace") as interrupted:
        try:
            target = launch_command(spec, log_path=log, port=args.port or None, extra_env=env,
                                    app_info=out.with_suffix(".app.json"))
        except (TargetStartError, OSError) as exc:
            print(f"sioharness.bench.record: the app did not start: {exc} (see {log})", file=sys.stderr)
            return EXIT_FAILED
        print(f"sioharness.bench.record: serving {args.app} ({args.mode}) on {target.url}; drive it now. "
              "Ctrl-C ends the "
              f"recording (at the latest in {args.duration:g} s); the trace goes to {out}", flush=True)
        try:
            deadline = time.monotonic() + args.duration
            while time.monotonic() < deadline and target.alive() and not interrupted.is_set():
                interrupted.wait(0.5)
        finally:
            # SIGINT first: the server ends as on Ctrl-C, and the recorder writes its end record at exit.
            with contextlib.suppress(OSError):
                os.kill(target.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                target.process.wait(timeout=5)
            target.stop(timeout=10)
    if not out.exists():
        print(f"sioharness.bench.record: no trace was written (see {log})", file=sys.stderr)
        return EXIT_FAILED
    print(f"sioharness.bench.record: {summarize(out)}")
    print(f"sioharness.bench.record: next, {command_line('generate', str(out))} > locustfile.py")
    return EXIT_OK  # Ctrl-C is how a recording ends


if __name__ == "__main__":
    sys.exit(main())
