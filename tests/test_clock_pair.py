"""An open-model slot moves from the perf clock to the wall clock with a pair of reads of one instant."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtests import socketio_user
from loadtests.socketio_user import PAIR_SLACK_NS, clock_pair_ns


def _clocks(monkeypatch: pytest.MonkeyPatch, perf: list[int], wall: list[int]) -> None:
    perf_reads: Iterator[int] = iter(perf)
    wall_reads: Iterator[int] = iter(wall)
    monkeypatch.setattr(socketio_user, "_now_ns", lambda: next(perf_reads))
    monkeypatch.setattr(socketio_user, "_wall_ns", lambda: next(wall_reads))


def test_a_pause_between_the_reads_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first try: the OS ran something else for 630 us between the perf and the wall read.
    _clocks(monkeypatch, [1_000_000, 1_630_000, 2_000_000, 2_000_400], [5_630_000, 6_000_200])
    assert clock_pair_ns() == (2_000_200, 6_000_200)


def test_a_quiet_pair_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _clocks(monkeypatch, [1_000_000, 1_000_000 + PAIR_SLACK_NS], [9_000_000])
    assert clock_pair_ns() == (1_000_000 + PAIR_SLACK_NS // 2, 9_000_000)


def test_three_tries_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    _clocks(monkeypatch, [0, 100_000, 200_000, 300_000, 400_000, 500_000], [1, 2, 3])
    assert clock_pair_ns() == (450_000, 3)


def test_the_real_clocks_give_a_pair_whose_offset_holds() -> None:
    perf, wall = clock_pair_ns()
    again_perf, again_wall = clock_pair_ns()
    assert again_perf >= perf and abs((again_wall - wall) - (again_perf - perf)) < 5_000_000


def test_an_open_model_emit_is_timed_from_its_slot_and_a_closed_one_from_now(monkeypatch: pytest.MonkeyPatch) -> None:
    _clocks(monkeypatch, [1_000_000, 1_000_000, 1_000_000, 1_000_000], [9_000_000, 9_000_000])
    assert socketio_user.emit_times(400_000, open_model=True) == (8_400_000, 400_000)  # 0.6 ms behind its slot
    assert socketio_user.emit_times(400_000, open_model=False) == (9_000_000, 1_000_000)
