"""Statistics for a same-runner A/B benchmark comparison.

Base revision A and head revision B are each run several times on the same
machine, interleaved (:func:`interleaved_order`), and every metric is then
compared with :func:`compare`: the ratio of medians B/A with a percentile
bootstrap 95% confidence interval, and a verdict.

Why medians: a benchmark run occasionally hits a hiccup (a GC pause, a noisy
neighbour); the median of a handful of runs shrugs off one such outlier where
the mean does not. Why a ratio: metrics have different units and scales, and
"1.11x" reads the same for CPU seconds and for p99 milliseconds. Why the
bootstrap: with 5-10 runs per side nothing about the distribution is known,
and resampling makes no assumption about it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import numpy as np

Better = Literal["lower", "higher"]
Verdict = Literal["faster", "slower", "no change", "too noisy"]


@dataclass(frozen=True)
class Comparison:
    """One metric of an A/B comparison.

    ``ratio`` is median(B) / median(A) whatever ``better`` says, so "1.10x"
    always means B measured 10% more; ``verdict`` is what interprets it.
    """

    metric: str
    better: Better
    a_values: tuple[float, ...]
    b_values: tuple[float, ...]
    ratio: float
    ci_low: float
    ci_high: float
    verdict: Verdict
    # The tolerance the verdict was judged with, so a report can say "no change beyond 5%".
    tolerance: float = 0.05

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

    def describe(self) -> str:
        """One line, e.g. ``server CPU per 1k acks: 1.11x (95% CI 1.07-1.15), slower``."""
        return f"{self.metric}: {self.ratio:.2f}x (95% CI {self.ci_low:.2f}-{self.ci_high:.2f}), {self.verdict}"


def _values(metric: str, side: str, values: Iterable[float]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values], dtype=float)
    if arr.size < 2:
        raise ValueError(f"{metric}: need at least 2 values for {side}, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{metric}: {side} has a value that is not finite: {arr.tolist()}")
    if not np.all(arr > 0):
        raise ValueError(f"{metric}: {side} has a value that is not positive: {arr.tolist()}")
    return arr


def compare(
    metric: str,
    a: Sequence[float],
    b: Sequence[float],
    *,
    better: Better,
    tolerance: float = 0.05,
    resamples: int = 10_000,
    seed: int = 0,
    max_ci_width: float = 0.5,
) -> Comparison:
    """Compare one metric of A (base) and B (head) runs.

    The ratio is median(B) / median(A). Its 95% CI is a percentile bootstrap:
    A and B are resampled independently with replacement ``resamples`` times
    (all at once, as index matrices of shape ``(resamples, n)``), the ratio of
    medians is taken for each resample, and the CI is the 2.5th and 97.5th
    percentiles of those ratios. ``seed`` makes the CI reproducible.

    Verdict rule, checked in this order:

    1. "too noisy" when the CI is wider than ``max_ci_width`` relative to the
       ratio, ``(ci_high - ci_low) / ratio > max_ci_width``: the runs cannot
       tell even a large change from none, so neither verdict is claimed.
    2. B measured more when **both** the CI lies wholly above 1.0
       (``ci_low > 1``) **and** the point estimate is beyond the tolerance
       (``ratio > 1 + tolerance``); B measured less when ``ci_high < 1`` and
       ``ratio < 1 - tolerance``. "More" is "slower" for ``better="lower"``
       (CPU, latency) and "faster" for ``better="higher"`` (throughput), and
       the other way round for "less".
    3. Otherwise "no change".

    Why both conditions: "CI excludes 1" alone is a ~5% test, and with 5-6
    runs per side at 5% noise a point estimate beyond 5% alone happens by
    chance in 1 comparison of 5-8; together they keep A vs A false alarms
    at 4% or less. The tolerance also keeps a tiny but consistent shift (1%, say from
    the runner's state) from earning a verdict. The CI is not required to lie
    wholly beyond ``1 + tolerance``: that would miss most 10% shifts at 5 runs
    per side.

    What it catches (lognormal noise, 400 synthetic pairs each): a 10% shift
    at 3% CV is flagged ~96% of the time with 5 runs per side, ~99% with 6;
    at 5% CV only ~63% with 5 runs, ~78% with 6, ~87% with 8 and ~93% with
    10. That is the limit of medians of so few runs, not of the rule: at 5%
    noise, run 8-10 per side.
    """
    if tolerance < 0:
        raise ValueError(f"{metric}: tolerance must be >= 0, got {tolerance}")
    if resamples < 1:
        raise ValueError(f"{metric}: resamples must be >= 1, got {resamples}")
    if better not in ("lower", "higher"):
        raise ValueError(f"{metric}: better must be 'lower' or 'higher', got {better!r}")
    av = _values(metric, "A", a)
    bv = _values(metric, "B", b)

    ratio = float(np.median(bv) / np.median(av))
    rng = np.random.default_rng(seed)
    a_meds = np.median(av[rng.integers(0, av.size, size=(resamples, av.size))], axis=1)
    b_meds = np.median(bv[rng.integers(0, bv.size, size=(resamples, bv.size))], axis=1)
    ci_low, ci_high = (float(x) for x in np.percentile(b_meds / a_meds, [2.5, 97.5]))

    verdict: Verdict
    if (ci_high - ci_low) / ratio > max_ci_width:
        verdict = "too noisy"
    elif ci_low > 1.0 and ratio > 1.0 + tolerance:
        verdict = "slower" if better == "lower" else "faster"
    elif ci_high < 1.0 and ratio < 1.0 - tolerance:
        verdict = "faster" if better == "lower" else "slower"
    else:
        verdict = "no change"
    return Comparison(
        metric=metric,
        better=better,
        a_values=tuple(av.tolist()),
        b_values=tuple(bv.tolist()),
        ratio=ratio,
        ci_low=ci_low,
        ci_high=ci_high,
        verdict=verdict,
        tolerance=tolerance,
    )


def interleaved_order(repeats: int) -> list[str]:
    """Run order for ``repeats`` runs per side: A B B A A B B A ... (ABBA blocks).

    A slow drift across the session (the machine warming up, thermal
    throttling, a cache filling) then lands on both sides alike: running all
    A first and all B after would turn that drift into a fake A/B difference.
    Each consecutive pair holds one A and one B, so any prefix is balanced.
    """
    if repeats < 0:
        raise ValueError(f"repeats must be >= 0, got {repeats}")
    return [run for i in range(repeats) for run in (("A", "B") if i % 2 == 0 else ("B", "A"))]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _headline(comparisons: Sequence[Comparison], b_label: str) -> str:
    n = len(comparisons)
    if n == 0:
        return "no metrics compared"
    counts = {v: sum(c.verdict == v for c in comparisons) for v in ("slower", "faster", "too noisy")}
    parts = [f"{verdict} on {counts[verdict]} of {n} metrics" for verdict in ("slower", "faster") if counts[verdict]]
    if parts:
        line = f"{b_label} is " + ", ".join(parts)
    else:
        line = f"no change beyond {max(c.tolerance for c in comparisons):.0%}"
    if counts["too noisy"]:
        line += f" ({counts['too noisy']} of {n} too noisy to tell)"
    return line


def render_markdown(comparisons: Sequence[Comparison], *, a_label: str, b_label: str) -> str:
    """A headline and a Markdown table, one row per metric; "slower" is bold so a regression stands out."""
    lines = [
        _headline(comparisons, b_label),
        "",
        f"| metric | {_cell(a_label)} median | {_cell(b_label)} median | ratio | 95% CI | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for c in comparisons:
        verdict = f"**{c.verdict}**" if c.verdict == "slower" else c.verdict
        lines.append(
            f"| {_cell(c.metric)} | {c.a_median:.4g} | {c.b_median:.4g} | {c.ratio:.2f}x "
            f"| {c.ci_low:.2f}-{c.ci_high:.2f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"
