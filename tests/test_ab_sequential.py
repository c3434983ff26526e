"""sioharness.bench.ab's sequential runs, without a server: when pairs stop, and what ab.md says about it."""
from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sioharness.bench import ab
from sioharness.bench.abstats import SequentialJudge

PAIR_S = 20.0  # what one fake run "takes", on the fake clock


class FakeRuns:
    """Stands in for ``run_one_side``: each run adds one value per metric, drawn around a known level."""

    def __init__(self, levels: dict[str, tuple[ab.Better, float, float]], cv: float, seed: int = 0) -> None:
        self.levels = levels  # metric -> (better, A's level, B's level)
        self.cv = cv
        self.rng = np.random.default_rng(seed)
        self.now = 0.0
        self.runs = {"a": 0, "b": 0}

    def __call__(self, side: Any, pair: int, scenario: Any, run_dir: Path, progress: Any, pin: bool,
                 interrupted: threading.Event, measured: ab.Measured) -> None:
        self.now += PAIR_S / 2
        self.runs[side.key] += 1
        sigma = math.sqrt(math.log1p(self.cv**2))
        for metric, (better, a_level, b_level) in self.levels.items():
            level = a_level if side.key == "a" else b_level
            measured.add(metric, side.key, better, float(level * math.exp(self.rng.normal(0, sigma))), pair)


class FakeSide:
    def __init__(self, key: str) -> None:
        self.key, self.failure = key, None


def run(monkeypatch: pytest.MonkeyPatch, fake: FakeRuns, *, budget_s: float, first: int = 7,
        max_pairs: int = 30) -> tuple[ab.Stopping, SequentialJudge]:
    monkeypatch.setattr(ab, "run_one_side", fake)
    judge = SequentialJudge(tolerance=0.05, sequential=budget_s > 0)
    a, b = FakeSide("a"), FakeSide("b")
    run_pair = ab.runs_pair(a, b, None, Path("."), pin=False, interrupted=threading.Event())  # type: ignore[arg-type]
    _, stopping = ab.run_ab(a, b, run_pair, judge=judge,  # type: ignore[arg-type]
                            first_look=first, budget_s=budget_s, max_pairs=max_pairs, clock=lambda: fake.now)
    return stopping, judge


def test_a_clear_regression_stops_at_the_first_look(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns({"cpu": ("lower", 1.0, 1.3), "acks/s": ("higher", 100.0, 77.0)}, cv=0.01)
    stopping, judge = run(monkeypatch, fake, budget_s=300)
    assert stopping.pairs == 7 and stopping.looks == 1
    assert stopping.reason == "every metric decided after 7 pairs"
    assert [c.verdict for c in judge.comparisons()] == ["slower", "slower"]


def test_noise_earns_more_pairs_until_the_verdict_is_decided(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns({"cpu": ("lower", 1.0, 1.10)}, cv=0.04, seed=3)
    stopping, judge = run(monkeypatch, fake, budget_s=600)
    assert stopping.pairs > 7 and stopping.reason.startswith("every metric decided")
    assert judge.comparisons()[0].verdict == "slower"
    assert fake.runs == {"a": stopping.pairs, "b": stopping.pairs}


def test_the_budget_stops_runs_that_cannot_reach_the_next_look(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns({"p99": ("lower", 1.0, 1.0)}, cv=0.5)
    stopping, judge = run(monkeypatch, fake, budget_s=200)
    # 20 s a pair: the looks at 7 (140 s) and 9 (180 s) fit; the one at 12 (240 s) would not.
    assert stopping.pairs == 9 and stopping.elapsed_s <= 200
    assert "could not reach the next look at 12 pairs" in stopping.reason and "undecided: p99" in stopping.reason
    c = judge.comparisons()[0]
    assert c.verdict == "inconclusive"
    notes = ab.stopping_notes([c], stopping)
    assert "9 pairs in 180 s, judged at 2 look(s)" in notes
    assert "**too noisy for the budget:** p99" in notes and "9 pairs could detect" in notes


def test_budget_zero_runs_exactly_the_pairs_asked_and_judges_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns({"p99": ("lower", 1.0, 1.0)}, cv=0.5)
    stopping, judge = run(monkeypatch, fake, budget_s=0, first=8)
    assert (stopping.pairs, stopping.looks) == (8, 1)
    assert stopping.reason == "8 pairs, as asked (--budget 0)"
    assert judge.comparisons()[0].alpha == 0.05


def test_max_pairs_caps_a_generous_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns({"p99": ("lower", 1.0, 1.0)}, cv=0.5)
    stopping, _ = run(monkeypatch, fake, budget_s=10_000, max_pairs=12)
    assert stopping.pairs == 12 and stopping.reason.startswith("--max-pairs 12 reached")


@pytest.mark.parametrize(("args", "message"), [
    (["--repeats", "5"], "--repeats must be >= 6"),
    (["--budget", "-1"], "--budget must be a number of seconds >= 0"),
    (["--budget", "nan"], "--budget must be a number of seconds >= 0"),
    (["--max-pairs", "6"], "--max-pairs (6) must be at least --repeats (7)"),
    (["--tolerance", "1.5"], "--tolerance must be in 0..1"),
])
def test_bad_numbers_are_one_line(args: list[str], message: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert ab.main([*args, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
