"""What a user types into make reaches the commands as data: no value is ever run as shell text.

make runs for real here, with the venv's python replaced by a recorder of its
arguments (the option-list splitter, sioharness.core.env_args, still runs for real), so
each test sees the exact argv a target would start.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sioharness.core.env_args import main as env_args_main
from sioharness.core.env_args import words
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT

FAKE_PY = """#!{python}
import json, os, sys
if sys.argv[1:3] == ["-m", "sioharness.core.env_args"]:
    os.execv({python!r}, [{python!r}, *sys.argv[1:]])
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def make(tmp_path: Path, target: str, environ: dict[str, str] | None = None, **variables: str) -> list[list[str]]:
    """The argv of every python the target started, with ``variables`` set on make's command line
    (and ``environ`` in its environment, as a CI workflow's ``env:`` sets them)."""
    fake = tmp_path / "python"
    fake.write_text(FAKE_PY.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "argv.jsonl"
    log.write_text("")
    done = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", f"PY={fake}", target,
                           *(f"{k}={v}" for k, v in variables.items())],
                          cwd=REPO_ROOT, env=os.environ | (environ or {}) | {"FAKE_LOG": str(log)},
                          capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


HOSTILE = ["origin/`touch {canary}`", "$(touch {canary})", "$(shell touch {canary})", "x; touch {canary}",
           "x' \"y && touch {canary}"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_branch_name_run_folder_or_run_id_never_runs(tmp_path: Path, hostile: str) -> None:
    canary = tmp_path / "ran"
    value = hostile.format(canary=canary)
    assert make(tmp_path, "abtest", BASE=value) == [["-m", "sioharness.bench.ab", "--base", value]]
    assert make(tmp_path, "abtest", BASE="main", MEASURE=value) == \
        [["-m", "sioharness.bench.ab", "--base", "main", "--measure", value]]
    assert make(tmp_path, "check", RUN=value, THRESHOLDS="t.toml", BASELINE="no/such.json")[0] == \
        ["-m", "sioharness.bench.check", value, "--thresholds", "t.toml", "--tolerance", "0.5"]
    assert make(tmp_path, "bench", PROFILE=value, RUN_ID=value) == \
        [["-m", "sioharness.bench", "--profile", value, "--run-id", value]]
    assert make(tmp_path, "baseline", RUN=value, BASELINE=value) == \
        [["-m", "sioharness.bench.check", value, "--write-baseline", value]]
    # The workflow's way: the branch name in make's environment.
    assert make(tmp_path, "abtest", environ={"BASE": value, "AB_ARGS": "--run-id ab-1"}) == \
        [["-m", "sioharness.bench.ab", "--base", value, "--run-id", "ab-1"]]
    assert not canary.exists()


def test_option_lists_split_like_shell_words_and_nothing_runs(tmp_path: Path) -> None:
    canary = tmp_path / "ran"
    ab_args = f"--repeats 8 --b-arg='--handler-cost-us 20' --a-label '`touch {canary}`' \"$(touch {canary})\""
    assert make(tmp_path, "abtest", BASE="main", AB_ARGS=ab_args) == [
        ["-m", "sioharness.bench.ab", "--base", "main", "--repeats", "8", "--b-arg=--handler-cost-us 20", "--a-label",
         f"`touch {canary}`", f"$(touch {canary})"]]
    assert make(tmp_path, "test", PYTEST_ARGS="-m 'not slow' -k echo") == \
        [["-m", "tests.parallel", "--jobs", "4", "--deadline", "1200", "--", "-m", "not slow", "-k", "echo"]]
    assert make(tmp_path, "test-serial", PYTEST_ARGS="-m 'not slow' -k echo") == \
        [["-m", "pytest", "-m", "not slow", "-k", "echo"]]
    assert not canary.exists()


def test_an_existing_baseline_is_passed_to_the_check(tmp_path: Path) -> None:
    baseline = tmp_path / "base line.json"
    baseline.write_text("{}")
    assert make(tmp_path, "check", RUN="results/r", BASELINE=str(baseline)) == [
        ["-m", "sioharness.bench.check", "results/r", "--thresholds", "sioharness/profiles/thresholds.toml",
         "--baseline", str(baseline),
         "--tolerance", "0.5"]]


def test_the_splitter_names_a_variable_it_cannot_split(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert words(["A", "B"], {"A": "x 'y z'", "B": ""}) == ["x", "y z"]
    monkeypatch.setenv("AB_ARGS", "--a-label 'unclosed")
    assert env_args_main(["AB_ARGS", "--", "true"]) == 2
    assert "AB_ARGS: cannot split" in capsys.readouterr().err
    assert env_args_main(["AB_ARGS"]) == 2
