"""Counts the Python lines each function of a server runs in a window (``sioharness.bench.ab --measure instructions``).

Python imports ``sitecustomize`` at start-up; the A/B puts this folder first
on the server's ``PYTHONPATH`` and names the output in ``$SIO_LINE_COUNTS``
(without it, this file does nothing). A trace function is set in every
thread from the start; it counts nothing until SIGUSR1, which zeroes the
counts and writes ``<output>.on``, and SIGUSR2 writes the counts (JSON, by
function) to the output and stops counting. Lines executed are a
deterministic cost, unlike time, so the counts of two revisions name the
functions that do more work. Tracing slows the server several times; the
instruction totals come from separate runs without it. Standard library
only: it runs in the server's interpreter.
"""
from __future__ import annotations

import os


def _install(output: str) -> None:
    import collections
    import json
    import signal
    import sys
    import threading
    from types import CodeType, FrameType
    from typing import Any

    counts: collections.Counter[CodeType] = collections.Counter()
    counting = [False]

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and counting[0]:
            counts[frame.f_code] += 1
        return local

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        return local if counting[0] else None

    def write(path: str, document: Any) -> None:
        temp = f"{path}.{os.getpid()}.part"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        os.replace(temp, path)

    def start(signum: int, frame: Any) -> None:
        counts.clear()
        counting[0] = True
        write(output + ".on", {"pid": os.getpid()})

    def stop(signum: int, frame: Any) -> None:
        counting[0] = False
        functions = [{"file": code.co_filename, "line": code.co_firstlineno,
                      "name": getattr(code, "co_qualname", code.co_name), "lines": n}
                     for code, n in counts.items()]
        write(output, {"pid": os.getpid(), "functions": functions})

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.settrace(on_call)
    threading.settrace(on_call)


if os.environ.get("SIO_LINE_COUNTS"):
    _install(os.environ["SIO_LINE_COUNTS"])
