"""Profiles and the check command's logic (no network)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sioharness.bench import check
from sioharness.bench.capacity import judge, next_users
from sioharness.bench.profile import ProfileError, TargetSpec, load_profile, parse_profile


@pytest.mark.parametrize("name", ["quick", "full"])
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.cells()
    assert profile.reference in {t.label for t in profile.targets}


def test_quick_profile_fits_three_minutes() -> None:
    assert load_profile("quick").estimated_seconds() < 170


def test_scenario_overrides_load_defaults() -> None:
    profile = parse_profile({"targets": ["gevent"], "load": {"users": 5, "duration_s": 3},
                             "scenarios": [{"name": "echo"}, {"name": "churn", "users": 2}]})
    assert [(s.name, s.load.users, s.load.duration_s) for s in profile.scenarios] == [("echo", 5, 3), ("churn", 2, 3)]
    assert profile.targets == (TargetSpec("gevent", "dev"),)


@pytest.mark.parametrize("data, message", [
    ({"targets": [], "scenarios": [{"name": "echo"}]}, "at least one target"),
    ({"targets": ["tornado-dev"], "scenarios": [{"name": "echo"}]}, "unknown async mode 'tornado'"),
    ({"targets": ["asgi-gunicorn"], "scenarios": [{"name": "echo"}]}, "asgi runs under uvicorn"),
    ({"targets": ["gevent-dev"], "scenarios": [{"name": "chat"}]}, "name must be one of"),
    ({"targets": ["gevent-dev"], "scenarios": [{"name": "echo", "userz": 3}]}, "unknown key\\(s\\) userz"),
    ({"targets": ["gevent-dev"], "load": {"duration_s": 2, "warmup_s": 5}, "scenarios": [{"name": "echo"}]},
     r"warmup_s\) must be shorter"),
    ({"targets": ["gevent-dev"]}, "at least one \\[\\[scenarios\\]\\]"),
])
def test_bad_profiles_say_what_is_wrong(data: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(data, "p.toml")


def test_unknown_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match="shipped profiles: full, gc, quick"):
        load_profile("nope")


def test_overrides_narrow_and_reshape() -> None:
    profile = load_profile("quick").with_overrides(targets=["eventlet-dev"], scenarios=["echo"], duration_s=3, users=4)
    cells = [(t.label, s.name, s.load.duration_s, s.load.users) for t, s in profile.cells()]
    assert cells == [("eventlet-dev", "echo", 3, 4)]
    with pytest.raises(ProfileError, match="no scenario idle"):
        load_profile("quick").with_overrides(scenarios=["idle"])


def summary(cell: str, *, p99_us: float = 5000.0, acks: float = 1000.0, errors: float = 0.0,
            status: str = "ok") -> dict:
    return {
        "cell": cell, "status": status, "scenario": cell.split("--")[1], "error_ratio": errors,
        "main_event": "echo", "run": {"reason": None if status == "ok" else "target died"},
        "primary": {"key": "latency.echo.p99_us", "better": "lower"},
        "latency": {"echo": {"p99_us": p99_us, "p50_us": p99_us / 2}},
        "throughput": {"acks_per_s": acks}, "connections": {"connects_per_s": 2.0, "peak_concurrent": 10},
        "server": {"cpu_s_per_1k_acks": 0.5},
    }


def write_run(tmp_path: Path, *summaries: dict) -> Path:
    run = tmp_path / "run"
    for s in summaries:
        (run / s["cell"]).mkdir(parents=True)
        (run / s["cell"] / "summary.json").write_text(json.dumps(s))
    return run


THRESHOLDS = """
[[rule]]
metric = "error_ratio"
max = 0.01
[[rule]]
scenario = "echo"
metric = "latency.echo.p99_us"
max = 10000
[[rule]]
target = "gevent-dev"
metric = "throughput.acks_per_s"
min = 500
"""


def test_check_passes_good_run(tmp_path: Path) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo"), summary("eventlet-dev--echo"))
    rules = tmp_path / "t.toml"
    rules.write_text(THRESHOLDS)
    assert check.main([str(run), "--thresholds", str(rules), "--job-summary", str(tmp_path / "s.md")]) == 0
    assert "benchmark check passed" in (tmp_path / "s.md").read_text()


def test_check_fails_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo", acks=100), summary("eventlet-dev--echo", p99_us=20000))
    rules = tmp_path / "t.toml"
    rules.write_text(THRESHOLDS)
    assert check.main([str(run), "--thresholds", str(rules)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  gevent-dev--echo" in out and "throughput.acks_per_s" in out
    assert "FAIL  eventlet-dev--echo" in out and "latency.echo.p99_us" in out
    assert "FAIL" in (run / "check.md").read_text()


def test_check_fails_failed_cell(tmp_path: Path) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo", status="failed"))
    assert check.main([str(run)]) == 1


def test_baseline_regression_is_a_ratio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base_run = write_run(tmp_path / "a", summary("gevent-dev--echo", p99_us=5000, acks=1000))
    baseline = tmp_path / "baseline.json"
    assert check.main([str(base_run), "--write-baseline", str(baseline)]) == 0
    kept = json.loads(baseline.read_text())["cells"]["gevent-dev--echo"]
    # The median, not the p99: a short run's p99 is too noisy to hold a build to.
    assert kept["latency.echo.p50_us"] == {"value": 2500, "better": "lower"}
    assert "latency.echo.p99_us" not in kept
    assert kept["throughput.acks_per_s"] == {"value": 1000, "better": "higher"}

    within = write_run(tmp_path / "b", summary("gevent-dev--echo", p99_us=6000, acks=800))
    assert check.main([str(within), "--baseline", str(baseline), "--tolerance", "0.3"]) == 0
    worse = write_run(tmp_path / "c", summary("gevent-dev--echo", p99_us=7000, acks=1000))
    capsys.readouterr()
    assert check.main([str(worse), "--baseline", str(baseline), "--tolerance", "0.3"]) == 1
    assert "1.40x baseline" in capsys.readouterr().out
    slower = write_run(tmp_path / "d", summary("gevent-dev--echo", p99_us=5000, acks=700))
    assert check.main([str(slower), "--baseline", str(baseline), "--tolerance", "0.3"]) == 1


def test_baseline_cell_missing_from_run_fails(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    check.main([str(write_run(tmp_path / "a", summary("gevent-dev--echo"))), "--write-baseline", str(baseline)])
    other = write_run(tmp_path / "b", summary("eventlet-dev--echo"))
    assert check.main([str(other), "--baseline", str(baseline)]) == 1


@pytest.mark.parametrize("setup, message", [
    ("nothing", "no such results folder"),
    ("empty", "no cell has a summary.json"),
    ("bad-rules", "rule 1 needs 'metric'"),
])
def test_check_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str) -> None:
    run = tmp_path / "run"
    argv = [str(run)]
    if setup == "empty":
        run.mkdir()
    if setup == "bad-rules":
        run = write_run(tmp_path, summary("gevent-dev--echo"))
        (tmp_path / "t.toml").write_text("[[rule]]\nmax = 3\n")
        argv = [str(run), "--thresholds", str(tmp_path / "t.toml")]
    assert check.main(argv) == 2
    assert message in capsys.readouterr().err


def test_capacity_judge() -> None:
    ok = summary("gevent-dev--echo", p99_us=30_000)
    assert judge(ok, 10, "echo", 50, 0.01, "c").held
    slow = judge(summary("gevent-dev--echo", p99_us=80_000), 10, "echo", 50, 0.01, "c")
    assert not slow.held and "p99 80.0 ms > 50 ms" in slow.why
    short = judge(ok, 20, "echo", 50, 0.01, "c")
    assert not short.held and "only 10 of 20 users connected" in short.why
    errors = judge(summary("gevent-dev--echo", errors=0.05), 10, "echo", 50, 0.01, "c")
    assert not errors.held and "errors 5.00%" in errors.why
    assert [next_users(2, 1, 2), next_users(10, 2, 0), next_users(1, 1.2, 0)] == [4, 20, 2]


def test_capacity_names_the_limit_the_target_refused_at() -> None:
    full = summary("gevent-dev--idle", p99_us=1_000)
    full["errors"] = {"websocket handshake to http://127.0.0.1:1 failed: 503 descriptor limit": 7, "timeout": 1}
    verdict = judge(full, 10, "idle", 50, 0.5, "c")
    assert not verdict.held and "target at its descriptor limit (7 refused)" in verdict.why
    assert "connection limit" not in verdict.why


# --- the check refuses what it does not understand ------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('[[rules]]\nmetric = "error_ratio"\nmax = 0.01\n', "unknown key(s) rules"),
    ("", "no [[rule]] table"),
    ('[[rule]]\nmetric = "error_ratio"\nmax = "0.01"\n', "max must be a number"),
    ('[[rule]]\nmetric = "error_ratio"\nmax = 0.01\nscenaro = "echo"\n', "unknown key(s) scenaro"),
])
def test_check_refuses_a_thresholds_file_it_cannot_read_as_meant(tmp_path: Path, text: str, message: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo"))
    rules = tmp_path / "t.toml"
    rules.write_text(text)
    assert check.main([str(run), "--thresholds", str(rules)]) == 2
    assert message in capsys.readouterr().err


def test_a_rule_that_matches_no_cell_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo"))
    rules = tmp_path / "t.toml"
    rules.write_text('[[rule]]\nscenario = "ecco"\nmetric = "error_ratio"\nmax = 0.01\n')
    assert check.main([str(run), "--thresholds", str(rules)]) == 1
    assert "matched nothing" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["{}", "[]", '{"cells": {}}', '{"cells": {"gevent-dev--echo": {"x": {"value": "1"}}}}',
                                  '{"cells": {"gevent-dev--echo": {"x": {"value": 1, "better": "more"}}}}'])
def test_check_refuses_an_empty_or_mistyped_baseline(tmp_path: Path, text: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo"))
    baseline = tmp_path / "b.json"
    baseline.write_text(text)
    assert check.main([str(run), "--baseline", str(baseline)]) == 2
    assert "baseline" in capsys.readouterr().err


def test_a_cell_without_summary_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo"))
    (run / "asgi-uvicorn--echo").mkdir()
    (run / "asgi-uvicorn--echo" / "run.json").write_text("{}")
    assert check.main([str(run)]) == 1
    assert "asgi-uvicorn--echo" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    (b'targets = ["gevent-dev"]\n[load]\nduration_s = inf\n[[scenarios]]\nname = "echo"\n',
     "duration_s) must be a finite number"),
    (b'targets = ["gevent-dev"]\n[load]\nusers = "five"\n[[scenarios]]\nname = "echo"\n',
     "users must be an integer"),
    (b'targets = ["gevent-dev"]\n# \xff\xfe not UTF-8\n[[scenarios]]\nname = "echo"\n', "not UTF-8 text"),
])
def test_a_bad_profile_is_one_line_and_leaves_no_folder(tmp_path: Path, content: bytes, message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from sioharness.bench import matrix

    profile = tmp_path / "bad.toml"
    profile.write_bytes(content)
    assert matrix.main(["--profile", str(profile), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_shipped_profile_list_names_profiles_only(capsys: pytest.CaptureFixture[str]) -> None:
    from sioharness.bench import matrix

    assert matrix.main(["--profile", "no-such-profile"]) == 2
    err = capsys.readouterr().err
    assert "shipped profiles: full, gc, quick, scaleout, soak" in err and "thresholds" not in err


def test_an_unwritable_job_summary_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo"))
    assert check.main([str(run), "--job-summary", str(tmp_path / "no-such-folder" / "summary.md")]) == 2
    assert "--job-summary" in capsys.readouterr().err


def _hostile_summary(cell_dir: Path, kind: str) -> None:
    path = cell_dir / "summary.json"
    if kind == "list":
        path.write_text("[1, 2]")
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "nan":
        path.write_text(json.dumps(summary("gevent-dev--echo")).replace("1000.0", "NaN"))
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "wrong-types":
        bad = summary("gevent-dev--echo") | {"primary": [1], "main_event": {"x": 1},
                                              "throughput": {"acks_per_s": "fast"}}
        path.write_text(json.dumps(bad))


@pytest.mark.parametrize("kind, message", [
    ("list", "not a summary (a JSON object), but a list"),
    ("deep", "nests deeper than 64 levels"),
    ("nan", "NaN is not a number JSON allows"),
    ("dev-zero", "summary.json is not a regular file"),
    ("fifo", "summary.json is not a regular file"),
])
@pytest.mark.parametrize("write_baseline", [False, True])
def test_a_hostile_summary_is_bad_input_not_a_regression(tmp_path: Path, kind: str, message: str,
                                                          write_baseline: bool) -> None:
    """What CI reads as "regression" (1) must not be what a broken results folder gives: that is 2."""
    import subprocess
    import sys

    from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT

    cell = tmp_path / "run" / "gevent-dev--echo"
    cell.mkdir(parents=True)
    _hostile_summary(cell, kind)
    argv = [sys.executable, "-m", "sioharness.bench.check", str(tmp_path / "run")]
    argv += ["--write-baseline", str(tmp_path / "b.json")] if write_baseline else []
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_summary_figures_of_the_wrong_type_are_missing_figures(tmp_path: Path) -> None:
    cell = tmp_path / "run" / "gevent-dev--echo"
    cell.mkdir(parents=True)
    _hostile_summary(cell, "wrong-types")
    baseline = tmp_path / "b.json"
    assert check.main([str(tmp_path / "run"), "--write-baseline", str(baseline)]) == 0
    kept = json.loads(baseline.read_text())["cells"]["gevent-dev--echo"]
    assert "throughput.acks_per_s" not in kept and "server.cpu_s_per_1k_acks" in kept


def test_a_baseline_that_is_not_a_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, summary("gevent-dev--echo"))
    assert check.main([str(run), "--baseline", "/dev/zero"]) == 2
    assert "zero is not a regular file" in capsys.readouterr().err
