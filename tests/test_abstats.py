"""sioharness.bench.abstats: the paired interval and the A/B verdict, on synthetic runs with a known shift and noise."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sioharness.bench.abstats import (
    Better,
    Comparison,
    SequentialJudge,
    Verdict,
    compare,
    interleaved_order,
    look_alpha,
    look_schedule,
    render_markdown,
    signed_rank_cut,
)


def runs(seed: int, shift: float, cv: float, n: int) -> tuple[list[float], list[float]]:
    """n A runs around 100 and n B runs around 100 * shift, lognormal noise with the given CV."""
    rng = np.random.default_rng(seed)
    sigma = math.sqrt(math.log1p(cv**2))
    a = 100 * np.exp(rng.normal(0, sigma, n))
    b = 100 * shift * np.exp(rng.normal(0, sigma, n))
    return a.tolist(), b.tolist()


def test_ci_contains_true_ratio_and_is_reproducible() -> None:
    a, b = runs(1, 1.2, 0.02, 8)
    c = compare("latency p99", a, b, better="lower")
    assert c.ci_low <= 1.2 <= c.ci_high
    assert c.ci_low <= c.ratio <= c.ci_high
    ratios = np.log(np.asarray(b)) - np.log(np.asarray(a))
    walsh = [(ratios[i] + ratios[j]) / 2 for i in range(8) for j in range(i, 8)]
    assert c.ratio == pytest.approx(float(np.exp(np.median(walsh))))  # Hodges-Lehmann
    assert c.change == pytest.approx(c.ratio - 1)
    assert c.verdict == "slower"
    assert compare("latency p99", a, b, better="lower") == c


def sequential(seed: int, shift: float, cv: float, *, first: int = 7, most: int = 15) -> Comparison:
    """One metric judged as ``bench.ab`` judges it with a budget: looks at the schedule, first verdict kept."""
    a, b = runs(seed, shift, cv, most)
    judge = SequentialJudge(tolerance=0.05)
    for pairs in look_schedule(first, most):
        if judge.look({"cpu": ("lower", a[:pairs], b[:pairs])}):
            break
    return judge.comparisons()[0]


@pytest.mark.parametrize("cv", [0.01, 0.03, 0.05])
def test_a_vs_a_is_no_change_only_inside_the_band_and_rarely_a_false_alarm(cv: float) -> None:
    judged = [sequential(seed, 1.0, cv) for seed in range(200)]
    verdicts = [c.verdict for c in judged]
    for c in judged:
        if c.verdict == "no change":
            assert c.ci_low >= 0.95 and c.ci_high <= 1.05, c.describe()
    # A median of 7-15 runs can sit 7% off by chance: the looks together keep a false "slower"
    # (or "faster") to at most 2.5% of A-vs-A comparisons, as designed.
    assert verdicts.count("slower") <= 5 and verdicts.count("faster") <= 5, verdicts
    if cv == 0.01:
        assert set(verdicts) == {"no change"}  # runs that can tell say so


@pytest.mark.parametrize("cv", [0.01, 0.03, 0.05, 0.2])
@pytest.mark.parametrize("shift", [0.90, 1.10])
def test_a_ten_percent_shift_is_never_no_change(shift: float, cv: float) -> None:
    verdicts = [sequential(seed, shift, cv).verdict for seed in range(200)]
    assert "no change" not in verdicts, verdicts
    wrong_way = "faster" if shift > 1 else "slower"
    assert wrong_way not in verdicts, verdicts


def test_a_ten_percent_regression_is_caught_within_fifteen_pairs_at_moderate_noise() -> None:
    verdicts = [sequential(seed, 1.10, 0.03).verdict for seed in range(100)]
    assert verdicts.count("slower") >= 95, verdicts


def test_ten_percent_faster_is_detected() -> None:
    verdicts = [compare("cpu", *runs(seed, 0.90, 0.03, 8), better="lower").verdict for seed in range(10)]
    assert verdicts.count("faster") >= 9, verdicts


def test_higher_is_better_flips_the_verdict() -> None:
    a, b = runs(3, 1.10, 0.03, 8)
    assert compare("cpu", a, b, better="lower").verdict == "slower"
    more = compare("acks/s", a, b, better="higher")
    assert more.verdict == "faster"
    assert more.ratio > 1  # the ratio itself is not flipped
    assert compare("acks/s", b, a, better="higher").verdict == "slower"


def test_small_consistent_shift_is_no_change_within_the_tolerance() -> None:
    a, b = runs(4, 1.02, 0.002, 8)
    c = compare("cpu", a, b, better="lower")
    assert c.ci_low > 1  # real, but the whole interval lies within the 5% tolerance
    assert c.verdict == "no change"


def test_a_wide_interval_is_inconclusive_and_says_how_far_it_reaches() -> None:
    a, b = runs(5, 1.10, 0.6, 8)
    c = compare("cpu", a, b, better="lower")
    assert c.ci_low < 1 < c.ci_high and c.verdict == "inconclusive"
    assert c.worst_change == pytest.approx(c.ci_high - 1)
    md = render_markdown([c], a_label="A", b_label="B")
    assert f"could not rule out {c.worst_change:+.0%} in cpu" in md.splitlines()[0]
    # Higher is better: the worst open change is the low end, a loss.
    acks = compare("acks/s", b, a, better="higher")
    assert acks.verdict == "inconclusive" and acks.worst_change == pytest.approx(acks.ci_low - 1)
    assert acks.worst_change < 0
    assert f"could not rule out {acks.worst_change:+.0%} in acks/s" in render_markdown([acks], a_label="A",
                                                                                     b_label="B")


def test_too_few_pairs_for_the_confidence_are_inconclusive_not_a_guess() -> None:
    # 5 pairs: even B above A in every pair happens by chance 1 time in 32, more than 2.5%.
    a, b = [1.0, 1.01, 0.99, 1.02, 1.0], [2.0, 2.1, 1.9, 2.05, 2.0]
    c = compare("cpu", a, b, better="lower")
    assert (c.ci_low, c.ci_high) == (0.0, math.inf)
    assert c.verdict == "inconclusive" and math.isinf(c.detectable)
    assert "could not rule out any change in cpu" in render_markdown([c], a_label="A", b_label="B")
    assert compare("cpu", [*a, 0.98], [*b, 2.02], better="lower").verdict == "slower"


def test_pairs_cancel_what_both_runs_of_a_pair_shared() -> None:
    """A machine that drifts 30% between pairs hides a 10% change from unpaired runs, not from pairs."""
    rng = np.random.default_rng(11)
    drift = np.exp(rng.normal(0, 0.3, 12))
    a = (100 * drift * np.exp(rng.normal(0, 0.01, 12))).tolist()
    b = (110 * drift * np.exp(rng.normal(0, 0.01, 12))).tolist()
    c = compare("cpu", a, b, better="lower")
    assert c.verdict == "slower" and c.ci_low > 1.05, c.describe()
    with pytest.raises(ValueError, match="runs come in pairs"):
        compare("cpu", a, b[:-1], better="lower")


def test_signed_rank_cuts_match_the_published_tables() -> None:
    # Two-sided 5% critical values of the signed-rank statistic (the largest still rejected).
    assert [signed_rank_cut(n, 0.05) for n in (6, 7, 8, 9, 10, 12, 15, 20)] == [0, 2, 3, 5, 8, 13, 25, 52]
    assert signed_rank_cut(5, 0.05) is None
    assert signed_rank_cut(6, 0.025) is None and signed_rank_cut(7, 0.025) == 0


def test_the_looks_spend_no_more_than_alpha() -> None:
    assert sum(look_alpha(j) for j in range(1, 10_000)) < 0.05
    assert look_schedule(7, 30) == [7, 9, 12, 15, 19, 24, 30]
    assert look_schedule(7, 7) == [7]


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ([1.0], [1.0, 2.0], "at least 2"),
        ([1.0, 2.0], [1.0, float("nan")], "not finite"),
        ([1.0, float("inf")], [1.0, 2.0], "not finite"),
        ([1.0, 0.0], [1.0, 2.0], "not positive"),
        ([1.0, 2.0], [-1.0, 2.0], "not positive"),
    ],
)
def test_bad_input_names_the_metric(a: list[float], b: list[float], why: str) -> None:
    with pytest.raises(ValueError, match=f"server CPU.*{why}"):
        compare("server CPU", a, b, better="lower")


def test_interleaved_order() -> None:
    assert interleaved_order(3) == ["A", "B", "B", "A", "A", "B"]
    assert interleaved_order(4) == ["A", "B", "B", "A", "A", "B", "B", "A"]
    assert interleaved_order(0) == []
    order = interleaved_order(7)
    assert order.count("A") == order.count("B") == 7


def fixed(metric: str, ratio: float, verdict: Verdict, better: Better = "lower") -> Comparison:
    return Comparison(metric, better, (1.0, 1.0), (ratio, ratio), ratio, ratio - 0.02, ratio + 0.02, verdict)


def test_describe() -> None:
    c = fixed("server CPU per 1k acks", 1.11, "slower")
    assert c.describe() == "server CPU per 1k acks: 1.11x (95% CI 1.09-1.13), slower"


def test_render_markdown() -> None:
    comps = [
        fixed("server CPU per 1k acks", 1.11, "slower"),
        fixed("p99 ms", 1.01, "no change"),
        fixed("acks/s", 0.99, "no change", "higher"),
        fixed("connects/s", 1.0, "no change", "higher"),
    ]
    md = render_markdown(comps, a_label="main", b_label="pr-42")
    lines = md.splitlines()
    assert lines[0] == "pr-42 is slower on 1 of 4 metrics; 3 of 4 no change within 5%"
    assert "| metric | main median | pr-42 median | ratio | 95% CI | verdict | main spread | pr-42 spread |" in lines
    assert "| server CPU per 1k acks | 1 | 1.11 | 1.11x | 1.09-1.13 | **slower** | 0.0% | 0.0% |" in lines
    assert sum(line.startswith("| ") for line in lines) == 5
    assert "**no change**" not in md


def test_render_markdown_headlines() -> None:
    quiet = [fixed("a", 1.0, "no change"), fixed("b", 1.01, "no change")]
    assert render_markdown(quiet, a_label="A", b_label="B").splitlines()[0] == "2 of 2 no change within 5%"
    wide = Comparison("c", "lower", (1.0, 1.0), (1.12, 1.12), 1.12, 0.87, 1.43, "inconclusive")
    mixed = [fixed("a", 0.8, "faster"), fixed("b", 1.2, "slower"), wide]
    assert render_markdown(mixed, a_label="A", b_label="B").splitlines()[0] == (
        "B is slower on 1 of 3 metrics, faster on 1 of 3 metrics; "
        "1 of 3 inconclusive (could not rule out +43% in c)"
    )
