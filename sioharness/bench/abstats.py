"""Statistics for a same-runner A/B benchmark comparison.

Base revision A and head revision B are each run several times on the same
machine, interleaved (:func:`interleaved_order`), and every metric is then
compared with :func:`compare`: a pair's typical ratio B/A, a confidence
interval for it, and a verdict that claims no more than the interval shows.

The runs come in pairs, an A and a B one after the other, and the interval
is built from each pair's ratio (:func:`paired_interval`, the Wilcoxon
signed-rank interval of the log ratios): what the two runs of a pair share,
the machine's state at that moment, cancels out. On this project's 2-core VM
the machine drifted enough that pairing halved the spread of the
difference. The interval is distribution-free: it assumes only that a
pair's log ratio is as likely above its centre as below, so its coverage
holds for 7 pairs as for 30, and one odd pair moves it by one rank, not by
its size. With too few pairs for the confidence asked (5 for 95%), it is
unbounded and the verdict is "inconclusive", never a guess.

Runs that continue until they can tell (:func:`look_alpha`): ``sioharness.bench.ab``
judges after a growing number of pairs and stops when every metric is
decided. Each look spends part of the error rate (``alpha / (j (j + 1))`` at
look ``j``, which sums to ``alpha``), so every interval of every look holds at
once with 95% confidence, and a verdict taken at any look is as sound as a
single fixed-size test's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Literal, Mapping, Sequence

import numpy as np

from sioharness.core.figures import Better

Verdict = Literal["faster", "slower", "no change", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("slower", "faster", "no change", "inconclusive")
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """One metric of an A/B comparison.

    ``ratio`` is a pair's typical B/A (:func:`paired_ratio`) whatever
    ``better`` says, so "1.10x" always means B measured 10% more; it always
    lies inside the interval. ``verdict`` is what interprets it.
    """

    metric: str
    better: Better
    a_values: tuple[float, ...]
    b_values: tuple[float, ...]
    ratio: float
    ci_low: float
    ci_high: float
    verdict: Verdict
    # The tolerance the verdict was judged with, so a report can say "no change within 5%".
    tolerance: float = 0.05
    #: the error rate this interval was built with (less than 5% at later looks of a sequential run)
    alpha: float = DEFAULT_ALPHA

    @property
    def change(self) -> float:
        """``ratio - 1``: +0.10 means B measured 10% more (worse or better depending on ``better``)."""
        return self.ratio - 1.0

    @property
    def a_median(self) -> float:
        return float(np.median(self.a_values))

    @property
    def b_median(self) -> float:
        return float(np.median(self.b_values))

    @property
    def worst_change(self) -> float:
        """The change of the worst regression the interval leaves open, in the metric's own units as a share.

        +0.43: B may measure 43% more of a lower-is-better metric; -0.23: B may
        measure 23% less of a higher-is-better one. Unbounded: +inf, or -1.
        """
        return self.ci_high - 1.0 if self.better == "lower" else self.ci_low - 1.0

    @property
    def worst_regression(self) -> float:
        """The size of :attr:`worst_change` (0.43, 0.23), whichever way is worse for this metric."""
        return abs(self.worst_change)

    @property
    def detectable(self) -> float:
        """About the smallest change these runs could tell from none: the interval's half-width, as a share."""
        if not (self.ci_low > 0 and math.isfinite(self.ci_high)):
            return math.inf
        return math.exp((math.log(self.ci_high) - math.log(self.ci_low)) / 2) - 1.0

    def describe(self) -> str:
        """One line, e.g. ``server CPU per 1k acks: 1.11x (95% CI 1.07-1.15), slower``."""
        return f"{self.metric}: {self.ratio:.2f}x (95% CI {format_interval(self)}), {self.verdict}"


def spread(values: Sequence[float]) -> float:
    """Run-to-run spread of one side: the coefficient of variation (0.05: runs vary by about 5%)."""
    arr = np.asarray(values, dtype=float)
    return float(np.std(arr, ddof=1) / np.mean(arr)) if arr.size >= 2 else math.nan


def format_interval(c: Comparison) -> str:
    high = f"{c.ci_high:.2f}" if math.isfinite(c.ci_high) else "inf"
    return f"{c.ci_low:.2f}-{high}"


def _values(metric: str, side: str, values: Iterable[float]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values], dtype=float)
    if arr.size < 2:
        raise ValueError(f"{metric}: need at least 2 values for {side}, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{metric}: {side} has a value that is not finite: {arr.tolist()}")
    if not np.all(arr > 0):
        raise ValueError(f"{metric}: {side} has a value that is not positive: {arr.tolist()}")
    return arr


@lru_cache(maxsize=None)
def _signed_rank_counts(n: int) -> tuple[int, ...]:
    """How many of the 2**n sign patterns of n pairs give each signed-rank sum W+ (0..n(n+1)/2)."""
    counts = [1]
    for rank in range(1, n + 1):
        # Pair ``rank`` is either negative (W+ unchanged) or positive (W+ grows by its rank).
        grown = [0] * (len(counts) + rank)
        for w, k in enumerate(counts):
            grown[w] += k
            grown[w + rank] += k
        counts = grown
    return tuple(counts)


def signed_rank_cut(n: int, alpha: float) -> int | None:
    """The largest c with P(W+ <= c) <= alpha / 2 when B and A do not differ; None when even W+ = 0 is likelier."""
    counts = _signed_rank_counts(n)
    total = 2**n
    cumulative, cut = 0, None
    for c, k in enumerate(counts):
        cumulative += k
        if cumulative / total > alpha / 2:
            break
        cut = c
    return cut


def walsh_averages(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted means of every two pairs' log ratios (each pair with itself too)."""
    d = np.log(b) - np.log(a)
    upper = np.triu_indices(d.size)
    return np.sort(((d[:, None] + d[None, :]) / 2)[upper])


def paired_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """A pair's typical ratio B/A: the Hodges-Lehmann estimate, the median of the Walsh averages."""
    return float(np.exp(np.median(walsh_averages(a, b))))


def paired_interval(a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[float, float]:
    """A (1 - alpha) interval for the ratio B/A from pairs of runs made side by side (Wilcoxon signed rank).

    Each pair's log ratio ``log b_i - log a_i`` cancels what the two runs of a
    pair shared (the machine's state at that moment); the Walsh averages of
    those log ratios are sorted and the interval runs from the (c+1)-th
    smallest to the (c+1)-th largest, c being the signed-rank cut for
    ``alpha``. With too few pairs for ``alpha`` it is ``(0, inf)``: nothing
    can be ruled out.
    """
    cut = signed_rank_cut(a.size, alpha)
    if cut is None:
        return 0.0, math.inf
    walsh = walsh_averages(a, b)
    return float(np.exp(walsh[cut])), float(np.exp(walsh[walsh.size - 1 - cut]))


def look_alpha(look: int, alpha: float = DEFAULT_ALPHA) -> float:
    """The error rate spent at the ``look``-th judgement (1-based) of a sequential run: the sum over all is alpha."""
    if look < 1:
        raise ValueError(f"look must be >= 1, got {look}")
    return alpha / (look * (look + 1))


def look_schedule(first: int, most: int) -> list[int]:
    """Pairs after which a sequential run judges: ``first``, then about a quarter more each time, up to ``most``.

    Looking after every pair would spend the error rate on looks that add
    little; growing steps keep the later intervals narrow.
    """
    if first < 2:
        raise ValueError(f"the first look needs at least 2 pairs, got {first}")
    looks = [first]
    while looks[-1] < most:
        looks.append(min(most, max(looks[-1] + 1, math.ceil(looks[-1] * 1.25))))
    return looks


def judge_interval(ratio: float, ci_low: float, ci_high: float, better: Better, tolerance: float) -> Verdict:
    """What an interval shows, and no more.

    - "no change": the whole interval lies inside ``1 +/- tolerance`` (an
      equivalence test: any change there may be, is smaller than that);
    - B measured more when the whole interval lies above 1 and the ratio is
      beyond the tolerance ("slower" when lower is better, "faster" when
      higher is); less when the interval lies below 1 and the ratio is
      beyond the tolerance on that side;
    - otherwise "inconclusive": the runs could not rule out a change the
      size of the interval's far end.
    """
    if 1.0 - tolerance <= ci_low and ci_high <= 1.0 + tolerance:
        return "no change"
    if ci_low > 1.0 and ratio > 1.0 + tolerance:
        return "slower" if better == "lower" else "faster"
    if ci_high < 1.0 and ratio < 1.0 - tolerance:
        return "faster" if better == "lower" else "slower"
    return "inconclusive"


def compare(
    metric: str,
    a: Sequence[float],
    b: Sequence[float],
    *,
    better: Better,
    tolerance: float = 0.05,
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """Compare one metric of pairs of A (base) and B (head) runs: typical ratio, interval, verdict.

    ``a[i]`` and ``b[i]`` are the runs of pair i, made one after the other.
    The interval is :func:`paired_interval` at ``alpha`` (a sequential run
    passes :func:`look_alpha` of its look); the verdict is
    :func:`judge_interval`. Why the ratio must also pass the tolerance for
    "slower": a tiny but consistent shift (1%, say from the runner's state)
    does not earn a verdict; with more runs its interval narrows into the
    band and it becomes "no change".
    """
    if tolerance < 0:
        raise ValueError(f"{metric}: tolerance must be >= 0, got {tolerance}")
    if not 0 < alpha < 1:
        raise ValueError(f"{metric}: alpha must be in (0, 1), got {alpha}")
    if better not in ("lower", "higher"):
        raise ValueError(f"{metric}: better must be 'lower' or 'higher', got {better!r}")
    av = _values(metric, "A", a)
    bv = _values(metric, "B", b)
    if av.size != bv.size:
        raise ValueError(f"{metric}: runs come in pairs, got {av.size} for A and {bv.size} for B")
    ratio = paired_ratio(av, bv)
    ci_low, ci_high = paired_interval(av, bv, alpha)
    return Comparison(
        metric=metric,
        better=better,
        a_values=tuple(av.tolist()),
        b_values=tuple(bv.tolist()),
        ratio=ratio,
        ci_low=ci_low,
        ci_high=ci_high,
        verdict=judge_interval(ratio, ci_low, ci_high, better, tolerance),
        tolerance=tolerance,
        alpha=alpha,
    )


def pair_order(pair: int) -> tuple[str, str]:
    """The order of the two runs in pair ``pair`` (0-based): A B, then B A, then A B ..."""
    return ("A", "B") if pair % 2 == 0 else ("B", "A")


def interleaved_order(repeats: int) -> list[str]:
    """Run order for ``repeats`` runs per side: A B B A A B B A ... (ABBA blocks).

    A slow drift across the session (the machine warming up, thermal
    throttling, a cache filling) then lands on both sides alike: running all
    A first and all B after would turn that drift into a fake A/B difference.
    Each consecutive pair holds one A and one B, so any prefix is balanced.
    """
    if repeats < 0:
        raise ValueError(f"repeats must be >= 0, got {repeats}")
    return [run for pair in range(repeats) for run in pair_order(pair)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _open_change(c: Comparison, *, named: bool = True) -> str:
    """The worst change an inconclusive interval leaves open: ``+43% in server CPU``, or ``any change``."""
    where = f" in {c.metric}" if named else ""
    if not math.isfinite(c.ci_high) or c.ci_low <= 0:
        return f"any change{where}"
    return f"{c.worst_change:+.0%}{where}"


def _headline(comparisons: Sequence[Comparison], b_label: str) -> str:
    """Every verdict counted, e.g. ``B is slower on 1 of 4 metrics; 2 no change within 5%; 1 inconclusive``."""
    n = len(comparisons)
    if n == 0:
        return "no metrics compared"
    counts = {v: sum(c.verdict == v for c in comparisons) for v in VERDICTS}
    parts = [f"{b_label} is " + ", ".join(f"{v} on {counts[v]} of {n} metrics" for v in ("slower", "faster")
                                          if counts[v])] if counts["slower"] or counts["faster"] else []
    if counts["no change"]:
        tolerance = max(c.tolerance for c in comparisons if c.verdict == "no change")
        parts.append(f"{counts['no change']} of {n} no change within {tolerance:.0%}")
    if counts["inconclusive"]:
        worst = max(comparisons, key=lambda c: c.worst_regression if c.verdict == "inconclusive" else -1.0)
        parts.append(f"{counts['inconclusive']} of {n} inconclusive (could not rule out {_open_change(worst)})")
    return "; ".join(parts)


def render_markdown(comparisons: Sequence[Comparison], *, a_label: str, b_label: str) -> str:
    """A headline and a Markdown table, one row per metric; "slower" is bold so a regression stands out."""
    lines = [
        _headline(comparisons, b_label),
        "",
        f"| metric | {_cell(a_label)} median | {_cell(b_label)} median | ratio | 95% CI | verdict "
        f"| {_cell(a_label)} spread | {_cell(b_label)} spread |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for c in comparisons:
        verdict = f"**{c.verdict}**" if c.verdict == "slower" else c.verdict
        if c.verdict == "inconclusive":
            verdict += f" (could not rule out {_open_change(c, named=False)})"
        lines.append(
            f"| {_cell(c.metric)} | {c.a_median:.4g} | {c.b_median:.4g} | {c.ratio:.2f}x "
            f"| {format_interval(c)} | {verdict} | {spread(c.a_values):.1%} | {spread(c.b_values):.1%} |"
        )
    return "\n".join(lines) + "\n"


class SequentialJudge:
    """Judges a growing set of runs at scheduled looks, keeping each metric's first decided verdict.

    With ``sequential=False`` there is one look, at the full ``alpha`` (a
    fixed number of runs). Otherwise look ``j`` spends :func:`look_alpha`, so
    a verdict from any look holds with ``1 - alpha`` confidence overall.
    """

    def __init__(self, *, tolerance: float, alpha: float = DEFAULT_ALPHA, sequential: bool = True) -> None:
        self.tolerance = tolerance
        self.alpha = alpha
        self.sequential = sequential
        self.looks = 0
        self.decided: dict[str, Comparison] = {}
        self.latest: dict[str, Comparison] = {}

    def look(self, values: Mapping[str, tuple[Better, Sequence[float], Sequence[float]]]) -> bool:
        """Judge every undecided metric with at least 2 runs a side; True once every metric is decided."""
        self.looks += 1
        alpha = look_alpha(self.looks, self.alpha) if self.sequential else self.alpha
        for metric, (better, a, b) in values.items():
            if metric in self.decided or len(a) < 2 or len(b) < 2:
                continue
            comparison = compare(metric, a, b, better=better, tolerance=self.tolerance, alpha=alpha)
            self.latest[metric] = comparison
            if comparison.verdict != "inconclusive":
                self.decided[metric] = comparison
        return bool(self.latest) and all(metric in self.decided for metric in self.latest)

    def comparisons(self) -> list[Comparison]:
        """Each metric's decided verdict, or its latest look's when undecided, in the order first seen."""
        return [self.decided.get(metric, latest) for metric, latest in self.latest.items()]

    def undecided(self) -> list[str]:
        return [metric for metric in self.latest if metric not in self.decided]
