"""Shared pieces of the Docker path: names, paths, and calling docker / compose.

Standard library only, so ``python3 -m sioharness.dockertools.engine up`` works on a
machine that has no ``.venv`` yet.

Compose is found as v2 (``docker compose``) first, then v1
(``docker-compose``); the compose file works with both.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

#: the checkout: the Docker path builds its images from the repository (an installed harness runs natively)
REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"

#: The standard public base; machines that cannot reach a registry use LOCAL_BASE_IMAGE.
PUBLIC_BASE_IMAGE = "python:3.11-slim"
#: Built from Debian packages by ``sioharness.dockertools.base``.
LOCAL_BASE_IMAGE = "sio-loadharness/base:bookworm"
TARGET_IMAGE = "sio-loadharness/target:latest"
LOCUST_IMAGE = "sio-loadharness/locust:latest"
#: Compose project name used when none is given (COMPOSE_PROJECT_NAME wins).
DEFAULT_PROJECT = "sio-loadharness"
#: The non-root user the images run as (see docker/Dockerfile).
IMAGE_UID = 10001
IMAGE_GID = 10001
#: Label every image docker/Dockerfile builds carries (clean-ups filter on it).
PROJECT_LABEL = "org.sio-loadharness.project=sio-loadharness"


class DockerError(RuntimeError):
    """A docker or compose command failed; the message says which and why."""


def cache_dir() -> Path:
    """Where the base-image tarball and a started engine's data live.

    Outside the repository, so it survives fresh clones on the same machine.
    ``SIO_CACHE_DIR`` moves it.
    """
    configured = os.environ.get("SIO_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sio-loadharness"


def docker_binary() -> str | None:
    return shutil.which("docker")


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    cwd: Path = REPO_ROOT,
    nice: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a deadline; on failure raise DockerError with its output's tail."""
    full = (["nice", "-n", "10"] if nice and shutil.which("nice") else []) + list(argv)
    try:
        result = subprocess.run(
            full,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise DockerError(f"{' '.join(argv[:4])} ... did not finish within {timeout:.0f} s") from None
    except FileNotFoundError:
        raise DockerError(f"{argv[0]}: command not found") from None
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout or "").strip().splitlines()[-25:])
        raise DockerError(f"{' '.join(argv)} exited {result.returncode}\n{tail}")
    return result


def engine_status(timeout: float = 10.0) -> tuple[bool, str]:
    """(reachable, detail): the engine's version, or why it cannot be reached."""
    docker = docker_binary()
    if docker is None:
        return False, "the docker command is not installed"
    try:
        result = run([docker, "info", "--format", "{{.ServerVersion}}"], timeout=timeout, check=False)
    except DockerError as exc:
        return False, str(exc)
    output = (result.stdout or "").strip()
    if result.returncode != 0 or not output or "error" in output.lower():
        return False, output.splitlines()[-1] if output else f"docker info exited {result.returncode}"
    return True, output.splitlines()[-1]


@functools.lru_cache(maxsize=1)
def installed_composes() -> list[tuple[str, ...]]:
    """Every compose this machine has: ``docker compose`` (v2) first, then ``docker-compose`` (v1)."""
    found: list[tuple[str, ...]] = []
    docker = docker_binary()
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            found.append((docker, "compose"))
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        found.append((legacy,))
    return found


def compose_command() -> tuple[str, ...]:
    """``docker compose`` (v2) when the plugin exists, else ``docker-compose`` (v1).

    ``SIO_COMPOSE`` overrides, e.g. ``SIO_COMPOSE=docker-compose`` to test v1
    on a machine that has both.
    """
    override = os.environ.get("SIO_COMPOSE")
    if override:
        return tuple(override.split())
    found = installed_composes()
    if not found:
        raise DockerError("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")
    return found[0]


def compose_version() -> str:
    result = run([*compose_command(), "version", "--short"], timeout=30, check=False)
    return (result.stdout or "").strip().splitlines()[-1] if result.stdout else "unknown"


def compose(
    args: Sequence[str],
    *,
    project: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    check: bool = True,
    capture: bool = True,
    nice: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run compose on the repository's compose file, for one project."""
    project = project or os.environ.get("COMPOSE_PROJECT_NAME") or DEFAULT_PROJECT
    if not COMPOSE_FILE.is_file():
        raise DockerError(f"the Docker path runs from a checkout of the harness: {COMPOSE_FILE} is missing "
                          "(an installed harness runs natively: sioharness bench)")
    argv = [*compose_command(), "-f", str(COMPOSE_FILE), "-p", project, *args]
    merged = dict(os.environ)
    if env:
        merged.update(env)
    return run(argv, timeout=timeout, env=merged, check=check, capture=capture, nice=nice)


def image_exists(name: str) -> bool:
    docker = docker_binary()
    if docker is None:
        return False
    return run([docker, "image", "inspect", name], timeout=30, check=False).returncode == 0


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def say(message: str) -> None:
    """Progress on stderr, so stdout stays for what a caller may parse."""
    print(message, file=sys.stderr, flush=True)
