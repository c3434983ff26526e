"""tests/parallel.py: shares of about equal time, every selected file in exactly one, order kept."""
from __future__ import annotations

from tests.parallel import seconds_per_test, split


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
