"""The target's ``--gc`` setting: how its cyclic garbage collector runs, and ``--gc-log``.

============================  ===========================================================
``default``                   CPython's own collector, untouched (thresholds 700, 10, 10)
``freeze``                    ``gc.collect()`` then ``gc.freeze()`` once the app is built:
                              what start-up allocated is never scanned again
``off``                       ``gc.disable()``: no automatic collections (memory held in
                              reference cycles is never freed)
``thresholds:A[,B[,C]]``      ``gc.set_threshold(A, B, C)``
============================  ===========================================================

Only the standard library is imported at module level: settings are parsed
before eventlet or gevent monkey-patch.
"""
from __future__ import annotations

import gc
import sys
from dataclasses import dataclass

GC_MODES: tuple[str, ...] = ("default", "freeze", "off")
THRESHOLDS = "thresholds"
#: the largest threshold accepted: beyond it a generation is never collected in a run
MAX_THRESHOLD = 100_000_000
GC_HELP = "default, freeze, off, or thresholds:A[,B[,C]]"


@dataclass(frozen=True)
class GcSetting:
    """One ``--gc`` value, parsed."""

    mode: str = "default"
    #: gc.set_threshold's arguments (``thresholds`` mode only)
    thresholds: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> GcSetting:
        """``default``, ``freeze``, ``off`` or ``thresholds:700,10,10``; ValueError in one line otherwise."""
        value = text.strip().lower()
        if value in GC_MODES:
            return cls(value)
        name, sep, numbers = value.partition(":")
        if name != THRESHOLDS or not sep:
            raise ValueError(f"gc must be {GC_HELP}, got {text!r}")
        try:
            thresholds = tuple(int(n) for n in numbers.split(","))
        except ValueError:
            raise ValueError(f"gc thresholds must be 1 to 3 integers such as thresholds:700,10,10, "
                             f"got {text!r}") from None
        if not 1 <= len(thresholds) <= 3 or not all(1 <= t <= MAX_THRESHOLD for t in thresholds):
            raise ValueError(f"gc thresholds must be 1 to 3 integers 1..{MAX_THRESHOLD:,} such as "
                             f"thresholds:700,10,10 (--gc off disables collection), got {text!r}")
        return cls(THRESHOLDS, thresholds)

    def __str__(self) -> str:
        if self.mode == THRESHOLDS:
            return f"{THRESHOLDS}:{','.join(map(str, self.thresholds))}"
        return self.mode

    @property
    def variant(self) -> str:
        """The cell-name variant: ``""`` for the default, ``gc-freeze``, ``gc-off``, ``gc-t700-10-10``."""
        if self.mode == "default":
            return ""
        if self.mode == THRESHOLDS:
            return "gc-t" + "-".join(map(str, self.thresholds))
        return f"gc-{self.mode}"

    def apply(self) -> None:
        """Set this process's collector as the setting says (call once the app is built)."""
        if self.mode == "freeze":
            gc.collect()
            gc.freeze()
        elif self.mode == "off":
            gc.disable()
        elif self.mode == THRESHOLDS:
            gc.set_threshold(*self.thresholds)


def configure_gc(setting: str, gc_log: str | None) -> None:
    """Apply ``--gc``, then record pauses into ``--gc-log`` when given; exit 2 when it cannot be written."""
    GcSetting.parse(setting).apply()
    if not gc_log:
        return
    from sioharness.core.gc_pauses import record_gc_pauses

    try:
        record_gc_pauses(gc_log)
    except OSError as exc:
        print(f"target_app: cannot write the GC log {gc_log}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(2) from None
