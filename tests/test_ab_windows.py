"""bench.ab's windows method, its pure parts: the window order, a side's figures, the plan's checks, the defaults."""
from __future__ import annotations

import pytest

from sioharness.bench import ab
from sioharness.bench.ab_windows import SideTotals, WindowPlan, window_order
from sioharness.bench.instr_workload import Workload


def test_windows_alternate_forwards_and_backwards_so_each_side_sits_at_the_same_mean_moment() -> None:
    order = window_order(["a", "b"], 4)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert window_order(["a", "b"], 2, pair=1) == ["b", "a", "a", "b"], "the next pair starts where this one ended"
    three = window_order(["a", "b", "c"], 4)
    for side in "abc":
        positions = [i for i, s in enumerate(three) if s == side]
        assert len(positions) == 4 and sum(positions) / 4 == pytest.approx((len(three) - 1) / 2)


def test_a_sides_figures_are_totals_over_its_windows_not_a_mean_of_window_ratios() -> None:
    plan = WindowPlan(Workload())
    totals = SideTotals()
    totals.add(1000, 0.5, 0.4, [0.002] * 990 + [0.010] * 10)
    totals.add(3000, 0.5, 0.9, [0.001] * 3000)
    figures = totals.figures(plan)
    assert figures["server CPU s per 1k acks"] == pytest.approx(1.3 / 4000 * 1000)
    assert figures["acks/s"] == pytest.approx(4000)
    assert figures["echo p50 (us)"] == pytest.approx(1000)
    assert figures["echo p99 (us)"] == pytest.approx(2000)
    assert list(figures) == list(plan.metric_names())
    assert plan.metric_names()["acks/s"] == "higher" and plan.metric_names()["echo p99 (us)"] == "lower"


def test_a_side_without_an_operation_has_no_figures_and_churn_counts_connects() -> None:
    assert SideTotals().figures(WindowPlan(Workload())) == {}
    churn = WindowPlan(Workload(kind="churn"))
    assert list(churn.metric_names())[:2] == ["server CPU s per 1k connects", "connects/s"]


@pytest.mark.parametrize(("field", "value", "flag"), [("clients", 0, "--window-clients"),
                                                      ("windows", 0, "--windows"),
                                                      ("window_s", 0.01, "--window-s"),
                                                      ("warmup_s", -1.0, "--window-warmup")])
def test_a_plan_out_of_range_names_its_flag(field: str, value: float, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        WindowPlan(Workload(), **{field: value})  # type: ignore[arg-type]


def parsed(*argv: str) -> tuple[str, str | None]:
    args = ab.build_parser().parse_args(list(argv))
    return ab.method_of(args), ab.bad_numbers(args)


def test_the_reference_targets_echo_and_churn_default_to_windows_everything_else_to_runs() -> None:
    assert parsed() == ("windows", None)
    assert parsed("--scenario", "churn") == ("windows", None)
    assert parsed("--scenario", "broadcast")[0] == "runs"
    assert parsed("--target-cmd", "python app.py --port {port}")[0] == "runs"
    assert parsed("--app", "app.py")[0] == "runs"
    assert parsed("--user", "EchoUser")[0] == "runs"


def test_windows_that_cannot_send_the_scenario_are_refused_with_the_way_out() -> None:
    method, problem = parsed("--method", "windows", "--scenario", "broadcast")
    assert method == "windows" and problem is not None and "--method runs" in problem
    _, problem = parsed("--method", "windows", "--user", "EchoUser")
    assert problem is not None and "locustfile" in problem
    _, problem = parsed("--windows", "0")
    assert problem is not None and "--windows must be >= 1" in problem
    assert parsed("--method", "windows", "--target-cmd", "python app.py --port {port}") == ("windows", None)
