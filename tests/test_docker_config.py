"""The Docker files and commands, checked without an engine.

Compose validates and renders its file with no engine (v1 and v2); the rest
is the scripts' own logic: which mirror the base is built from, when its
cache is reused, what a headless run asks Locust for, and that the engine
command never stops a process it did not start.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sioharness.bench.profile import LoadShape
from sioharness.dockertools import base as docker_base
from sioharness.dockertools import engine as docker_engine
from sioharness.dockertools import run as docker_run
from sioharness.dockertools.cli import COMPOSE_FILE, DOCKERFILE, REPO_ROOT
from sioharness.dockertools.run import DockerRunPlan

from .compose_params import with_each_compose

pytestmark = pytest.mark.docker


def render(compose: list[str], *args: str, **env: str) -> str:
    result = subprocess.run([*compose, "-f", str(COMPOSE_FILE), "-p", "siolh-config", *args],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
                            env=os.environ | {"DOCKER_HOST": "unix:///nonexistent.sock"} | env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@with_each_compose
def test_compose_file_is_valid_without_an_engine(compose: list[str]) -> None:
    render(compose, "config", "-q")


@with_each_compose
def test_every_published_port_is_bound_to_loopback(compose: list[str]) -> None:
    text = render(compose, "--profile", "mq", "config")
    # v1 renders "- 127.0.0.1:5050:5000/tcp"; v2 a long form with host_ip.
    short = re.findall(r"^\s*-\s*['\"]?([\d.]*):?(\d+):(\d+)(?:/\w+)?['\"]?\s*$", text, re.M)
    host_ips = re.findall(r"host_ip:\s*(\S+)", text)
    published = re.findall(r"published:\s*['\"]?(\d+)", text)
    bindings = [(ip, port) for ip, port, _ in short] + list(zip(host_ips, published, strict=False))
    # (compose v1 renders every profile's services: the scaleout proxy's 5080 too)
    assert sorted(port for _, port in bindings) in (["5050", "8089"], ["5050", "5080", "8089"])
    assert {ip for ip, _ in bindings} == {"127.0.0.1"}


@with_each_compose
def test_mode_server_and_base_come_from_the_environment(compose: list[str]) -> None:
    text = render(compose, "config", TARGET_ASYNC_MODE="eventlet", TARGET_SERVER="gunicorn",
                  BASE_IMAGE="sio-loadharness/base:bookworm", TARGET_HOST_PORT="5999")
    assert re.search(r"TARGET_ASYNC_MODE:\s*['\"]?eventlet", text)
    assert re.search(r"TARGET_SERVER:\s*['\"]?gunicorn", text)
    assert re.search(r"BASE_IMAGE:\s*['\"]?sio-loadharness/base:bookworm", text)
    assert "5999" in text
    # The target listens on every interface inside its container.
    assert re.search(r"TARGET_HOST:\s*['\"]?0\.0\.0\.0", text)


@with_each_compose
def test_defaults_use_the_public_base_and_threading(compose: list[str]) -> None:
    env = {k: "" for k in ("BASE_IMAGE", "TARGET_ASYNC_MODE", "TARGET_SERVER")}
    clean = {k: v for k, v in os.environ.items() if k not in env}
    result = subprocess.run([*compose, "-f", str(COMPOSE_FILE), "-p", "siolh-config", "config"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, env=clean)
    assert result.returncode == 0, result.stderr
    assert re.search(r"BASE_IMAGE:\s*['\"]?python:3\.11-slim", result.stdout)
    assert re.search(r"TARGET_ASYNC_MODE:\s*['\"]?threading", result.stdout)


@with_each_compose
def test_redis_is_only_in_the_mq_profile(compose: list[str]) -> None:
    text = render(compose, "--profile", "mq", "config")
    redis = text[text.index("  redis:"):]
    assert re.search(r"profiles:\s*\n\s*-\s*['\"]?mq", redis)


def dockerfile_stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\w+)\s*$", text, flags=re.M | re.I)
    return dict(zip(parts[1::2], parts[2::2], strict=True))  # split with one group: name, body, name, body...


def test_dockerfile_keeps_the_public_base_as_default() -> None:
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE.read_text(), re.M)


def test_images_run_as_a_non_root_user_and_the_target_has_a_health_check() -> None:
    stages = dockerfile_stages()
    assert set(stages) >= {"stack", "target", "locust"}
    users = re.findall(r"^USER\s+(\S+)", stages["stack"], re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "USER" not in stages["target"] and "USER" not in stages["locust"]
    assert re.search(r"^HEALTHCHECK .*\n?.*healthcheck\.py", stages["target"], re.M)
    assert "requirements.lock" in stages["stack"]


def test_build_context_keeps_out_the_virtualenv_and_results() -> None:
    rules = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # everything is out unless let back in
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert not allowed & {".venv", "results", ".git", "tests"}
    for copied in re.findall(r"^COPY\s+(.+)\s+\S+$", DOCKERFILE.read_text(), re.M):
        for source in copied.split():
            assert source.rstrip("/") in allowed, f"{source} is copied but excluded from the build context"


# --- base image: mirror and cache key -------------------------------------------

def test_mirror_read_from_deb822_sources(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\n# comment\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n")
    assert docker_base.apt_mirror([sources]) == "http://mirror.example/debian"


def test_mirror_read_from_one_line_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list"
    sources.write_text("# deb http://old/debian bookworm main\n"
                       "deb [signed-by=/usr/share/keyrings/k.gpg] http://one.example/debian bookworm main\n")
    assert docker_base.apt_mirror([sources]) == "http://one.example/debian"


def test_mirror_falls_back_to_debian_when_none_matches(tmp_path: Path) -> None:
    sources = tmp_path / "other.list"
    sources.write_text("deb http://x.example/ubuntu jammy main\n")
    assert docker_base.apt_mirror([sources, tmp_path / "missing.sources"]) == docker_base.DEFAULT_MIRROR


def test_cache_key_changes_with_the_ca_bundle_and_mirror() -> None:
    key = docker_base.cache_key("http://m/debian", b"bundle-1")
    assert key == docker_base.cache_key("http://m/debian", b"bundle-1")
    assert key != docker_base.cache_key("http://m/debian", b"bundle-2")
    assert key != docker_base.cache_key("http://n/debian", b"bundle-1")


def test_base_image_trusts_the_bundle_it_carries() -> None:
    changes = docker_base.image_config("k")
    env = dict(c.split(" ", 1)[1].split("=", 1) for c in changes if c.startswith("ENV "))
    for name in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"):
        assert env[name] == docker_base.IMAGE_CA_BUNDLE


# --- engine: never stops what it did not start ----------------------------------

def test_engine_down_leaves_a_foreign_process_alone(tmp_path: Path) -> None:
    paths = docker_engine.EnginePaths(data_root=tmp_path / "data", run_dir=tmp_path / "run")
    paths.run_dir.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        paths.pid_file.write_text(str(other.pid))
        assert not docker_engine.is_our_dockerd(other.pid, paths)
        assert docker_engine.stop(paths) is False
        assert other.poll() is None  # still running
        assert not paths.pid_file.exists()  # the stale pid file is gone
    finally:
        other.kill()
        other.wait()


def test_engine_down_without_a_pid_file_does_nothing(tmp_path: Path) -> None:
    paths = docker_engine.EnginePaths(data_root=tmp_path / "data", run_dir=tmp_path / "run")
    assert docker_engine.stop(paths) is False


# --- headless run plan -------------------------------------------------------------

def test_headless_plan_asks_the_master_for_workers_results_and_the_scenario() -> None:
    plan = DockerRunPlan(mode="gevent", scenario="echo", load=LoadShape(users=8, duration_s=12, emit_rate=5),
                         workers=3, run_id="r1")
    args = plan.master_args()
    assert plan.cell == "gevent-dev--echo" and plan.subdir == "r1/gevent-dev--echo"
    assert args[args.index("--expect-workers") + 1] == "3"
    assert args[args.index("--results-dir") + 1] == "/results/r1/gevent-dev--echo"
    assert args[args.index("--csv") + 1] == "/results/r1/gevent-dev--echo/locust"
    assert args[args.index("--run-time") + 1] == "12s"
    assert args[args.index("--emit-rate") + 1] == "5" and args[args.index("--transport") + 1] == "websocket"
    assert args[-1] == "EchoUser"
    env = plan.settings("img").env()
    assert env["HARNESS_RESULTS_DIR"] == "/results/r1/gevent-dev--echo" and env["TARGET_ASYNC_MODE"] == "gevent"


def test_relay_plan_uses_the_volume_less_workers_and_asks_the_master_for_their_samples() -> None:
    plan = DockerRunPlan(mode="gevent", scenario="echo", workers=2, run_id="r1", samples_via_master=True)
    assert "--samples-via-master" in plan.master_args() and plan.worker_service == "relay-worker"
    assert "--samples-via-master" not in DockerRunPlan(run_id="r2").master_args()


@with_each_compose
def test_relay_workers_have_no_results_mount_and_record_nowhere_of_their_own(compose: list[str]) -> None:
    import yaml

    services = yaml.safe_load(render(compose, "--profile", "relay", "config"))["services"]
    relay, worker = services["relay-worker"], services["worker"]
    assert not relay.get("volumes"), relay.get("volumes")
    assert worker.get("volumes"), "the ordinary workers keep results/ mounted"
    assert relay["environment"].get("LOADTEST_RESULTS_DIR", "") == ""
    assert relay["environment"]["LOADTEST_I_OWN_THIS_HOST"] == "1"


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "asgi", "server": "dev"}, "asgi runs under uvicorn"),
    ({"scenario": "nope"}, "--scenario must be one of"),
    ({"workers": 0}, "--workers must be >= 1"),
])
def test_headless_plan_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        DockerRunPlan(run_id="r", **kwargs)


def test_headless_run_checks_the_load_as_a_native_cell_does(capsys: pytest.CaptureFixture[str]) -> None:
    assert docker_run.main(["--warmup", "10", "--duration", "10", "--no-build"]) == 2
    assert "--warmup (profile key warmup_s) must be shorter than the duration (10 s)" in capsys.readouterr().err
