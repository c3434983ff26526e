"""One scenario, headless, in containers: target, Locust master and workers; then the report.

    .venv/bin/python -m sioharness.dockertools.run --mode gevent --scenario echo --users 20 --duration 10 --workers 2

The cell lands in the host's ``results/<run-id>/<mode>-<server>--<scenario>/``
exactly as a native run's does (run.json, the workers' sample shards,
Locust's CSV files, server.csv, target.log, locust.log), because the
containers write into a bind mount of ``results/``. ``python -m reports``
then builds the report from it on the host.

``server.csv`` samples the target container's process tree from the host
(its processes are host processes; reading their CPU and file descriptors
needs the same user or root). The run has a deadline: a master still running
at duration + stop timeout + grace is stopped and the cell marked failed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.launch import build_reports
from sioharness.bench.cell_status import CellEnding, cell_status, final_figures, read_lost_workers
from sioharness.bench.locust_command import STOP_TIMEOUT_S, headless_args
from sioharness.bench.profile import SCENARIO_USERS
from sioharness.core.cells import cell_name
from sioharness.core.load_params import LoadShape, add_load_options, given_load_options
from sioharness.core.run_dirs import check_run_id
from sioharness.core.run_record import RUNNING, RecordedLoad, RunRecord
from sioharness.core.runinfo import MEASURED_PACKAGES, machine, new_run_id
from sioharness.core.sampler import TreeSampler, stats_connected
from sioharness.dockertools.cli import (
    LOCUST_IMAGE,
    REPO_ROOT,
    DockerError,
    compose,
    compose_version,
    docker_binary,
    run,
    say,
)
from sioharness.dockertools.stack import (
    ASYNC_MODES,
    StackSettings,
    build,
    down,
    prepare_results_dir,
    profiles_for,
    resolve_base,
    up,
)
from target_app.settings import SERVERS_BY_MODE

# Beyond duration + stop timeout: container start, workers joining, last flush.
DEADLINE_GRACE_S = 60.0
WORKER_EXIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DockerRunPlan:
    """One headless run: which target, which scenario, what load, where to."""

    mode: str = "threading"
    server: str = "dev"
    scenario: str = "echo"
    #: checked by LoadShape itself, as for a native cell
    load: LoadShape = field(default_factory=LoadShape)
    workers: int = 2
    run_id: str = ""
    results_root: Path = REPO_ROOT / "results"
    target_port: int = 5050
    web_port: int = 8089
    #: workers with no results mount (compose profile "relay"): samples reach results/ through the master
    samples_via_master: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ASYNC_MODES:
            raise ValueError(f"--mode must be one of {', '.join(ASYNC_MODES)}, got {self.mode!r}")
        if self.server not in SERVERS_BY_MODE[self.mode]:
            raise ValueError(f"--mode {self.mode} runs under {', '.join(SERVERS_BY_MODE[self.mode])}, "
                             f"not {self.server!r}")
        if self.scenario not in SCENARIO_USERS:
            raise ValueError(f"--scenario must be one of {', '.join(SCENARIO_USERS)}, got {self.scenario!r}")
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if not self.run_id:
            object.__setattr__(self, "run_id", new_run_id("docker"))
        check_run_id(self.run_id)  # a RunDirError is a ValueError: one line, exit 2

    @property
    def worker_service(self) -> str:
        return "relay-worker" if self.samples_via_master else "worker"

    @property
    def cell(self) -> str:
        return cell_name(self.mode, self.server, self.scenario)

    @property
    def subdir(self) -> str:
        """The cell's folder relative to results/ (and to /results in the containers)."""
        return f"{self.run_id}/{self.cell}"

    @property
    def cell_dir(self) -> Path:
        return self.results_root / self.run_id / self.cell

    @property
    def deadline_s(self) -> float:
        return self.load.duration_s + STOP_TIMEOUT_S + DEADLINE_GRACE_S

    def master_args(self) -> list[str]:
        """Arguments after ``locust -f ... --master --host http://target:5000``."""
        container_dir = f"/results/{self.subdir}"
        return [
            *headless_args(self.load, results_dir=container_dir, loglevel="INFO", final_stats=False),
            "--expect-workers", str(self.workers),
            # Sent to the workers with the spawn message: their own watchdog deadline.
            "--run-deadline", f"{self.load.duration_s + STOP_TIMEOUT_S + 30:g}",
            *(["--samples-via-master"] if self.samples_via_master else []),
            SCENARIO_USERS[self.scenario],
        ]

    def settings(self, base_image: str) -> StackSettings:
        return StackSettings(base_image=base_image, mode=self.mode, server=self.server,
                             target_port=self.target_port, web_port=self.web_port, results_subdir=self.subdir,
                             master_args=shlex.join(self.master_args()), worker_args="--loglevel INFO")


@dataclass
class DockerRunResult:
    cell_dir: Path
    status: str
    reason: str | None
    master_exit_code: int | None
    elapsed_s: float


def container_ids(service: str, *, project: str | None) -> list[str]:
    result = compose([*profiles_for([service]), "ps", "-q", service], project=project, timeout=60, check=False)
    return [line.strip() for line in (result.stdout or "").splitlines() if len(line.strip()) >= 12]


def container_pid(container: str) -> int | None:
    result = run([docker_binary() or "docker", "inspect", "--format", "{{.State.Pid}}", container], timeout=30,
                 check=False)
    with contextlib.suppress(ValueError):
        pid = int((result.stdout or "").strip())
        return pid or None
    return None


def wait_exit(container: str, timeout: float) -> int | None:
    """The container's exit code, or None when it still runs at the timeout."""
    try:
        result = subprocess.run([docker_binary() or "docker", "wait", container], capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    with contextlib.suppress(ValueError):
        return int(result.stdout.strip().splitlines()[-1])
    return None


def image_versions(image: str = LOCUST_IMAGE) -> dict[str, str]:
    """Package versions inside the image (the ones this run measured)."""
    snippet = (
        "import json, platform\nfrom importlib import metadata\n"
        f"names = {list(MEASURED_PACKAGES)!r}\n"
        "found = {'python': platform.python_version()}\n"
        "for n in names:\n"
        "    try: found[n] = metadata.version(n)\n"
        "    except metadata.PackageNotFoundError: found[n] = 'not installed'\n"
        "print(json.dumps(found))\n"
    )
    result = run([docker_binary() or "docker", "run", "--rm", "--network", "none", "--entrypoint", "python", image,
                  "-c", snippet], timeout=120, check=False)
    with contextlib.suppress(ValueError, IndexError):
        return json.loads((result.stdout or "").strip().splitlines()[-1])
    return {"error": "could not read versions from the image"}


def save_logs(plan: DockerRunPlan, *, project: str | None, settings: StackSettings) -> None:
    for name, services in (("target.log", ["target"]), ("locust.log", ["master", plan.worker_service])):
        result = compose([*profiles_for(services), "logs", "--no-color", *services], project=project,
                         env=settings.env(), timeout=120,
                         check=False)
        (plan.cell_dir / name).write_text(result.stdout or "", encoding="utf-8")


def run_record(plan: DockerRunPlan, *, status: str, reason: str | None, started_ns: int, ended_ns: int | None,
               base_image: str, versions: dict[str, str], extra: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=plan.run_id, cell=plan.cell, status=status, reason=reason,
        mode=plan.mode, server=plan.server, scenario=plan.scenario,
        load=RecordedLoad.of(plan.load, processes=plan.workers),
        command=["locust", "-f", "/app/locustfile.py", "--master", "--host", "http://target:5000",
                 *plan.master_args()],
        target_url=f"http://127.0.0.1:{plan.target_port}",
        versions=versions, machine=machine(), started_ns=started_ns, ended_ns=ended_ns,
        extra={"docker": {"base_image": base_image, "workers": plan.workers, "compose": compose_version()} | extra},
    )


def run_headless(plan: DockerRunPlan, *, base_image: str, project: str | None = None, build_images: bool = True,
                 keep_up: bool = False) -> DockerRunResult:
    """Run the cell in containers; always takes the stack down unless ``keep_up``."""
    t0 = time.monotonic()
    settings = plan.settings(base_image)
    prepare_results_dir(plan.cell_dir)
    if build_images:
        build(settings, project=project)
    versions = image_versions()
    started_ns = time.time_ns()
    run_record(plan, status=RUNNING, reason=None, started_ns=started_ns, ended_ns=None, base_image=base_image,
               versions=versions, extra={}).write(plan.cell_dir)
    status, reason, master_code = "ok", None, None
    worker_codes: list[int | None] = []
    sampler: TreeSampler | None = None
    extra: dict[str, Any] = {}
    try:
        up(settings, ("target",), project=project)
        target = container_ids("target", project=project)
        pid = container_pid(target[0]) if target else None
        if pid is not None:
            sampler = TreeSampler(pid, plan.cell_dir / "server.csv",
                                  connected=stats_connected(f"http://127.0.0.1:{plan.target_port}")).start()
        up(settings, ("master", plan.worker_service), workers=plan.workers, project=project)
        masters = container_ids("master", project=project)
        if not masters:
            raise DockerError("the master container did not start")
        say(f"run: {plan.cell}, {plan.load.users} users on {plan.workers} worker(s) for {plan.load.duration_s:g} s")
        master_code = wait_exit(masters[0], plan.deadline_s)
        if master_code is None:
            status, reason = "failed", f"master still running at the deadline ({plan.deadline_s:.0f} s); stopped it"
        for worker in container_ids(plan.worker_service, project=project):
            worker_codes.append(wait_exit(worker, WORKER_EXIT_TIMEOUT_S))
        if sampler is not None:
            extra["server_cpu_s"] = sampler.cpu_s
    except DockerError as exc:
        status, reason = "failed", str(exc).splitlines()[0]
        say(f"run: {exc}")
    finally:
        if sampler is not None:
            sampler.stop()
        ended_ns = time.time_ns()
        with contextlib.suppress(DockerError, OSError):  # a full disk loses the logs, not the verdict
            save_logs(plan, project=project, settings=settings)
        if not keep_up:
            down(project=project, settings=settings)
        # The native runner's ladder: lost workers or samples, nothing measured, fail the cell here too.
        lost_workers = read_lost_workers(plan.cell_dir)
        ending = CellEnding(status, reason, exit_codes=[master_code, *worker_codes], processes=plan.workers,
                            lost_workers=lost_workers)
        status, reason = cell_status(plan.cell_dir, ending, final_figures(plan.cell_dir))
        extra |= {"master_exit_code": master_code, "worker_exit_codes": worker_codes}
        if lost_workers:
            extra["locust_workers_lost"] = lost_workers
        record = run_record(plan, status=status, reason=reason, started_ns=started_ns, ended_ns=ended_ns,
                            base_image=base_image, versions=versions, extra=extra)
        try:
            record.write(plan.cell_dir)
        except OSError as exc:  # a full disk: the cell fails and says so, as a native cell does
            status, reason = "failed", f"cannot write {plan.cell_dir / 'run.json'}: {exc.strerror or exc}"
            say(f"run: {reason}")
    return DockerRunResult(plan.cell_dir, status, reason, master_code, time.monotonic() - t0)


def build_report(cell_dir: Path) -> int:
    """The cell's report, built on the host as every runner builds it; the exit status."""
    return build_reports([cell_dir])


def build_parser() -> argparse.ArgumentParser:
    d = DockerRunPlan(run_id="x")
    parser = argparse.ArgumentParser(prog="python -m sioharness.dockertools.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default=d.mode, choices=ASYNC_MODES)
    parser.add_argument("--server", default=d.server, help="dev, gunicorn, or uvicorn (asgi)")
    parser.add_argument("--scenario", default=d.scenario, choices=sorted(SCENARIO_USERS))
    parser.add_argument("--workers", type=int, default=d.workers, help="Locust worker containers")
    parser.add_argument("--samples-via-master", action="store_true",
                        help="workers with no results mount send their samples through the master")
    parser.add_argument("--run-id", default="", help="results/<run-id>/ (default: <timestamp>-docker)")
    parser.add_argument("--base", default="auto", help="auto, public, local, or an image name")
    parser.add_argument("--no-build", action="store_true", help="use the images as they are")
    parser.add_argument("--no-report", action="store_true", help="skip python -m reports")
    parser.add_argument("--keep-up", action="store_true", help="leave the stack running (make docker-down)")
    add_load_options(parser, skip=("processes",),
                     title="the load (default: the table's, docs/load-generator.md#parameters)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load = LoadShape(**given_load_options(args))
        plan = DockerRunPlan(mode=args.mode, server=args.server, scenario=args.scenario, load=load,
                             workers=args.workers, run_id=args.run_id,
                             samples_via_master=args.samples_via_master)
        base = resolve_base(args.base)
        result = run_headless(plan, base_image=base, build_images=not args.no_build, keep_up=args.keep_up)
    except (DockerError, ValueError) as exc:
        print(f"docker_run: {exc}", file=sys.stderr)
        return 2
    say(f"run: {result.status}{' (' + result.reason + ')' if result.reason else ''} in {result.elapsed_s:.0f} s; "
        f"cell {result.cell_dir}")
    code = 0 if result.status == "ok" else 1
    if not args.no_report:
        code = max(code, build_report(result.cell_dir))
    return code


if __name__ == "__main__":
    sys.exit(main())
