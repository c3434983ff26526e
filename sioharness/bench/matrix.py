"""``python -m sioharness.bench``: run a profile's matrix of async modes and scenarios.

Each cell runs one after another into ``results/<run-id>/<cell>/``; a failed
cell is marked failed and the rest still run. At the end the reports are
built and a ranked table is printed. Ctrl-C (or SIGTERM) ends the cell in
flight, marks it partial, and still reports what was measured.

``--target-url URL`` loads a server that is already running instead of
starting targets (repeat it for several instances); a URL outside loopback is
refused unless ``--i-own-this-host`` says the user owns that host.

Your own app (docs/own-app.md): ``--locustfile FILE --user CLASS`` runs your
user classes, ``--target-cmd "python app.py --port {port} --async-mode {mode}"``
with ``--modes threading,gevent`` starts your server for each cell, one per
mode, and ``--target-pid PID`` samples a server you started (``--target-url``).

Exit status (sioharness/core/exit_codes.py): 0 all cells ok, 1 some cell failed, 2 bad
arguments or profile, 4 no cell measured anything (every connect or call
failed), 130 interrupted.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence, TextIO
from urllib.parse import urlsplit

from loadtests.runtime.instances import parse_target_urls
from loadtests.runtime.recorder import ResultsFolderError, check_results_folder
from loadtests.wire.safety import ALLOW_FLAG, require_loopback
from reports.launch import build_reports
from sioharness.bench.cell import CellPlan, CellResult, run_cell
from sioharness.bench.cell_status import LiveFigures
from sioharness.bench.locustfile_check import LocustfileError, check_user_classes
from sioharness.bench.own_app import (
    READY_TIMEOUT_S,
    TargetCommandError,
    add_app_arguments,
    app_arguments_error,
    check_target_pid,
    targets_of_app_arguments,
)
from sioharness.bench.profile import ExternalTarget, Profile, ProfileError, Scenario, command_targets, load_profile
from sioharness.bench.signals import interrupt_on_signals
from sioharness.core.exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOTHING_MEASURED,
    EXIT_OK,
)
from sioharness.core.files import write_json
from sioharness.core.load_params import add_load_options, given_load_options
from sioharness.core.paths import HARNESS_LOCUSTFILE, RESULTS_ROOT
from sioharness.core.run_dirs import RunDirError, claim_run_dir

EXIT_FAILED_CELL, EXIT_USAGE = EXIT_FAILED, EXIT_BAD_INPUT
#: lines of a failed cell's reason (a target's log tail) the progress output repeats
MAX_REASON_LINES = 12
DEFAULT_RESULTS = RESULTS_ROOT


class ProgressLine:
    """One line per cell, rewritten in place on a terminal, every few seconds elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_print = 0.0

    def update(self, prefix: str, elapsed: float, total: float, live: LiveFigures | None) -> None:
        figures = f"requests {live.requests:,} ({live.rps:,.0f}/s)  failures {live.failures:,}" if live else "starting"
        line = f"{prefix}  {elapsed:5.1f}s/{total:.0f}s  {figures}"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
        elif time.monotonic() - self._last_print >= 4.0:
            self._last_print = time.monotonic()
            print(line, file=self.stream, flush=True)

    def run(self, plan: CellPlan, prefix: str, interrupted: threading.Event | None = None) -> CellResult:
        """Run one cell with its progress on this line; the line ends with the cell's outcome."""
        duration = plan.scenario.load.duration_s

        def on_progress(elapsed: float, live: LiveFigures | None) -> None:
            self.update(prefix, elapsed, duration, live)

        result = run_cell(plan, interrupted=interrupted, on_progress=on_progress)
        self.done(prefix, result)
        return result

    def done(self, prefix: str, result: CellResult) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        figures = f"{result.requests:,} requests, {result.failures:,} failures" if result.requests is not None else ""
        status = result.status.upper() if result.status != "ok" else "ok"
        lines = (result.reason or "").splitlines()
        tail = f": {lines[0]}" if lines else ""
        print(f"{prefix}  {status} in {result.elapsed_s:.1f}s  {figures}{tail}", file=self.stream, flush=True)
        # A target that did not start says why in its log's last lines: show them here too.
        for line in lines[1:][-MAX_REASON_LINES:]:
            print(f"    {line}", file=self.stream, flush=True)
        self._last_print = 0.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sioharness.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", help="shipped profile name (quick, full) or a TOML file")
    parser.add_argument("--targets", help="comma-separated subset, e.g. gevent-dev,asgi-uvicorn")
    parser.add_argument("--scenarios", help="comma-separated subset of the profile's scenarios")
    parser.add_argument("--gc", metavar="SETTING[,SETTING]",
                        help="run each cell once per garbage-collector setting of the reference target "
                             "(default, freeze, off, thresholds:A,B,C), replacing the profile's gc list")
    parser.add_argument("--target-url", action="append", default=[], metavar="URL",
                        help="load this already running server instead of starting targets; repeat (or "
                             "comma-separate) for several instances sharing a message queue")
    own = parser.add_argument_group("your own app (docs/own-app.md)")
    own.add_argument("--locustfile", type=Path, help="run the user classes of this locustfile")
    own.add_argument("--user", metavar="CLASS[,CLASS]",
                     help="user classes to run, one scenario each (default: every class of --locustfile)")
    add_app_arguments(own)
    own.add_argument("--target-cmd", metavar="COMMAND",
                     help="start your server for each cell: a command with {port} (and {mode}, {host})")
    own.add_argument("--modes", metavar="MODE[,MODE]",
                     help="one cell per mode: --app's (default threading,eventlet,gevent) or --target-cmd's {mode}")
    own.add_argument("--app-name", default="app", help="the server part of your cells' names (default: app)")
    own.add_argument("--target-timeout", type=float, default=READY_TIMEOUT_S, metavar="SECONDS",
                     help=f"seconds --target-cmd has to open its port (default {READY_TIMEOUT_S:g})")
    own.add_argument("--target-pid", type=int, metavar="PID",
                     help="sample this process tree into server.csv (a server you started, with --target-url)")
    parser.add_argument(ALLOW_FLAG, dest="i_own_this_host", action="store_true",
                        help="allow a --target-url outside loopback: only for a host you own")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results root (default ./results)")
    parser.add_argument("--run-id", help="run folder name (default: <date>-<time>-<profile>)")
    parser.add_argument("--reference", help="reference target for ratios (default: the profile's)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin target and load generator to separate cores")
    parser.add_argument("--no-report", action="store_true", help="skip building the reports")
    parser.add_argument("--target-arg", action="append", default=[], metavar="ARG",
                        help="extra flag for every target (repeatable), e.g. --target-arg=--threads=4")
    add_load_options(parser, title="override every scenario's load (each a profile [load] key)")
    return parser


def split_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def unreachable(url: str, timeout_s: float = 3.0) -> str | None:
    """Why a TCP connection to ``url``'s host and port fails, or None when one opens.

    One probe before the first cell: a wrong port would otherwise fail every
    cell in turn, each after its full start-up.
    """
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def external_target(args: argparse.Namespace) -> ExternalTarget | None:
    """The ``--target-url`` servers, checked: loopback only unless ``--i-own-this-host``."""
    if not args.target_url:
        return None
    try:
        urls = parse_target_urls(",".join(args.target_url))
        for url in urls:
            require_loopback(url, allow_remote=args.i_own_this_host)
    except ValueError as exc:  # UnsafeTargetError is one
        raise ProfileError(str(exc).replace("--target-urls", "--target-url")) from None
    if args.targets:
        raise ProfileError("--targets and --target-url exclude each other: the runner starts targets, or loads yours")
    if args.target_cmd:
        raise ProfileError("--target-cmd and --target-url exclude each other: the runner starts your app, or loads "
                           "the one you started")
    for url in urls:
        if (refusal := unreachable(url)) is not None:
            raise ProfileError(f"--target-url {url}: nothing answers there ({refusal}); start your server first")
    pids: tuple[int, ...] = ()
    if args.target_pid is not None:
        try:
            pids = (check_target_pid(args.target_pid),)
        except ValueError as exc:
            raise ProfileError(str(exc)) from None
    return ExternalTarget(urls, pids=pids)


def own_app_scenarios(args: argparse.Namespace, profile: Profile) -> tuple[Scenario, ...] | None:
    """Scenarios from ``--locustfile``/``--user``: one per user class, on the profile's ``[load]``."""
    if args.locustfile is None and not args.user:
        return None
    if args.scenarios:
        raise ProfileError("--scenarios picks the profile's scenarios; with --locustfile/--user, --user picks classes")
    locustfile = args.locustfile.resolve() if args.locustfile else HARNESS_LOCUSTFILE
    try:
        users = check_user_classes(locustfile, split_list(args.user) or [])
    except LocustfileError as exc:
        raise ProfileError(str(exc)) from None
    own = args.locustfile.resolve() if args.locustfile else None
    return tuple(Scenario.of_user(user, profile.base_load, own) for user in users)


def resolve_profile(args: argparse.Namespace) -> Profile:
    profile = load_profile(args.profile)
    try:
        profile = profile.with_overrides(targets=split_list(args.targets), scenarios=split_list(args.scenarios),
                                         gc=split_list(args.gc), **given_load_options(args))
    except ValueError as exc:
        raise ProfileError(str(exc)) from None
    if args.target_pid is not None and not args.target_url:
        raise ProfileError("--target-pid samples a server you started: give its --target-url too")
    if (args.modes or args.app_name != "app") and not (args.target_cmd or args.app):
        raise ProfileError("--modes and --app-name go with --app or --target-cmd (how the runner starts your app)")
    if (problem := app_arguments_error(args)) is not None:
        raise ProfileError(problem)
    if args.app and (args.target_url or args.targets):
        raise ProfileError("--app excludes --target-url and --targets: the runner serves your app")
    if profile.gc != ("default",) and (args.target_url or args.target_cmd or args.app):
        raise ProfileError("GC settings (--gc, the profile's gc list) apply to the targets the runner starts, "
                           "not to --target-url or --target-cmd servers")
    external = external_target(args)
    if external is not None:
        profile = replace(profile, targets=(external,), reference=None)
    if args.target_cmd:
        if args.targets:
            raise ProfileError("--targets and --target-cmd exclude each other: the reference targets, or your app")
        targets = command_targets(args.target_cmd, split_list(args.modes), args.app_name, args.target_timeout)
        profile = replace(profile, targets=targets, reference=None)  # ratios against the best-ranked mode
    elif args.app:
        try:
            targets = targets_of_app_arguments(args, split_list(args.modes))
        except TargetCommandError as exc:
            raise ProfileError(str(exc)) from None
        profile = replace(profile, targets=targets, reference=None)
    scenarios = own_app_scenarios(args, profile)
    if scenarios is not None:
        profile = replace(profile, scenarios=scenarios)
        try:
            profile = profile.with_overrides(**given_load_options(args))
        except ValueError as exc:
            raise ProfileError(str(exc)) from None
    else:
        _check_profile_locustfiles(profile)
    return profile


def _check_profile_locustfiles(profile: Profile) -> None:
    """A profile's own locustfile and user classes, checked before any target starts."""
    wanted: dict[Path, list[str]] = {}
    for scenario in profile.scenarios:
        if scenario.locustfile is not None and scenario.user:
            wanted.setdefault(scenario.locustfile, []).append(scenario.user)
    for locustfile, users in wanted.items():
        try:
            check_user_classes(locustfile, users)
        except LocustfileError as exc:
            raise ProfileError(str(exc)) from None


def run_matrix(profile: Profile, run_dir: Path, *, pin: bool = True, target_args: Sequence[str] = (),
               out: TextIO = sys.stdout, interrupted: threading.Event | None = None,
               i_own_this_host: bool = False) -> list[CellResult]:
    interrupted = interrupted or threading.Event()
    cells = profile.cell_runs()
    progress = ProgressLine(out)
    results: list[CellResult] = []
    for index, (target, scenario, gc) in enumerate(cells, 1):
        if interrupted.is_set():
            break
        plan = CellPlan(run_id=run_dir.name, target=target, scenario=scenario, run_dir=run_dir,
                        target_args=target_args, pin_cores=pin, i_own_this_host=i_own_this_host,
                        extra_run_info={"profile": profile.name}, gc=gc)
        results.append(progress.run(plan, f"[{index}/{len(cells)}] {plan.cell}", interrupted))
        write_json(run_dir / "run-index.json", {
            "run_id": run_dir.name, "profile": profile.name, "reference": profile.reference,
            "cells": [{"cell": r.cell, "status": r.status, "reason": r.reason} for r in results],
            "complete": len(results) == len(cells) and not interrupted.is_set(),
        })
    return results


def print_ranking(run_dir: Path, out: TextIO) -> None:
    compare_md = run_dir / "compare.md"
    if compare_md.is_file():
        print("\n" + compare_md.read_text(), file=out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        profile = resolve_profile(args)
    except ProfileError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reference = args.reference or profile.reference
    try:
        run_dir = claim_run_dir(args.results, args.run_id, profile.name)
        check_results_folder(run_dir)
    except (RunDirError, ResultsFolderError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if profile.source:
        shutil.copy(profile.source, run_dir / "profile.toml")

    cells = profile.cell_runs()
    gc_part = f" x {len(profile.gc)} GC settings" if len(profile.gc) > 1 else ""
    print(f"bench: profile {profile.name!r}: {len(cells)} cells "
          f"({len(profile.targets)} targets x {len(profile.scenarios)} scenarios{gc_part}), "
          f"about {profile.estimated_seconds() / 60:.1f} min; results in {run_dir}", flush=True)
    # A signal ends the cell in flight; the reports are built all the same, and a second Ctrl-C
    # while they build changes nothing more (no traceback, no half report).
    with interrupt_on_signals("bench", "ending the cell in flight, then reporting") \
            as interrupted:
        results = run_matrix(profile, run_dir, pin=not args.no_pin, target_args=args.target_arg,
                             interrupted=interrupted, i_own_this_host=args.i_own_this_host)
        if not args.no_report and results:
            print("bench: building reports", flush=True)
            build_reports([run_dir], reference=reference)
            print_ranking(run_dir, sys.stdout)
            report = run_dir / "compare.html"
            if report.is_file():
                print(f"bench: report: {report}")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        print(f"bench: {len(failed)} of {len(results)} cells failed: {', '.join(r.cell for r in failed)}",
              file=sys.stderr)
    if interrupted.is_set():
        return EXIT_INTERRUPTED
    if results and all(r.measured_nothing for r in results):
        return EXIT_NOTHING_MEASURED
    return EXIT_FAILED_CELL if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
