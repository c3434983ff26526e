"""The Docker path as a user meets it: images, the stack, a headless run, the web UI, down.

Needs a Docker engine. With none reachable these tests skip, saying why;
``make docker-test`` (SIO_DOCKER_START_ENGINE=1) starts one first when run
as root on Debian, and stops it by its pid at the end. Images build from
``SIO_DOCKER_BASE`` (auto, public, local or an image name); the default for
root is the local Debian base (no registry needed), built once and cached
outside the repository.

Traffic: only to 127.0.0.1 (the published ports) and between the test's own
containers on the compose network it creates.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow.parquet as pq
import pytest
import socketio

from sioharness.bench.profile import LoadShape
from sioharness.dockertools import engine as docker_engine
from sioharness.dockertools.cli import (
    LOCUST_IMAGE,
    REPO_ROOT,
    TARGET_IMAGE,
    DockerError,
    compose,
    engine_status,
    is_root,
    run,
)
from sioharness.dockertools.run import DockerRunPlan, build_report, container_ids, run_headless
from sioharness.dockertools.stack import StackSettings, build, down, resolve_base, up
from target_app.process import free_port
from tests.disk import fill, tmpfs

pytestmark = pytest.mark.docker

PROJECT = "siolh-test"


def two_free_ports() -> tuple[int, int]:
    first = free_port()
    while (second := free_port()) == first:
        pass
    return first, second


#: Published ports free when the tests start: other work on the machine (a web UI on 8089,
#: a target on 5050) must not fail the stack's setup, as fixed ports did on a busy machine.
TARGET_PORT, WEB_PORT = two_free_ports()
PORTS = {"target_port": TARGET_PORT, "web_port": WEB_PORT}
TARGET_URL = f"http://127.0.0.1:{TARGET_PORT}"
READY_TIMEOUT_S = 90.0
#: Serializes Docker test sessions on this machine (see ``exclusive``).
LOCK_PATH = Path(tempfile.gettempdir()) / "sio-loadharness-docker-tests.lock"
LOCK_TIMEOUT_S = 300.0
#: Packages whose versions in the images must equal requirements.lock.
PINNED = ("flask-socketio", "python-socketio", "python-engineio", "eventlet", "gevent", "locust", "redis")


# --- fixtures ------------------------------------------------------------------------

@contextlib.contextmanager
def exclusive(path: Path, timeout: float) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (True), or give up after ``timeout`` (False).

    Two test sessions on one machine share the engine, the compose project and
    the published ports; the second waits for the first instead of tearing
    its stack down.
    """
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(1)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    """A reachable engine; started here (and stopped by its pid) only when asked and allowed."""
    reachable, detail = engine_status()
    if not reachable and os.environ.get("SIO_DOCKER_START_ENGINE") != "1":
        pytest.skip(f"no Docker engine reachable ({detail}); `make docker-test` starts one (root, Debian)")
    with exclusive(LOCK_PATH, LOCK_TIMEOUT_S) as locked:
        if not locked:
            pytest.skip(f"another Docker test session held {LOCK_PATH} for {LOCK_TIMEOUT_S:.0f} s")
        yield from _engine()


def _engine() -> Iterator[None]:
    reachable, detail = engine_status()
    paths = docker_engine.EnginePaths.default()
    started = False
    if not reachable:
        if os.environ.get("SIO_DOCKER_START_ENGINE") != "1":
            pytest.skip(f"no Docker engine reachable ({detail}); `make docker-test` starts one (root, Debian)")
        if not is_root():
            pytest.skip(f"no Docker engine reachable ({detail}), and starting one needs root")
        try:
            started = docker_engine.start(paths, install=True)
        except DockerError as exc:
            pytest.skip(f"no Docker engine reachable, and starting one failed: {exc}")
    try:
        yield
    finally:
        if started:
            assert docker_engine.stop(paths), "the engine this test started could not be stopped"
            pid = docker_engine.read_pid(paths)
            assert pid is None or not docker_engine.is_our_dockerd(pid, paths)


@pytest.fixture(scope="module")
def base_image(engine: None) -> str:
    choice = os.environ.get("SIO_DOCKER_BASE") or ("local" if is_root() else "auto")
    return resolve_base(choice)


@pytest.fixture(scope="module")
def stack(base_image: str) -> Iterator[StackSettings]:
    """Images built from the base; the test project taken down before and after."""
    for port in (TARGET_PORT, WEB_PORT):
        if _port_open(port):
            down(project=PROJECT)
            if _port_open(port):
                pytest.fail(f"127.0.0.1:{port} is already in use; the Docker tests publish the stack there "
                            "(another stack up? `make docker-down`)")
    settings = StackSettings(base_image=base_image, **PORTS)
    down(project=PROJECT, settings=settings)
    build(settings, project=PROJECT)
    try:
        yield settings
    finally:
        down(project=PROJECT, settings=settings)


# --- helpers ---------------------------------------------------------------------------

def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def wait_http_200(url: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            status, _ = http_get(url, timeout=3)
            if status == 200:
                return
            last = status
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer 200 within {timeout:.0f} s (last: {last})")


def wait_healthy(service: str, timeout: float = READY_TIMEOUT_S) -> None:
    ids = compose(["ps", "-q", service], project=PROJECT, timeout=60).stdout.split()
    assert ids, f"no {service} container"
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = run(["docker", "inspect", "--format", "{{.State.Health.Status}}", ids[0]], timeout=30).stdout.strip()
        if status == "healthy":
            return
        time.sleep(0.5)
    pytest.fail(f"{service} health is {status!r} after {timeout:.0f} s")


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        name, _, version = line.partition("==")
        if version:
            pins[name.strip().lower()] = version.strip()
    return pins


def versions_in(image: str) -> dict[str, str]:
    snippet = ("import json\nfrom importlib import metadata\n"
               f"print(json.dumps({{n: metadata.version(n) for n in {list(PINNED)!r}}}))")
    out = run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", snippet],
              timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


def echo_over(transport: str, payload: Any) -> Any:
    client = socketio.Client(reconnection=False)
    try:
        client.connect(TARGET_URL, transports=[transport], wait_timeout=15)
        assert client.transport() == transport
        return client.call("echo", payload, timeout=15)
    finally:
        client.disconnect()


# --- tests -------------------------------------------------------------------------------

def test_images_build_from_the_base_with_the_pinned_stack(stack: StackSettings) -> None:
    base_layers = json.loads(run(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}",
                                  stack.base_image], timeout=30).stdout)
    pins = pinned_versions()
    for image in (TARGET_IMAGE, LOCUST_IMAGE):
        info = json.loads(run(["docker", "image", "inspect", image], timeout=30).stdout)[0]
        assert info["RootFS"]["Layers"][: len(base_layers)] == base_layers, \
            f"{image} is not built on {stack.base_image}"
        assert info["Config"]["User"] not in ("", "0", "root") and not info["Config"]["User"].startswith("0:")
        assert versions_in(image) == {name: pins[name] for name in PINNED}
    target = json.loads(run(["docker", "image", "inspect", TARGET_IMAGE], timeout=30).stdout)[0]
    assert "healthcheck.py" in " ".join(target["Config"]["Healthcheck"]["Test"])


@pytest.mark.parametrize("mode", ["threading", "eventlet", "gevent"])
def test_target_container_serves_each_async_mode(stack: StackSettings, mode: str) -> None:
    settings = StackSettings(base_image=stack.base_image, mode=mode, **PORTS)
    up(settings, ("target",), project=PROJECT)
    wait_http_200(f"{TARGET_URL}/healthz")
    wait_healthy("target")
    payload = {"mode": mode, "n": [1, 2.5, None]}
    assert echo_over("websocket", payload) == payload
    assert echo_over("polling", payload) == payload
    stats = json.loads(http_get(f"{TARGET_URL}/stats")[1])
    assert stats["async_mode"] == mode and stats["server"] == "dev"
    assert stats["events"].get("echo", 0) >= 2


def test_mq_profile_target_publishes_through_redis(stack: StackSettings) -> None:
    settings = StackSettings(base_image=stack.base_image, mode="gevent", **PORTS,
                             extra={"TARGET_MESSAGE_QUEUE": "redis://redis:6379/0"})
    compose(["--profile", "mq", "up", "-d", "--no-build", "target", "redis"], project=PROJECT,
            env=settings.env(), timeout=300)
    wait_http_200(f"{TARGET_URL}/healthz")  # healthy only once subscribed to Redis
    received: list[Any] = []
    client = socketio.Client(reconnection=False)
    client.on("fanout", received.append)
    try:
        client.connect(TARGET_URL, transports=["websocket"], wait_timeout=15)
        ack = client.call("broadcast", {"payload": {"t_ns": 1}}, timeout=15)
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.disconnect()
    assert ack["recipients"] >= 1
    assert received and received[0]["payload"] == {"t_ns": 1}
    queue = json.loads(http_get(f"{TARGET_URL}/stats")[1])["message_queue"]
    assert queue["listening"] is True and queue["publish_failures"] == 0
    down(project=PROJECT, settings=settings)


def test_workers_without_a_volume_deliver_their_samples_through_the_master(stack: StackSettings) -> None:
    """Compose profile "relay": worker containers with no results mount, as on hosts that share no disk."""
    run_id = f"pytest-docker-relay-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    plan = DockerRunPlan(mode="gevent", scenario="echo", **PORTS,
                         load=LoadShape(users=6, spawn_rate=6, duration_s=8, warmup_s=1, emit_rate=5),
                         workers=2, run_id=run_id, samples_via_master=True)
    mounts: list[list[str]] = []

    def record_worker_mounts() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(mounts) < 2:
            ids = container_ids("relay-worker", project=PROJECT)
            if len(ids) == 2:
                for container in ids:
                    out = run(["docker", "inspect", "--format", "{{json .Mounts}}", container], timeout=30).stdout
                    mounts.append([m["Destination"] for m in json.loads(out)])
                return
            time.sleep(1)

    watcher = threading.Thread(target=record_worker_mounts, daemon=True)
    watcher.start()
    try:
        result = run_headless(plan, base_image=stack.base_image, project=PROJECT, build_images=False)
        watcher.join(timeout=5)
        cell = result.cell_dir
        assert result.status == "ok", f"{result.reason}\n{(cell / 'locust.log').read_text()[-3000:]}"
        assert len(mounts) == 2 and all("/results" not in m for m in mounts), f"worker mounts: {mounts}"
        shards = sorted(cell.glob("samples-*.parquet"))
        table = pd.concat(pq.read_table(path).to_pandas() for path in shards)
        assert table["worker"].nunique() == 2, "both workers' samples arrived through the master"
        relayed = [json.loads(p.read_text()) for p in sorted(cell.glob("relayed-*.json"))]
        assert len(relayed) == 2 and all(r["final"] for r in relayed), relayed
        assert build_report(cell) == 0
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["status"] == "ok" and not summary["partial"], summary["problems"]
        # Not partial: the report's cross-check found the recorded count equal to Locust's.
        assert summary["samples"]["total"] == len(table)
    finally:
        shutil.rmtree(REPO_ROOT / "results" / run_id, ignore_errors=True)


def test_headless_run_in_containers_lands_in_results_and_reports(stack: StackSettings) -> None:
    run_id = f"pytest-docker-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    plan = DockerRunPlan(mode="gevent", scenario="echo", **PORTS,
                         load=LoadShape(users=6, spawn_rate=6, duration_s=10, warmup_s=1, emit_rate=5),
                         workers=2, run_id=run_id)
    try:
        result = run_headless(plan, base_image=stack.base_image, project=PROJECT, build_images=False)
        cell = result.cell_dir
        assert cell == REPO_ROOT / "results" / run_id / "gevent-dev--echo"
        assert result.status == "ok", f"{result.reason}\n{(cell / 'locust.log').read_text()[-3000:]}"
        assert result.master_exit_code == 0
        shards = sorted(cell.glob("samples-*.parquet"))
        tags = {path.name.rsplit("-", 1)[0] for path in shards}
        assert len(tags) == 2, f"expected shards from two workers, found {sorted(tags)}"
        table = pd.concat(pq.read_table(path).to_pandas() for path in shards)
        assert table["worker"].nunique() == 2
        assert (table["kind"] == "ack").sum() > 0 and table["ok"].all()
        run_info = json.loads((cell / "run.json").read_text())
        assert run_info["status"] == "ok" and run_info["mode"] == "gevent"
        assert run_info["docker"]["worker_exit_codes"] == [0, 0]
        assert (cell / "locust_stats.csv").is_file() and (cell / "server.csv").stat().st_size > 100

        assert build_report(cell) == 0
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["status"] == "ok" and not summary["partial"], summary["problems"]
        assert summary["error_ratio"] == 0
        assert (cell / "report.html").is_file()
    finally:
        shutil.rmtree(REPO_ROOT / "results" / run_id, ignore_errors=True)


def test_a_docker_cell_whose_workers_lose_samples_fails(stack: StackSettings) -> None:
    """The results disk fills mid-run: the worker's recorder cannot write, and the cell fails as a native one does.

    The worker's exit status is all it can leave (its accounting cannot be
    written either); the runner's status ladder reads it.
    """
    run_id = f"pytest-docker-lost-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    plan = DockerRunPlan(mode="gevent", scenario="echo", **PORTS,
                         load=LoadShape(users=4, spawn_rate=4, duration_s=8, warmup_s=1, emit_rate=50),
                         workers=1, run_id=run_id)
    outcome: list[Any] = []

    def run_cell() -> None:
        try:
            outcome.append(run_headless(plan, base_image=stack.base_image, project=PROJECT, build_images=False))
        except Exception as exc:  # the test reads it from the list
            outcome.append(exc)

    try:
        with tmpfs(REPO_ROOT / "results" / run_id, "80m", mode="0777") as disk:
            runner = threading.Thread(target=run_cell)
            runner.start()
            try:
                # Fill the disk once the worker has written a shard: it recorded, and now it cannot.
                deadline = time.monotonic() + 180
                while not list(plan.cell_dir.glob("samples-*.parquet")):
                    assert runner.is_alive() and time.monotonic() < deadline, f"no first shard: {outcome}"
                    time.sleep(0.2)
                filler = fill(disk)
                # Free it once the worker has exited (its last flush failed), so run.json can be written.
                while runner.is_alive() and not worker_exited(plan.worker_service):
                    assert time.monotonic() < deadline + plan.deadline_s, "the worker did not exit"
                    time.sleep(0.2)
                filler.unlink()
            finally:
                runner.join(timeout=plan.deadline_s + 180)
            assert not runner.is_alive()
            result = outcome[0]
            assert not isinstance(result, BaseException), result
            assert result.status == "failed" and result.reason.startswith("samples lost"), result.reason
            run_info = json.loads((plan.cell_dir / "run.json").read_text())
            assert run_info["status"] == "failed" and run_info["reason"].startswith("samples lost")
            assert run_info["docker"]["worker_exit_codes"] == [5]  # sioharness.core.exit_codes.EXIT_SAMPLES_LOST
    finally:
        shutil.rmtree(REPO_ROOT / "results" / run_id, ignore_errors=True)


def worker_exited(service: str) -> bool:
    ids = container_ids(service, project=PROJECT)
    if not ids:
        return False
    state = run(["docker", "inspect", "--format", "{{.State.Status}}", ids[0]], timeout=30, check=False).stdout
    return state.strip() == "exited"


def test_web_ui_answers_on_loopback(stack: StackSettings) -> None:
    up(stack, ("target", "master", "worker"), workers=1, project=PROJECT)
    wait_http_200(f"http://127.0.0.1:{WEB_PORT}/")
    status, body = http_get(f"http://127.0.0.1:{WEB_PORT}/")
    assert status == 200 and b"locust" in body.lower()


def test_down_leaves_no_containers_or_networks(stack: StackSettings) -> None:
    up(stack, ("target",), project=PROJECT)
    down(project=PROJECT, settings=stack)
    label = f"label=com.docker.compose.project={PROJECT}"
    assert run(["docker", "ps", "-aq", "--filter", label], timeout=30).stdout.strip() == ""
    assert run(["docker", "network", "ls", "-q", "--filter", label], timeout=30).stdout.strip() == ""
    assert not _port_open(TARGET_PORT) and not _port_open(WEB_PORT)


def test_a_second_session_waits_for_the_lock_and_then_gives_up(tmp_path: Path) -> None:
    lock = tmp_path / "docker-tests.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"h = open({str(lock)!r}, 'a'); fcntl.flock(h, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with exclusive(lock, timeout=1.5) as locked:
            assert locked is False
        assert time.monotonic() - started >= 1.5
    finally:
        holder.kill()
        holder.wait()
    with exclusive(lock, timeout=5) as locked:
        assert locked is True
