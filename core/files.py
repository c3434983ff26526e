"""Atomic file writes: a reader (or a killed writer) never leaves half a file."""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temp_path(path: Path) -> Path:
    """Where ``path`` is written before the rename: hidden, per process, same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path``, on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open()`` for writing that replaces ``path`` only once the file is complete."""
    # A plain open (not mkstemp) so the file gets the umask's usual permissions.
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename); the temp file never stays behind."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically in ``path``'s folder."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write JSON atomically; NaN and infinities are refused rather than written as invalid JSON."""
    text = json.dumps(obj, indent=indent, allow_nan=False, ensure_ascii=False) + "\n"
    write_text(path, text)
