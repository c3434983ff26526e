"""The run record of a plain ``locust -f ...`` run (no runner wrote one).

``python -m sioharness.bench`` and the web UI write ``run.json`` themselves. A plain
headless run with ``--results-dir`` gets one from here, written by the
master (or the only process): status ``running`` at the test start, then
the final record at its stop with the load's span, the users, the target
and the versions, so ``python -m reports`` is not partial without a reason
and its rates use the real load span.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtests.runtime.options import LoadSettings
from sioharness.core.run_record import RUN_JSON, RUNNING, RecordedLoad, RunRecord
from sioharness.core.runinfo import machine, versions
from sioharness.core.scenarios import scenario_of_classes, shaped_by
from sioharness.core.stats_client import probe_stats

if TYPE_CHECKING:
    from locust.env import Environment


def owns_run_record(results_dir: str | None, *, web_ui: bool) -> bool:
    """True when this run has to write its own run.json: a results folder that no runner has set up."""
    return bool(results_dir) and not web_ui and not (Path(str(results_dir)) / RUN_JSON).exists()


def plain_run_record(environment: Environment, settings: LoadSettings, *, started_ns: int) -> RunRecord:
    """The record of a plain run starting now (status running)."""
    options: Any = environment.parsed_options
    folder = Path(str(settings.results_dir)).resolve()
    host = environment.host or (settings.urls[0] if settings.urls else None)
    stats = probe_stats(host, timeout=2.0) if host else None
    run_time = getattr(options, "run_time", None)
    scenario = scenario_of_classes(cls.__name__ for cls in environment.user_classes)
    rooms = "room_size" in shaped_by(scenario)
    return RunRecord(
        run_id=folder.parent.name or folder.name, cell=folder.name, status=RUNNING,
        mode=str((stats or {}).get("async_mode") or "external"), server=str((stats or {}).get("server") or "external"),
        scenario=scenario,
        load=RecordedLoad.of(
            settings, users=getattr(options, "num_users", None), spawn_rate=getattr(options, "spawn_rate", None),
            duration_s=float(run_time) if run_time else None,
            # The room options shape the reference room scenarios only.
            room_size=settings.room_size if rooms else None,
            senders_per_room=settings.senders_per_room if rooms else None,
            processes=getattr(options, "processes", None) or 1,
        ),
        command=list(sys.argv), target_url=host, versions=versions(), machine=machine(),
        started_ns=started_ns, load_started_ns=started_ns,
        extra={"written_by": "locust (plain run)",
               "user_classes": sorted(cls.__name__ for cls in environment.user_classes)},
    )
