"""Run a command while other processes keep CPU cores busy, as on a shared CI runner.

``python -m tests.busy_core [--cores N] [--max-s S] -- COMMAND ...`` starts N
spinning processes (one by default, on a 2-core machine half of it), runs
COMMAND, then ends the spinners it started, by their PIDs. Each spinner also
ends by itself after ``--max-s`` seconds, so none outlives a killed parent for
long. The exit status is COMMAND's.

``make test-stress`` runs the slow tests this way: a test that passes only on
an idle machine is tied to a guess about timing, not to what it observes.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Sequence

#: A spinner's own deadline (seconds): longer than any suite run, short enough to end by itself.
DEFAULT_MAX_S = 3 * 3600
SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def start_spinners(cores: int, max_s: float) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", SPIN, str(max_s)]) for _ in range(cores)]


def stop(spinners: list[subprocess.Popen[bytes]]) -> None:
    for spinner in spinners:
        spinner.kill()
    for spinner in spinners:
        spinner.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.busy_core", description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=1, help="how many cores to keep busy (default 1)")
    parser.add_argument("--max-s", type=float, default=DEFAULT_MAX_S, help="each spinner's own deadline, seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name the command to run after --")
    if args.cores < 1:
        parser.error(f"--cores must be >= 1, got {args.cores}")
    if not args.max_s > 0:
        parser.error(f"--max-s must be > 0, got {args.max_s}")
    spinners = start_spinners(args.cores, args.max_s)
    print(f"busy_core: {args.cores} spinning process(es), pids {[s.pid for s in spinners]}", file=sys.stderr)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130
    finally:
        stop(spinners)


if __name__ == "__main__":
    sys.exit(main())
