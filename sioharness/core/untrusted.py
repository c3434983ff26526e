"""Reading files from a results folder, which may be a downloaded CI artifact: trust nothing.

A file is read only when it is a regular file (a FIFO would block the
reader forever, ``/dev/zero`` would fill its memory), only up to a size
bound, and JSON only up to a nesting depth, without NaN or infinities.
Every refusal is an :class:`UntrustedFileError` whose message names what
was wrong, for a one-line error.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

#: the largest JSON document of a results folder read (run.json, summary.json, accounting files)
MAX_JSON_BYTES = 16 * 2**20
#: the deepest nesting accepted (the harness writes at most 5 or 6 levels)
MAX_JSON_DEPTH = 64


class UntrustedFileError(ValueError):
    """A file that is not read as it is; the message says why."""


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path`` (links are followed to one), at most ``max_bytes``.

    OSError when it cannot be opened (missing, no permission).
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedFileError(f"{Path(path).name} is not a regular file")
        if info.st_size > max_bytes:
            raise UntrustedFileError(f"{Path(path).name} is {info.st_size:,} bytes, more than the {max_bytes:,} read")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while being read
        raise UntrustedFileError(f"{Path(path).name} is more than the {max_bytes:,} bytes read")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def parse_json(raw: bytes, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``raw`` as JSON; UntrustedFileError for bad UTF-8 or JSON, NaN/Infinity, or nesting past ``max_depth``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedFileError(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if _depth(text) > max_depth:
        raise UntrustedFileError(f"{what} nests deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise UntrustedFileError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    except (ValueError, RecursionError) as exc:
        raise UntrustedFileError(f"{what}: {exc}") from None


def read_json(path: Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON document in the regular file ``path``, bounded in size and depth (see :func:`parse_json`)."""
    return parse_json(read_bytes(path, max_bytes), Path(path).name, max_depth)


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (checked before parsing, in linear time)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
