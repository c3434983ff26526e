"""sioharness.core.run_dirs: run folders stay inside the results root and are never shared."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sioharness.core.run_dirs import RunDirError, check_run_id, claim_run_dir


@pytest.mark.parametrize("bad", ["../../x", "..", ".", ".hidden", "a/b", "a\\\\b", "", "x" * 121, "a b", "é",
                                 "20261207-120000-../x"])
def test_a_run_id_that_is_not_one_plain_folder_name_is_refused(bad: str) -> None:
    with pytest.raises(RunDirError, match="one folder under the results root"):
        check_run_id(bad)


def test_plain_ids_pass() -> None:
    assert check_run_id("ci-1") == "ci-1"
    assert check_run_id("20261207-120000-quick.v2_x") == "20261207-120000-quick.v2_x"


def test_a_given_id_with_results_is_refused_and_an_empty_one_is_taken(tmp_path: Path) -> None:
    assert claim_run_dir(tmp_path, "r1", "quick") == tmp_path / "r1"
    (tmp_path / "r1" / "run.json").write_text("{}")
    with pytest.raises(RunDirError, match="already holds results"):
        claim_run_dir(tmp_path, "r1", "quick")
    with pytest.raises(RunDirError):
        claim_run_dir(tmp_path, "../escape", "quick")
    assert not (tmp_path.parent / "escape").exists()


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    claimed: list[Path] = []
    lock = threading.Lock()

    def claim() -> None:
        path = claim_run_dir(tmp_path, None, "quick")
        with lock:
            claimed.append(path)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 8 and all(p.parent == tmp_path and p.is_dir() for p in claimed)


def test_a_profile_name_that_climbs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunDirError):
        claim_run_dir(tmp_path, None, "../../outside")
