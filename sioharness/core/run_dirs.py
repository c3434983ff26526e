"""A run's folder, ``results/<run-id>/``: inside the results root, and never shared by two runs.

A run id is one path component of letters, digits, ``.``, ``_`` and ``-``
(no ``..``, no leading dot), so ``--run-id ../../x`` or a profile named
``../x`` cannot write outside the results root. Without ``--run-id`` the id
is the time and the kind of run; a second run started in the same second
gets ``-2``, ``-3`` ..., taken atomically by ``mkdir``, so neither fails.
"""
from __future__ import annotations

import re
from pathlib import Path

from sioharness.core.runinfo import new_run_id

MAX_RUN_ID = 120
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
#: same-second runs tried before giving up (each a suffix of the time-based id)
MAX_SAME_SECOND = 1000


class RunDirError(ValueError):
    """A run id or results folder a run cannot use; the message names it."""


def check_run_id(run_id: str) -> str:
    """``run_id`` when it names one folder inside the results root; RunDirError saying why not."""
    if not run_id or len(run_id) > MAX_RUN_ID or not _RUN_ID.fullmatch(run_id):
        raise RunDirError(f"run id {run_id[:MAX_RUN_ID]!r}: use 1-{MAX_RUN_ID} letters, digits, '.', '_' or '-', "
                          f"not starting with '.' (it names one folder under the results root)")
    return run_id


def claim_run_dir(results: Path, run_id: str | None, kind: str) -> Path:
    """Create and return ``results/<run-id>``: the given id's (which must hold no results yet) or a new one."""
    if run_id is not None:
        path = results / check_run_id(run_id)
        if path.is_dir() and any(path.iterdir()):
            raise RunDirError(f"{path} already holds results; choose another --run-id")
        path.mkdir(parents=True, exist_ok=True)
        return path
    base = check_run_id(new_run_id(kind))
    results.mkdir(parents=True, exist_ok=True)
    for n in range(1, MAX_SAME_SECOND + 1):
        path = results / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunDirError(f"{results}: {MAX_SAME_SECOND} runs named {base} already; choose a --run-id")
