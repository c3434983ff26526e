"""Atomic file writes: a reader (or a killed writer) never leaves half a file."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: attempts at a fresh temporary name before giving up (each name is 64 random bits)
TEMP_ATTEMPTS = 100


def temp_path(path: Path) -> Path:
    """A new, empty temporary file for ``path``: hidden, in the same folder, created here.

    The name is random and the file is created exclusively without following
    links (``O_EXCL | O_NOFOLLOW``), so a link planted in a results folder (a
    downloaded CI artifact) under a name the writer might use cannot make it
    write elsewhere: a taken name is skipped, never opened.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(TEMP_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))  # the umask applies, as for a plain open
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name for {path} after {TEMP_ATTEMPTS} attempts")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write (an empty file of ours); on success it becomes ``path``,
    on failure it is removed."""
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
