"""The harness's commands, and how a hint names one: ``sioharness COMMAND`` installed, ``python -m MODULE`` in a
checkout.

An installed harness runs from a user's project, which may have a ``reports`` or ``loadtests`` package of its
own: there ``python -m reports`` would run the project's, so hints name the console script.
"""
from __future__ import annotations

import shlex

from sioharness.core.paths import CHECKOUT

#: command -> (module run as __main__, what it does); the ``sioharness`` console script dispatches on it
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


def command_line(command: str, *args: str, installed: bool | None = None) -> str:
    """The shell line that runs ``command`` with ``args``, as this harness is run (``installed`` overrides)."""
    if installed is None:
        installed = CHECKOUT is None
    head = ["sioharness", command] if installed else ["python", "-m", COMMANDS[command][0]]
    return shlex.join([*head, *args])
