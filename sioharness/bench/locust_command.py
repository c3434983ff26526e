"""Locust's command line for the harness, built in one place.

The native cell runner, the Docker runner and the web UI launcher all start
Locust on the harness's locustfile; the load a :class:`sioharness.core.load_params.LoadShape`
describes becomes the same options everywhere (``sioharness.core.load_params.locust_argv``).
"""
from __future__ import annotations

from sioharness.core.load_params import LoadShape, locust_argv
from target_app.process import free_port

#: seconds Locust lets users finish their task after the run time (``--stop-timeout``)
STOP_TIMEOUT_S = 5.0


def headless_args(load: LoadShape, *, results_dir: str, loglevel: str = "WARNING",
                  final_stats: bool = True) -> list[str]:
    """A headless run of ``load`` whose results (samples, Locust's CSV) go to ``results_dir``.

    ``final_stats`` adds Locust's ``--json-file``: it is written once at
    shutdown, so unlike the CSV (rewritten every second) it has the final counts.
    """
    argv = [
        "--headless", "--stop-timeout", f"{STOP_TIMEOUT_S:g}",
        "--csv", f"{results_dir}/locust", "--only-summary", "--loglevel", loglevel,
        "--results-dir", results_dir,
    ]
    if final_stats:
        argv += ["--json-file", f"{results_dir}/locust_stats"]
    return argv + locust_argv(load)


def local_master_args(processes: int) -> list[str]:
    """For ``--processes N``: the master listens for its workers on loopback and a free port.

    Locust's default is every interface on 5557, which another run (or a
    second web UI) may hold, and whose workers would then join the wrong
    master.
    """
    port = str(free_port())
    return ["--processes", str(processes), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-port", port]
