"""The GC dimension of profiles and of ``python -m sioharness.bench`` (no network)."""
from __future__ import annotations

from pathlib import Path

import pytest

from sioharness.bench import matrix
from sioharness.bench.cell import CellPlan
from sioharness.bench.profile import ProfileError, load_profile, parse_profile


def cell_names(profile_data: dict, **overrides: object) -> list[str]:
    profile = parse_profile(profile_data, "p.toml")
    if overrides:
        profile = profile.with_overrides(**overrides)  # type: ignore[arg-type]
    return [CellPlan(run_id="r", target=t, scenario=s, run_dir=Path("/tmp/r"), gc=g).cell
            for t, s, g in profile.cell_runs()]


def test_gc_profile_runs_every_mode_once_per_setting_back_to_back() -> None:
    profile = load_profile("gc")
    names = [CellPlan(run_id="r", target=t, scenario=s, run_dir=Path("/tmp/r"), gc=g).cell
             for t, s, g in profile.cell_runs()]
    assert names == [
        "eventlet-dev--echo", "eventlet-dev--echo--gc-freeze", "eventlet-dev--echo--gc-off",
        "gevent-dev--echo", "gevent-dev--echo--gc-freeze", "gevent-dev--echo--gc-off",
    ]
    assert profile.reference in names  # one cell, not every GC setting of gevent-dev
    assert profile.estimated_seconds() < 170


def test_without_a_gc_list_the_cells_keep_their_names() -> None:
    data = {"targets": ["gevent-dev"], "scenarios": [{"name": "echo"}, {"name": "churn"}]}
    assert cell_names(data) == ["gevent-dev--echo", "gevent-dev--churn"]
    assert cell_names(data, gc=["off", "thresholds:1000,20,20"]) == [
        "gevent-dev--echo--gc-off", "gevent-dev--echo--gc-t1000-20-20",
        "gevent-dev--churn--gc-off", "gevent-dev--churn--gc-t1000-20-20",
    ]


@pytest.mark.parametrize("gc, message", [
    (["default", "fast"], "gc must be default, freeze, off"),
    (["off", "OFF"], "lists a setting twice"),
    ("off", "must be a list"),
    ([], "must be a list"),
])
def test_bad_gc_lists_say_what_is_wrong(gc: object, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile({"targets": ["gevent-dev"], "gc": gc, "scenarios": [{"name": "echo"}]}, "p.toml")


def test_own_apps_set_their_own_collector() -> None:
    with pytest.raises(ProfileError, match="leave gc out with target_cmd"):
        parse_profile({"target_cmd": "python app.py --port {port}", "gc": ["off"],
                       "scenarios": [{"name": "echo"}]}, "p.toml")


def test_the_gc_setting_is_the_targets_flag_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sioharness.bench import cell as bench_cell

    seen: dict[str, object] = {}

    def fake_launch_group(spec: object, cell_dir: Path, *, extra_args: list[str], cpu_affinity: object) -> None:
        seen["args"] = extra_args
        raise bench_cell.TargetStartError("not started in this test")

    monkeypatch.setattr(bench_cell, "launch_group", fake_launch_group)
    profile = load_profile("gc").with_overrides(targets=["gevent-dev"])
    target, scenario, _ = profile.cell_runs()[0]
    result = bench_cell.run_cell(CellPlan(run_id="r", target=target, scenario=scenario, run_dir=tmp_path,
                                          gc="freeze", pin_cores=False))
    assert result.cell == "gevent-dev--echo--gc-freeze"
    assert seen["args"] == ["--gc", "freeze"]
    assert '"gc": "freeze"' in (tmp_path / result.cell / "run.json").read_text()


def test_bench_gc_flag_replaces_the_list_and_refuses_servers_it_does_not_start(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = matrix.build_parser().parse_args(["--profile", "gc", "--gc", "default,off", "--targets", "gevent-dev"])
    assert matrix.resolve_profile(args).gc == ("default", "off")
    assert matrix.main(["--gc", "off", "--target-url", "http://127.0.0.1:9"]) == 2
    assert "apply to the targets the runner starts" in capsys.readouterr().err


def test_capacity_searches_once_per_gc_setting_with_the_setting_in_each_step_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reports.errors import ReportInputError
    from sioharness.bench import capacity
    from sioharness.bench.cell import CellResult

    plans: list[CellPlan] = []

    def fake_run(_self: object, plan: CellPlan, _prefix: str, _interrupted: object = None) -> CellResult:
        plans.append(plan)
        return CellResult(plan.cell, plan.cell_dir, "failed", "not run in this test")

    def no_report(path: Path, **_kwargs: object) -> None:
        raise ReportInputError(path, "not run in this test")

    monkeypatch.setattr(capacity.ProgressLine, "run", fake_run)
    monkeypatch.setattr(capacity, "build_cell_report", no_report)
    assert capacity.main(["--targets", "gevent-dev", "--gc", "default,off", "--results", str(tmp_path),
                          "--run-id", "cap", "--no-pin"]) == 0
    assert [(p.cell, p.gc) for p in plans] == [("gevent-dev--echo--u00010", "default"),
                                               ("gevent-dev--echo--gc-off-u00010", "off")]
    table = (tmp_path / "cap" / "capacity.md").read_text()
    assert "| gevent-dev |" in table and "| gevent-dev gc-off |" in table
