"""A Locust run whose users hang still ends by the watchdog's deadline."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loadtests.runtime.watchdog import WATCHDOG_EXIT_CODE
from sioharness.core.schema import SHARD_GLOB

REPO = Path(__file__).resolve().parent.parent
RUN_TIME = 2
GRACE = 2
# Startup of a Locust process on a busy machine, beyond the deadline.
MARGIN = 30

pytestmark = pytest.mark.slow

HANGING_LOCUSTFILE = '''
import gevent
from gevent.monkey import get_original
from locust import User, constant, task

import loadtests.socketio_user  # noqa: F401  (the harness registers itself on import)


class HubBlockingUser(User):
    """Records one sample, then blocks the whole gevent hub: Locust's own -t never fires."""

    wait_time = constant(0)

    @task
    def hang(self):
        self.environment.events.request.fire(
            request_type="ack", name="before-hang", response_time=1.5, response_length=0,
            exception=None, context={"kind": "ack", "t_ns": 1, "user": 0})
        get_original("time", "sleep")(3600)


class StubbornUser(User):
    """Ignores GreenletExit: Locust's stop waits for it forever."""

    wait_time = constant(0)

    @task
    def hang(self):
        while True:
            try:
                gevent.sleep(3600)
            except gevent.GreenletExit:
                pass
'''


@pytest.mark.parametrize("user_class", ["HubBlockingUser", "StubbornUser"])
def test_hanging_users_end_by_the_watchdog_deadline(tmp_path, user_class):
    locustfile = tmp_path / "hanging.py"
    locustfile.write_text(HANGING_LOCUSTFILE)
    results = tmp_path / "cell"
    argv = ["nice", "-n", "10", sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
            "-u", "1", "-r", "1", "-t", f"{RUN_TIME}s", "--watchdog-grace", str(GRACE),
            "--host", "http://127.0.0.1:9", "--results-dir", str(results), user_class]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=RUN_TIME + GRACE + MARGIN)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the watchdog did not end the run:\n{exc.stderr}")
    elapsed = time.monotonic() - started
    assert proc.returncode == WATCHDOG_EXIT_CODE, proc.stderr[-2000:]
    assert "watchdog: run deadline passed" in proc.stderr
    # Not before the deadline: the watchdog leaves Locust its run time and grace.
    assert elapsed >= RUN_TIME + GRACE
    if user_class == "HubBlockingUser":
        # The sample recorded before the hang was flushed on the way out.
        shards = list(results.glob(SHARD_GLOB))
        assert sum(pq.read_metadata(p).num_rows for p in shards) == 1
