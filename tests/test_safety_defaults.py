"""Safe by default: loopback listeners, same-origin CORS, payload limits, no secrets in /stats,
and load only on loopback unless the user says they own the host.

No traffic ever goes to a non-loopback address here: the refusals happen
before anything connects (192.0.2.0/24 is TEST-NET-1, reserved for docs).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from sioharness.bench import matrix as bench
from sioharness.bench.cell import CellPlan, locust_argv
from sioharness.bench.profile import LoadShape, Scenario, TargetSpec
from sioharness.bench.redis_server import launch_redis, redis_binary
from target_app.process import TargetProcess, free_port, start_target
from target_app.settings import TargetSettings

REPO = Path(__file__).resolve().parent.parent
REMOTE = "http://192.0.2.7:5000"
needs_redis = pytest.mark.skipif(redis_binary() is None,
                                 reason="redis-server is not installed (apt-get install redis-server)")


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening socket of the process tree."""
    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    return {(conn.laddr.ip, conn.laddr.port) for proc in procs for conn in proc.net_connections("inet")
            if conn.status == psutil.CONN_LISTEN}


def listening_addresses(pid: int) -> set[str]:
    return {ip for ip, _ in listening(pid)}


def test_target_settings_default_to_safe_values() -> None:
    settings = TargetSettings()
    assert settings.host == "127.0.0.1"
    assert settings.cors_allowed_origins is None  # same origin only
    assert settings.max_http_buffer_size == 1_000_000
    assert settings.auth_token is None and settings.message_queue is None


def test_bad_message_queue_url_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="message queue must be a redis://host:port/db URL"):
        TargetSettings(message_queue="amqp://127.0.0.1")


@pytest.fixture(scope="module")
def secret_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetProcess]:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    tmp = tmp_path_factory.mktemp("safety")
    redis = launch_redis(log_path=tmp / "redis.log", extra_args=["--requirepass", "queue-pa55"])
    try:
        url = f"redis://:queue-pa55@127.0.0.1:{redis.port}/0"
        with start_target("gevent", log_path=tmp / "target.log",
                          extra_args=["--auth-token", "t0ken-s3cret", "--message-queue", url]) as target:
            target.redis = redis  # type: ignore[attr-defined]
            yield target
    finally:
        redis.stop()


@needs_redis
def test_listeners_bind_loopback_only(secret_target: TargetProcess) -> None:
    assert listening_addresses(secret_target.pid) == {"127.0.0.1"}
    assert listening_addresses(secret_target.redis.pid) == {"127.0.0.1"}  # type: ignore[attr-defined]


@needs_redis
def test_stats_and_logs_hold_no_secrets(secret_target: TargetProcess) -> None:
    document = secret_target.stats()
    assert document["message_queue"]["listening"] is True  # the password worked
    text = json.dumps(document)
    for secret in ("t0ken-s3cret", "queue-pa55", "redis://"):
        assert secret not in text
    assert set(document) == {"pid", "async_mode", "server", "uptime_s", "connected", "connected_by_namespace",
                             "connects_total", "disconnects_total", "rejected_total", "events", "message_queue",
                             "admission"}
    assert set(document["admission"]) == {"limit", "limited_by", "refused"}
    assert "queue-pa55" not in secret_target.log_tail(200)


@needs_redis
@pytest.mark.parametrize("origin, allowed", [("http://evil.example", False), (None, True), ("same", True)])
def test_cors_allows_the_targets_own_origin_only(secret_target: TargetProcess, origin: str | None,
                                                 allowed: bool) -> None:
    request = urllib.request.Request(secret_target.url + "/socket.io/?EIO=4&transport=polling")
    if origin:
        request.add_header("Origin", secret_target.url if origin == "same" else origin)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert (status == 200) is allowed, status


def test_runner_refuses_a_remote_target_url_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["--target-url", REMOTE, "--scenarios", "echo", "--results", str(tmp_path), "--run-id", "r"])
    err = capsys.readouterr().err
    assert code == 2
    assert "refusing to load 192.0.2.7" in err and "--i-own-this-host" in err
    assert not (tmp_path / "r").exists(), "nothing was started"


def test_runner_refuses_a_target_url_where_nothing_listens(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from target_app.process import free_port

    url = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    code = bench.main(["--target-url", url, "--scenarios", "echo", "--results", str(tmp_path), "--run-id", "r"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--target-url {url}: nothing answers there (Connection refused)" in err, err
    assert not (tmp_path / "r").exists(), "no cell was tried"


def test_runner_flag_passes_ownership_on_to_locust() -> None:
    plan = CellPlan(run_id="r", target=TargetSpec("gevent", "dev"), run_dir=Path("/tmp/x"),
                    scenario=Scenario("echo", LoadShape(processes=2)), i_own_this_host=True)
    argv = locust_argv(plan, ["http://127.0.0.1:1", "http://127.0.0.1:2"])
    assert "--i-own-this-host" in argv
    assert argv[argv.index("--target-urls") + 1] == "http://127.0.0.1:1,http://127.0.0.1:2"
    assert argv[argv.index("--master-bind-host") + 1] == "127.0.0.1"


def test_locustfile_refuses_a_remote_host() -> None:
    # (--target-urls is refused the same way: see test_scaleout_units.)
    argv = [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "1", "-t", "1s",
            "--host", REMOTE, "EchoUser"]
    proc = subprocess.run(argv, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "refusing to load 192.0.2.7" in proc.stderr and "--i-own-this-host" in proc.stderr


def test_locust_web_ui_listens_on_loopback_by_default(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "locust", "-f", "locustfile.py", "--host", "http://127.0.0.1:9",
            "--web-port", str(port)]
    proc = subprocess.Popen(argv, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        found: set[str] = set()
        while time.monotonic() < deadline and not found and proc.poll() is None:
            time.sleep(0.2)
            found = {ip for ip, p in listening(proc.pid) if p == port}
        assert found == {"127.0.0.1"}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_runner_loads_an_already_running_target(tmp_path: Path) -> None:
    with start_target("gevent", log_path=tmp_path / "target.log") as target:
        code = bench.main(["--target-url", target.url, "--scenarios", "echo", "--users", "2", "--duration", "2",
                           "--warmup", "0", "--results", str(tmp_path), "--run-id", "r", "--no-report"])
        assert code == 0
        assert target.alive(), "a server the user runs is never stopped by the runner"
        info = json.loads((tmp_path / "r" / "external--echo" / "run.json").read_text())
        assert info["status"] == "ok" and info["target_url"] == target.url
        assert (info["mode"], info["server"]) == ("gevent", "dev")  # read from its /stats
        assert target.stats()["events"]["echo"] > 0
        server_csv = (tmp_path / "r" / "external--echo" / "server.csv").read_text()
        assert server_csv.count("\n") > 1, "a loopback server found by its /stats pid is sampled"


def test_a_fully_qualified_localhost_is_loopback() -> None:
    from loadtests.wire.safety import is_loopback_host, require_loopback

    for host in ("localhost.", "LOCALHOST", "127.0.0.1", "[::1]"):
        assert is_loopback_host(host), host
    require_loopback("http://localhost.:5000")


def test_own_hosts_open_the_guard_for_those_hosts_only() -> None:
    from loadtests.runtime.options import LoadSettings, check_host
    from loadtests.wire.safety import UnsafeTargetError

    settings = LoadSettings(own_hosts="10.251.3.4, box.test")
    for allowed in ("http://10.251.3.4:5000", "http://BOX.test.:80", "http://127.0.0.1:1"):
        check_host(allowed, settings)
    for refused in ("http://10.251.3.5:5000", "http://192.0.2.7", "http://box.test.evil:1"):
        with pytest.raises(UnsafeTargetError, match="refusing to load"):
            check_host(refused, settings)
    with pytest.raises(UnsafeTargetError, match="10.251.3.9"):
        LoadSettings(own_hosts="10.251.3.4", target_urls="http://10.251.3.4:1,http://10.251.3.9:1")
    with pytest.raises(ValueError, match="--own-hosts must be"):
        LoadSettings(own_hosts="http://10.251.3.4/")


def test_negative_users_are_one_line_from_the_locustfile() -> None:
    argv = [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "-u", "-5", "-t", "1s",
            "--host", "http://127.0.0.1:9", "EchoUser"]
    proc = subprocess.run(argv, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "-u/--users must be >= 0, got -5" in proc.stderr
    assert "Traceback" not in proc.stderr
