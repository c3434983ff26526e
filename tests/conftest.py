"""Shared fixtures: real targets on free loopback ports, always stopped."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

# Locust patches ssl (gevent) when first imported, and a test module importing it after another imported
# ssl (socketio's Redis manager, urllib3) fails with RecursionError. Imported here, before any test module,
# it comes first in every pytest process whatever files a share holds, as it does in a Locust process.
import locust  # noqa: F401  isort: skip
import pytest

from target_app.process import TargetProcess, start_target

# (async mode, server) for every way the target can run.
DEV_TARGETS = [("threading", "dev"), ("eventlet", "dev"), ("gevent", "dev"), ("asgi", "uvicorn")]
GUNICORN_TARGETS = [("threading", "gunicorn"), ("eventlet", "gunicorn"), ("gevent", "gunicorn")]
ALL_TARGETS = DEV_TARGETS + GUNICORN_TARGETS


def target_id(param: tuple[str, str]) -> str:
    return "-".join(param)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


def running_target(mode: str, server: str, log_dir: Path, *extra_args: str) -> Iterator[TargetProcess]:
    """Yield a healthy target; on failure show its log; always stop it."""
    log_path = log_dir / f"target-{mode}-{server}.log"
    with start_target(mode, server, log_path=log_path, extra_args=list(extra_args)) as target:
        yield target
