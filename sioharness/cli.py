"""``sioharness COMMAND [ARGS]``: every runner of the harness under one console script.

Each command runs a module as ``python -m MODULE`` would, with the same
arguments and exit status, so an installed harness needs no checkout and a
checkout's ``python -m`` commands stay equivalent.
"""
from __future__ import annotations

import runpy
import sys

#: command -> (module run as __main__, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("sioharness.bench", "compare async modes (or your app's) on a profile, then write the reports"),
    "ab": ("sioharness.bench.ab", "same-runner A/B of two revisions or configurations, with a verdict per metric"),
    "capacity": ("sioharness.bench.capacity", "the most clients each async mode serves within an SLO"),
    "check": ("sioharness.bench.check", "a run against thresholds and a baseline (exit 1 on a failure)"),
    "ui": ("sioharness.bench.ui", "a target and the Locust web UI with the Socket.IO page"),
    "record": ("sioharness.bench.record", "serve your app with a recorder; every session into a trace"),
    "generate": ("loadtests.generate", "a locustfile from a recorded trace or a browser's HAR"),
    "report": ("reports", "the reports of a run folder (Markdown, HTML, plots)"),
    "fidelity": ("reports.fidelity", "a replay's trace against its recording"),
    "target": ("target_app", "the reference Flask-SocketIO server"),
    "params": ("sioharness.core.load_params", "the load parameters: defaults, bounds, where each is set"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
    return (f"usage: sioharness COMMAND [ARGS ...]\n\ncommands:\n{rows}\n\n"
            "`sioharness COMMAND --help` shows a command's options.")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"sioharness: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = COMMANDS[name][0]
    sys.argv = [f"sioharness {name}", *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
