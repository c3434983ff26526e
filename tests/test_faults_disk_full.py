"""A results folder on a full disk: refused early when too small, retried and counted when it fills mid-run.

The folder is a tmpfs this test mounts (root only; skipped elsewhere) and
always unmounts.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sioharness.bench import matrix as bench
from sioharness.core.paths import HARNESS_LOCUSTFILE
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT
from target_app.process import start_target
from tests.disk import fill, tmpfs

pytestmark = pytest.mark.slow


def test_a_nearly_full_results_folder_is_refused_before_the_run(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "tiny", "1m") as disk:
        code = bench.main(["--targets", "gevent-dev", "--scenarios", "echo", "--duration", "3", "--users", "2",
                           "--results", str(disk), "--run-id", "r"])
    err = capsys.readouterr().err
    assert code == 2 and "MiB free" in err and err.strip().count("\n") == 0


@pytest.mark.parametrize("space_returns", [True, False], ids=["disk-freed-in-time", "disk-stays-full"])
def test_a_disk_that_fills_mid_run_loses_nothing_in_silence(tmp_path: Path, space_returns: bool) -> None:
    with tmpfs(tmp_path / "disk", "80m") as disk, \
            start_target("gevent", "dev", log_path=tmp_path / "target.log") as target:
        cell = disk / "cell"
        argv = [sys.executable, "-m", "locust", "-f", str(HARNESS_LOCUSTFILE), "--headless", "-u", "4", "-r", "4",
                "-t", "6s", "--stop-timeout", "2", "--host", target.url, "--results-dir", str(cell),
                "--flush-interval", "0.5", "--json-file", str(tmp_path / "locust_stats"), "--loglevel", "WARNING",
                "EchoUser", "--emit-rate", "100"]
        locust = subprocess.Popen(argv, cwd=REPO_ROOT, env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.extend(locust.stdout or []))  # line by line, as written
        reader.start()
        try:
            deadline = time.monotonic() + 30
            while not list(cell.glob("samples-*.parquet")):
                assert time.monotonic() < deadline and locust.poll() is None, "no first shard"
                time.sleep(0.1)
            filler = fill(disk)
            # Free the space only once a flush has failed (seen in the log), however slow the machine is.
            while not any("cannot write a shard" in line for line in list(out)):
                assert time.monotonic() < deadline + 30 and locust.poll() is None, "no flush failed on a full disk"
                time.sleep(0.1)
            if space_returns:
                filler.unlink()
            locust.wait(timeout=60)
        finally:
            if locust.poll() is None:
                locust.kill()
                locust.wait()
            reader.join(timeout=10)
            log = "".join(out)
            stats = json.loads((tmp_path / "locust_stats.json").read_text())
            requests = sum(entry["num_requests"] for entry in stats)
            on_disk = sum(pq.ParquetFile(p).metadata.num_rows for p in cell.glob("samples-*.parquet"))
            accounting = [json.loads(p.read_text()) for p in cell.glob("recorder-*.json")] if space_returns else []
    assert "cannot write a shard" in log and ("No space left" in log or errno.errorcode[errno.ENOSPC] in log)
    if space_returns:
        assert locust.returncode in (0, 1), log[-3000:]
        assert on_disk == requests, "the kept rows were written once the disk had room"
        assert accounting and accounting[0]["taken"] == accounting[0]["written"] == requests
        assert accounting[0]["errors"], "the failed writes are on record"
    else:
        assert locust.returncode == 5, log[-3000:]  # sioharness.core.exit_codes.EXIT_SAMPLES_LOST
        assert on_disk < requests and "could not be written" in log
