"""Number formatting shared by the Markdown and HTML reports."""
from __future__ import annotations

import math
from typing import Any

MISSING = "n/a"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def ms(us: float | None) -> str:
    """Microseconds shown as milliseconds with three decimals: microsecond resolution."""
    return MISSING if us is None or _missing(us) else f"{us / 1000:,.3f}"


def count(n: int | None) -> str:
    return MISSING if n is None or _missing(n) else f"{int(n):,}"


def rate(per_s: float | None) -> str:
    """A per-second rate: one decimal below 1,000, whole numbers above."""
    if per_s is None or _missing(per_s):
        return MISSING
    return f"{per_s:,.0f}" if abs(per_s) >= 1000 else f"{per_s:,.1f}"


def ratio(r: float | None) -> str:
    """A share as a percentage, with enough digits to tell 1 in 100,000 from zero."""
    if r is None or _missing(r):
        return MISSING
    if r == 0:
        return "0%"
    return f"{r * 100:.4f}%" if abs(r) < 0.001 else f"{r * 100:.2f}%"


def seconds(s: float | None, digits: int = 3) -> str:
    return MISSING if _missing(s) else f"{s:,.{digits}f}"


def mib(b: float | None) -> str:
    return MISSING if b is None or _missing(b) else f"{b / 2**20:,.1f} MiB"


def kib(b: float | None) -> str:
    return MISSING if b is None or _missing(b) else f"{b / 1024:,.1f} KiB"


def times(x: float | None) -> str:
    """A ratio against a reference cell: ``1.25x``."""
    return MISSING if _missing(x) else f"{x:,.2f}x"


def number(v: float | None) -> str:
    if v is None or _missing(v):
        return MISSING
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.3g}"


def figure_value(path: list[str], value: float | None) -> str:
    """A figure's value with the unit its summary key implies (``_us``, ``_per_s``, ``_bytes``)."""
    last = path[-1] if path else ""
    if last.endswith("_us"):
        return f"{ms(value)} ms"
    if last.endswith("_per_s"):
        return f"{rate(value)}/s"
    if last.endswith("_bytes"):
        return kib(value)
    return number(value)


def primary(figure: dict[str, Any] | None) -> str:
    """The primary figure with its unit: ``echo p99 1.234 ms``."""
    if not figure:
        return MISSING
    return f"{figure['label']} {figure_value(figure['path'], figure.get('value'))}"
