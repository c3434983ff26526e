"""The compose stack from the command line: build the images, open the web UI, take it down.

    python3 -m sioharness.dockertools.stack build [--base auto|public|local|IMAGE]
    python3 -m sioharness.dockertools.stack ui [--mode gevent] [--server dev] [--workers 2]
    python3 -m sioharness.dockertools.stack down

A headless run of one scenario is ``python -m sioharness.dockertools.run``.

``--base auto`` (the default) builds from ``$BASE_IMAGE`` when set, else from
the local Debian base when this machine has made one (no registry here),
else from ``python:3.11-slim``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from sioharness.core.cells import cell_name
from sioharness.core.local_http import open_url
from sioharness.dockertools.cli import (
    IMAGE_GID,
    IMAGE_UID,
    LOCAL_BASE_IMAGE,
    PROJECT_LABEL,
    PUBLIC_BASE_IMAGE,
    REPO_ROOT,
    DockerError,
    cache_dir,
    compose,
    docker_binary,
    engine_status,
    image_exists,
    is_root,
    run,
    say,
)

ASYNC_MODES = ("threading", "eventlet", "gevent", "asgi")
SERVERS = ("dev", "gunicorn", "uvicorn")
#: Services a run or the web UI starts (Redis only with the mq profile).
CORE_SERVICES = ("target", "master", "worker")


def resolve_base(choice: str = "auto") -> str:
    """The image the project's images build from, making the local base when it is chosen."""
    if choice == "auto":
        choice = os.environ.get("BASE_IMAGE") or ("local" if _local_base_known() else "public")
    if choice == "public":
        return PUBLIC_BASE_IMAGE
    if choice == "local":
        from sioharness.dockertools.base import ensure_base

        ensure_base()
        return LOCAL_BASE_IMAGE
    return choice


def _local_base_known() -> bool:
    return image_exists(LOCAL_BASE_IMAGE) or any(cache_dir().glob("base-*.tar"))


def harness_ids() -> tuple[int, int]:
    """uid:gid for the Locust containers: the host user's, or the image's own for root."""
    if is_root() or not hasattr(os, "getuid"):
        return IMAGE_UID, IMAGE_GID
    return os.getuid(), os.getgid()


def prepare_results_dir(path: Path) -> None:
    """Create a folder the containers can write to (owned by the image's user when we are root)."""
    path.mkdir(parents=True, exist_ok=True)
    if is_root():
        uid, gid = harness_ids()
        os.chown(path, uid, gid)


@dataclass
class StackSettings:
    """What the compose file reads from the environment."""

    base_image: str = PUBLIC_BASE_IMAGE
    mode: str = "threading"
    server: str = "dev"
    target_port: int = 5050
    web_port: int = 8089
    #: folder under results/ the workers record to; "" = no recording
    results_subdir: str = ""
    master_args: str = ""
    worker_args: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ASYNC_MODES:
            raise ValueError(f"--mode must be one of {', '.join(ASYNC_MODES)}, got {self.mode!r}")
        if self.server not in SERVERS:
            raise ValueError(f"--server must be one of {', '.join(SERVERS)}, got {self.server!r}")
        for name in ("target_port", "web_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ValueError(f"{name.replace('_', ' ')} must be 1..65535, got {getattr(self, name)}")

    def env(self) -> dict[str, str]:
        uid, gid = harness_ids()
        return {
            "BASE_IMAGE": self.base_image,
            "TARGET_ASYNC_MODE": self.mode,
            "TARGET_SERVER": self.server,
            "TARGET_HOST_PORT": str(self.target_port),
            "LOCUST_WEB_PORT": str(self.web_port),
            "HARNESS_RESULTS_DIR": f"/results/{self.results_subdir}" if self.results_subdir else "",
            "LOCUST_MASTER_ARGS": self.master_args,
            "LOCUST_WORKER_ARGS": self.worker_args,
            "HARNESS_UID": str(uid),
            "HARNESS_GID": str(gid),
        } | self.extra


def build(settings: StackSettings, *, project: str | None = None) -> float:
    """Build every image the stack's tests and profiles run: target, Locust and Redis.

    Cached layers make a rebuild take seconds; a machine that never built
    them gets all of them, so no test relies on an image left from before.
    """
    started = time.monotonic()
    say(f"build: images from {settings.base_image}")
    compose(["--profile", "mq", "build", "target", "master", "redis"], project=project, env=settings.env(),
            timeout=1800, nice=True, capture=False)
    prune_dangling()
    return time.monotonic() - started


def prune_dangling() -> None:
    """Drop untagged images left by rebuilds: only this project's (by label)."""
    run([docker_binary() or "docker", "image", "prune", "--force", "--filter", f"label={PROJECT_LABEL}"],
        timeout=120, check=False)


#: the Locust worker services: with the results mount, and without ("relay" profile)
WORKER_SERVICES = ("worker", "relay-worker")


def profiles_for(services: Iterable[str]) -> list[str]:
    """The compose profile flags that make ``services`` visible (the relay workers are in "relay")."""
    return ["--profile", "relay"] if "relay-worker" in services else []


def up(settings: StackSettings, services: tuple[str, ...] = CORE_SERVICES, *, workers: int = 1,
       project: str | None = None) -> None:
    """Start services detached (the images must exist: build first)."""
    args = ["up", "-d", "--no-build"]
    for worker_service in WORKER_SERVICES:
        if worker_service in services:
            args += ["--scale", f"{worker_service}={workers}"]
    compose([*profiles_for(services), *args, *services], project=project, env=settings.env(), timeout=300)


def down(*, project: str | None = None, settings: StackSettings | None = None) -> None:
    """Remove the project's containers and network (Redis too)."""
    env = (settings or StackSettings()).env()
    compose(["--profile", "mq", "--profile", "relay", "down", "--remove-orphans", "--timeout", "10"],
            project=project, env=env, timeout=180)


def wait_http(url: str, timeout: float = 90.0) -> bool:
    """True once ``url`` answers 200 (containers on a busy host take a few seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open_url(url, timeout=3) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m sioharness.dockertools.stack",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p_build = sub.add_parser("build", help="build the target and Locust images")
    p_build.add_argument("--base", default="auto", help="auto, public, local, or an image name (default auto)")
    p_ui = sub.add_parser("ui", help="target + Locust master (web UI) + workers, detached")
    p_ui.add_argument("--base", default="auto", help="as for build")
    p_ui.add_argument("--mode", default="threading", choices=ASYNC_MODES)
    p_ui.add_argument("--server", default="dev", choices=SERVERS)
    p_ui.add_argument("--workers", type=int, default=2)
    p_ui.add_argument("--web-port", type=int, default=8089)
    p_ui.add_argument("--target-port", type=int, default=5050)
    sub.add_parser("down", help="remove the stack's containers and network")
    args = parser.parse_args(argv)

    reachable, detail = engine_status()
    if not reachable:
        print(f"docker_stack: no Docker engine: {detail}\n"
              "  start one (as root: python3 -m sioharness.dockertools.engine up)", file=sys.stderr)
        return 2
    try:
        if args.action == "down":
            down()
            return 0
        base = resolve_base(args.base)
        if args.action == "build":
            seconds = build(StackSettings(base_image=base))
            say(f"build: done in {seconds:.0f} s")
            return 0
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-docker-ui"
        settings = StackSettings(base_image=base, mode=args.mode, server=args.server,
                                 web_port=args.web_port, target_port=args.target_port,
                                 results_subdir=f"{run_id}/{cell_name(args.mode, args.server, 'ui')}")
        prepare_results_dir(REPO_ROOT / "results" / settings.results_subdir)
        build(settings)
        up(settings, workers=args.workers)
        if not wait_http(f"http://127.0.0.1:{settings.web_port}/"):
            raise DockerError(f"the web UI did not answer on 127.0.0.1:{settings.web_port}; "
                              "see `docker compose logs master`")
        print(f"web UI: http://127.0.0.1:{settings.web_port}  (target {args.mode}-{args.server} at "
              f"http://127.0.0.1:{settings.target_port}, {args.workers} worker(s); samples in "
              f"results/{settings.results_subdir})\nstop with: make docker-down")
    except (DockerError, ValueError) as exc:
        print(f"docker_stack: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
