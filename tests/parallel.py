"""Run the test suite as several pytest processes at once, split by file.

``python -m tests.parallel [--jobs N] [-- PYTEST_ARGS ...]`` collects the test
files PYTEST_ARGS select, splits them into N shares of about equal time
(each file's time is the sum of its selected tests' times in
``tests/test_seconds.json``, written by ``--write-times``; a test not listed
counts as the median), runs one ``pytest`` per share
and prints each share's output when it ends. The exit status is the worst
share's. Every test still runs, in its own file's order, and no assertion
changes; only files run side by side.

Why not pytest-xdist: its workers talk to the controller over threads,
which gevent's monkey-patching (locust imports it) stalls ("LoopExit").

Most of the suite's time is waiting (loads that run for seconds, servers
starting, deadlines), not CPU: on a 2-core machine the load average of a
serial run stays below 1. Tests that run load pin nothing to a share and
assert behaviour, not timings, so sharing the cores does not change what
they check (``make test-stress`` runs them with a core kept busy too).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from sioharness.core.children import dies_with_parent

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TIMES = TESTS / "test_seconds.json"
DEFAULT_JOBS = 3
#: each share's own deadline by default: longer than the serial suite, so a hung share cannot hang a run
DEFAULT_DEADLINE_S = 45 * 60
#: a module's ``pytestmark`` or a test's decorator that names the ``alone`` marker
_ALONE = re.compile(r"^(pytestmark\s*=.*\bpytest\.mark\.alone\b|\s*@pytest\.mark\.alone\b)", re.MULTILINE)
_DURATION = re.compile(r"^([0-9.]+)s (?:call|setup|teardown)\s+(\S+::\S+)")


def collect(pytest_args: Sequence[str]) -> dict[str, list[str]]:
    """file -> its selected test ids, in collection order."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *pytest_args], cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode not in (0, 5):  # 5: nothing collected
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(done.returncode)
    files: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        if "::" in line:
            files.setdefault(line.split("::", 1)[0], []).append(line.strip())
    return files


def known_seconds() -> dict[str, float]:
    try:
        data = json.loads(TIMES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def split(files: dict[str, list[str]], seconds: dict[str, float], jobs: int) -> list[list[str]]:
    """Longest file first into the share with the least time so far (each share keeps collection order)."""
    default = statistics.median(seconds.values()) if seconds else 1.0
    cost = {name: sum(seconds.get(test, default) for test in tests) for name, tests in files.items()}
    shares: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(max(1, min(jobs, len(files))))]
    for name in sorted(files, key=lambda f: -cost[f]):
        total, members = min(shares, key=lambda share: share[0])
        shares.remove((total, members))
        shares.append((total + cost[name], [*members, name]))
    order = {name: i for i, name in enumerate(files)}
    return [sorted(members, key=order.__getitem__) for _, members in shares if members]


def seconds_per_test(output: str) -> dict[str, float]:
    """Per-test seconds (setup + call + teardown) from pytest's ``--durations=0`` lines."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        match = _DURATION.match(line.strip())
        if match:
            found[match[2]] = round(found.get(match[2], 0.0) + float(match[1]), 2)
    return found


def runs_alone(path: Path) -> bool:
    """Whether a test file asks for the machine to itself (``pytest.mark.alone``): it runs after the shares."""
    try:
        return _ALONE.search(path.read_text(encoding="utf-8")) is not None
    except OSError:
        return False


def wait_and_report(name: str, process: subprocess.Popen[str], log: IO[str], t0: float, deadline: float,
                    measured: dict[str, float]) -> int:
    """Wait for one pytest (ended at the deadline), print its output, and keep its tests' times; its status."""
    try:
        code = process.wait(timeout=max(1.0, deadline - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
        print(f"tests.parallel: {name} passed the {deadline:g} s deadline and was ended "
              "(its output below ends where it hung)")
    log.seek(0)
    output = log.read()
    measured.update(seconds_per_test(output))
    lines = [line for line in output.splitlines() if not _DURATION.match(line.strip())]
    print(f"\n===== {name} (exit {code}) =====")
    print("\n".join(lines), flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.parallel", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("TEST_JOBS", DEFAULT_JOBS)),
                        help=f"pytest processes at once (default {DEFAULT_JOBS}, or $TEST_JOBS)")
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE_S, metavar="SECONDS",
                        help=f"end a share still running after this long, as failed (default {DEFAULT_DEADLINE_S:g})")
    parser.add_argument("--write-times", action="store_true",
                        help=f"merge each test's measured seconds into {TIMES.name}")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="pytest's arguments, after --")
    args = parser.parse_args(argv)
    pytest_args = [a for a in args.pytest_args if a != "--"] if args.pytest_args[:1] == ["--"] else args.pytest_args
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    files = collect(pytest_args)
    if not files:
        print("tests.parallel: no tests selected")
        return 5
    alone = [name for name in files if runs_alone(REPO / name)]
    shares = split({name: tests for name, tests in files.items() if name not in alone}, known_seconds(), args.jobs)
    selected = [a for a in pytest_args if not (a.endswith(".py") or "::" in a or a.rstrip("/").endswith("tests"))]
    t0 = time.monotonic()
    print(f"tests.parallel: {len(files) - len(alone)} files in {len(shares)} pytest processes"
          + (f", then {len(alone)} alone ({', '.join(Path(a).name for a in alone)})" if alone else ""), flush=True)
    codes: list[int] = []
    measured: dict[str, float] = {}
    # The shares at once; then the files that need the machine to themselves, in one pytest.
    phases = [[(f"share {i + 1} of {len(shares)}", members) for i, members in enumerate(shares)]]
    if alone:
        phases.append([("alone", alone)])
    for phase in phases:
        with contextlib.ExitStack() as logs:
            running = []
            for name, members in phase:
                log = logs.enter_context(tempfile.TemporaryFile(mode="w+"))
                # A share dies with this runner (Ctrl-C, a CI timeout), and the share's own tests end theirs.
                argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--durations=0",
                        "--durations-min=0", *selected, *members]
                running.append((name, subprocess.Popen(dies_with_parent(argv), cwd=REPO, stdout=log,
                                                       stderr=subprocess.STDOUT, text=True), log))
            for name, process, log in running:
                codes.append(wait_and_report(name, process, log, t0, args.deadline, measured))
    print(f"\ntests.parallel: {len(codes)} pytest processes in {time.monotonic() - t0:.0f} s; exit statuses "
          f"{', '.join(map(str, codes))}")
    if args.write_times:  # the times of the tests that ran are real even when a share failed
        measured = known_seconds() | measured
        TIMES.write_text(json.dumps(dict(sorted(measured.items())), indent=1) + "\n", encoding="utf-8")
    # 5 (nothing collected in one share) is not a failure when others ran tests
    failures = [c for c in codes if c not in (0, 5)]
    return max(failures) if failures else (0 if 0 in codes else 5)


if __name__ == "__main__":
    sys.exit(main())
