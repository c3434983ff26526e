"""Counting a server's instructions with Valgrind's callgrind: start, window, totals, per-function costs.

The server runs under ``valgrind --tool=callgrind --instr-atstart=no``: at
native-like speed (about 5 s to start) until :func:`control` switches
instrumentation on, after the workload's warm-up. The counters are then
zeroed, the measured events sent, and a dump written: its total is the
instructions of exactly that window. ``PYTHONMALLOC=malloc`` lets Valgrind
see every allocation, and ``PYTHONHASHSEED=0`` makes dict and set order
the same from run to run, so two runs of one build differ by about 0.2 %.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

#: the server's environment under callgrind
CALLGRIND_ENV = {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"}
#: how long one callgrind_control command may take (it waits for the server to act on it)
CONTROL_TIMEOUT_S = 60.0

_ANNOTATED_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)\s*$")


class CallgrindError(RuntimeError):
    """Valgrind missing, a control command that failed, or a dump that cannot be read."""


def missing_tools() -> str | None:
    """Why the instruction count cannot run here (a sentence), or None when it can."""
    absent = [tool for tool in ("valgrind", "callgrind_control", "callgrind_annotate") if shutil.which(tool) is None]
    if absent:
        return f"{', '.join(absent)} not found: install Valgrind (apt-get install valgrind)"
    return None


def callgrind_wrapper(out_file: Path) -> list[str]:
    """The command prefix: callgrind, instrumentation off until :func:`control` switches it on.

    ``out_file`` may hold ``%p`` (the pid); each dump adds ``.1``, ``.2`` ... to it.
    """
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}",
            "--quiet"]


def control(pid: int, *args: str, timeout: float = CONTROL_TIMEOUT_S) -> None:
    """Run ``callgrind_control ARGS PID``: ``-i on`` (instrument), ``-z`` (zero), ``-d NAME`` (dump)."""
    try:
        done = subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CallgrindError(f"callgrind_control {' '.join(args)} got no answer from pid {pid} in {timeout:g} s") \
            from None
    if done.returncode != 0 or "OK" not in done.stdout:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise CallgrindError(f"callgrind_control {' '.join(args)} failed for pid {pid}: "
                             f"{detail[-1] if detail else 'no output'}")


def dump_total(path: Path) -> int:
    """The instructions (Ir) a dump holds: its ``summary:`` line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("summary:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError) as exc:
        raise CallgrindError(f"{path.name}: cannot read its total ({exc})") from None
    raise CallgrindError(f"{path.name}: no summary line (the dump is incomplete)")


def self_costs(path: Path) -> dict[str, int]:
    """Instructions spent in each function's own code (not its callees), by ``file:function``."""
    try:
        done = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", str(path)],
                              capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CallgrindError(f"callgrind_annotate {path.name}: {exc}") from None
    if done.returncode != 0:
        raise CallgrindError(f"callgrind_annotate {path.name}: {done.stderr.strip()[-300:]}")
    return parse_annotate(done.stdout)


def parse_annotate(text: str) -> dict[str, int]:
    """``callgrind_annotate``'s function table as {function: instructions}; the totals line left out."""
    costs: dict[str, int] = {}
    for line in text.splitlines():
        match = _ANNOTATED_LINE.match(line)
        if match is None or match.group(2).startswith("PROGRAM TOTALS"):
            continue
        name = short_function(match.group(2))
        costs[name] = costs.get(name, 0) + int(match.group(1).replace(",", ""))
    return costs


def short_function(annotated: str) -> str:
    """``/build/Python/ceval.c:_PyEval_EvalFrameDefault'2 [/lib/libpython3.11.so]`` as
    ``ceval.c:_PyEval_EvalFrameDefault [libpython3.11.so]``: recursion levels as one, folders left out
    (the two sides' builds may sit in different ones)."""
    text = re.sub(r"'\d+(?= |$)", "", annotated.strip())
    where, _, obj = text.partition(" [")
    file, sep, function = where.rpartition(":")
    short = f"{file.rsplit('/', 1)[-1]}{sep}{function}" if sep else where
    return f"{short} [{obj.rstrip(']').rsplit('/', 1)[-1]}]" if obj else short
