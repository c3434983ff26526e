"""tests/parallel.py: shares of about equal time, every selected file in exactly one, order kept."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.parallel import REPO, runs_alone, seconds_per_test, split


def test_every_file_lands_in_one_share_and_the_long_ones_spread() -> None:
    files = {f"tests/test_{c}.py": [f"tests/test_{c}.py::t{i}" for i in range(3)] for c in "abcdef"}
    seconds = {f"tests/test_{c}.py::t{i}": (30.0 if c in "ab" else 1.0) for c in "abcdef" for i in range(3)}
    shares = split(files, seconds, 2)
    assert sorted(f for share in shares for f in share) == sorted(files)
    # the two long files go to different shares, and each share keeps collection order
    assert {share[0] for share in shares} == {"tests/test_a.py", "tests/test_b.py"}
    assert all(share == sorted(share) for share in shares)


def test_a_file_costs_only_its_selected_tests_and_unknown_ones_the_median() -> None:
    files = {"tests/test_x.py": ["tests/test_x.py::quick"], "tests/test_y.py": ["tests/test_y.py::new"],
             "tests/test_z.py": ["tests/test_z.py::quick"]}
    seconds = {"tests/test_x.py::quick": 1.0, "tests/test_x.py::slow": 500.0, "tests/test_z.py::quick": 3.0}
    assert len(split(files, seconds, 5)) == 3  # never more shares than files
    assert sorted(map(len, split(files, seconds, 2))) == [1, 2]


def test_durations_are_summed_per_test() -> None:
    output = "\n".join(["============ slowest durations ============",
                        "2.50s call     tests/test_a.py::test_one[gevent-dev]",
                        "0.25s setup    tests/test_a.py::test_one[gevent-dev]",
                        "0.01s teardown tests/test_b.py::test_two"])
    assert seconds_per_test(output) == {"tests/test_a.py::test_one[gevent-dev]": 2.75,
                                        "tests/test_b.py::test_two": 0.01}


def test_a_file_marked_alone_runs_after_the_shares_by_itself(tmp_path: Path) -> None:
    marked = tmp_path / "test_marked.py"
    marked.write_text("import pytest\n\npytestmark = pytest.mark.alone\n")
    plain = tmp_path / "test_plain.py"
    plain.write_text("def test_x():\n    pass\n")
    assert runs_alone(marked) and not runs_alone(plain) and not runs_alone(tmp_path / "missing.py")
    done = subprocess.run([sys.executable, "-m", "tests.parallel", "--jobs", "2", "--deadline", "120", "--",
                           "tests/test_parallel_runner.py", "tests/test_faults_fuzz.py", "-k",
                           "durations_are_summed or budget_stops"], cwd=REPO, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    out = done.stdout
    assert "1 files in 1 pytest processes, then 1 alone (test_faults_fuzz.py)" in out, out
    assert out.index("===== share 1 of 1 (exit 0)") < out.index("===== alone (exit 0)"), out
    assert "2 pytest processes" in out
