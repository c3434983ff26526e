"""bench.abstats: bootstrap ratio-of-medians CI and the A/B verdict, on synthetic runs with a known shift."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.abstats import Better, Comparison, Verdict, compare, interleaved_order, render_markdown


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
    assert c.ratio == pytest.approx(float(np.median(b) / np.median(a)))
    assert c.change == pytest.approx(c.ratio - 1)
    assert c.verdict == "slower"
    assert compare("latency p99", a, b, better="lower") == c


def test_a_vs_a_is_no_change() -> None:
    verdicts = [compare("cpu", *runs(seed, 1.0, 0.03, 6), better="lower").verdict for seed in range(10)]
    assert verdicts.count("no change") >= 9, verdicts


def test_ten_percent_slower_is_detected() -> None:
    verdicts = [compare("cpu", *runs(seed, 1.10, 0.03, 6), better="lower").verdict for seed in range(10)]
    assert verdicts.count("slower") >= 9, verdicts


def test_ten_percent_faster_is_detected() -> None:
    verdicts = [compare("cpu", *runs(seed, 0.90, 0.03, 6), better="lower").verdict for seed in range(10)]
    assert verdicts.count("faster") >= 9, verdicts


def test_higher_is_better_flips_the_verdict() -> None:
    a, b = runs(3, 1.10, 0.03, 6)
    assert compare("cpu", a, b, better="lower").verdict == "slower"
    more = compare("acks/s", a, b, better="higher")
    assert more.verdict == "faster"
    assert more.ratio > 1  # the ratio itself is not flipped
    assert compare("acks/s", b, a, better="higher").verdict == "slower"


def test_small_consistent_shift_is_below_tolerance() -> None:
    a, b = runs(4, 1.02, 0.002, 8)
    c = compare("cpu", a, b, better="lower")
    assert c.ci_low > 1  # real, but within the 5% tolerance
    assert c.verdict == "no change"


def test_very_noisy_pair_is_too_noisy() -> None:
    a, b = runs(5, 1.10, 0.6, 5)
    c = compare("cpu", a, b, better="lower")
    assert (c.ci_high - c.ci_low) / c.ratio > 0.5
    assert c.verdict == "too noisy"


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
    assert lines[0] == "pr-42 is slower on 1 of 4 metrics"
    assert "| metric | main median | pr-42 median | ratio | 95% CI | verdict |" in lines
    assert "| server CPU per 1k acks | 1 | 1.11 | 1.11x | 1.09-1.13 | **slower** |" in lines
    assert sum(line.startswith("| ") for line in lines) == 5
    assert "**no change**" not in md


def test_render_markdown_headlines() -> None:
    quiet = [fixed("a", 1.0, "no change"), fixed("b", 1.01, "no change")]
    assert render_markdown(quiet, a_label="A", b_label="B").splitlines()[0] == "no change beyond 5%"
    mixed = [fixed("a", 0.8, "faster"), fixed("b", 1.2, "slower"), fixed("c", 1.0, "too noisy")]
    assert render_markdown(mixed, a_label="A", b_label="B").splitlines()[0] == (
        "B is slower on 1 of 3 metrics, faster on 1 of 3 metrics (1 of 3 too noisy to tell)"
    )
