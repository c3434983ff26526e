"""A locustfile that makes samples and nothing else, for ``benchmarks.samples_via_master``.

Each ``SampleUser`` fires request events (one sample each, as the harness's
users do) in batches, with no network: what the samples cost to record and
move is all that is measured. The harness (recorder, ``--samples-via-master``)
is installed as in a real run.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from locust import User, constant, task  # noqa: E402

from loadtests.runtime.harness import install  # noqa: E402

install()

#: samples fired per task run (then the user yields to the others)
BATCH = 50


class SampleUser(User):
    wait_time = constant(0)

    @task
    def samples(self) -> None:
        fire = self.environment.events.request.fire
        for i in range(BATCH):  # latencies that vary as measured ones do (they compress less than a constant)
            fire(request_type="ack", name="echo", response_time=0.2 + random.random(), response_length=64,
                 exception=None,
                 context={"kind": "ack", "t_ns": time.time_ns(), "user": i, "bytes": 64})
