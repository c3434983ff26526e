"""The own-app path end to end: the example chat app and its locustfile on the public API.

Real processes, real sockets: the example server in two async modes, a
plain ``locust`` run, ``python -m sioharness.bench`` with ``--target-cmd``, the web
UI launcher, and the bad inputs a new user runs into.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sioharness.bench import matrix as bench
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT
from target_app.process import free_port
from tests.ui_process import running_ui

pytestmark = pytest.mark.slow

APP = REPO_ROOT / "examples" / "chat" / "app.py"
LOCUSTFILE = REPO_ROOT / "examples" / "chat" / "locustfile.py"
TARGET_CMD = f"python {APP} --port {{port}} --async-mode {{mode}}"
ENV = os.environ | {"PYTHONPATH": str(REPO_ROOT)}


def chat_stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/chat-stats", timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture()
def chat_app(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    with open(tmp_path / "app.log", "wb") as log:
        app = subprocess.Popen([sys.executable, str(APP), "--port", str(port), "--async-mode", "gevent"],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                chat_stats(url)
                break
            except OSError:
                assert app.poll() is None and time.monotonic() < deadline, (tmp_path / "app.log").read_text()
                time.sleep(0.1)
        yield url, app
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait(timeout=10)


def samples_of(cell: Path):
    import pandas as pd

    return pd.concat(pq.read_table(p).to_pandas() for p in sorted(cell.glob("samples-*.parquet")))


def test_plain_locust_run_pairs_the_declared_fanout_and_samples_the_server(
        tmp_path: Path, chat_app: tuple[str, subprocess.Popen]) -> None:
    url, app = chat_app
    cell = tmp_path / "plain" / "chat"
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "10", "-r", "10", "-t", "5s",
            "--host", url, "--results-dir", str(cell), "--target-pid", str(app.pid), "--loglevel", "WARNING",
            # Locust's --csv stats miss what users record while they stop: the report must not trust them
            # over the final counts the harness writes.
            "--csv", str(cell / "locust")]
    run = subprocess.run(argv, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    sent = chat_stats(url)

    record = json.loads((cell / "run.json").read_text())
    assert record["status"] == "ok" and record["scenario"] == "chat" and record["load"]["users"] == 10
    assert record["load_ended_ns"] - record["load_started_ns"] >= 4.9e9
    samples = samples_of(cell)
    pushes = samples[(samples.kind == "push") & (samples.name == "new_message")]
    assert len(pushes) == sent["deliveries"] > 0, "every delivery the app sent was recorded"
    assert pushes.ok.all()

    report = subprocess.run([sys.executable, "-m", "reports", str(cell)], cwd=REPO_ROOT, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["problems"] == [], summary["problems"]
    fanout = summary["fanout"]["by_event"]["chat_message"]
    assert fanout["push"] == "new_message" and fanout["expected"] == fanout["received"] > 0 and fanout["lost"] == 0
    assert summary["server"]["cpu_s"] > 0 and summary["server"]["peak_rss_bytes"] > 0
    assert "new_message" in (cell / "report.md").read_text()


def test_bench_matrix_over_the_apps_async_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["--locustfile", str(LOCUSTFILE), "--target-cmd", TARGET_CMD, "--modes", "threading,gevent",
                       "--duration", "4", "--warmup", "1", "--users", "10", "--results", str(tmp_path),
                       "--run-id", "modes"])
    out = capsys.readouterr().out
    assert code == 0, out
    for mode in ("threading", "gevent"):
        cell = tmp_path / "modes" / f"{mode}-app--chat"
        record = json.loads((cell / "run.json").read_text())
        assert record["status"] == "ok" and record["mode"] == mode and record["scenario"] == "chat"
        assert f"chat app: {mode} on http://127.0.0.1:" in (cell / "target.log").read_text()  # the app's own line
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["server"]["cpu_s"] > 0 and summary["server"]["peak_rss_bytes"] > 0
        assert summary["fanout"]["by_event"]["chat_message"]["lost"] == 0
        assert summary["gc"]["files"] == ["gc.csv"]  # the app's record_gc_pauses() wrote where $SIO_GC_LOG said
    assert "threading-app--chat" in out and "gevent-app--chat" in out


def test_web_ui_on_the_app_offers_its_user_classes(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "sioharness.bench.ui", "--locustfile", str(LOCUSTFILE), "--target-cmd", TARGET_CMD,
            "--mode", "gevent", "--web-port", str(port), "--results", str(tmp_path / "ui")]
    base = f"http://127.0.0.1:{port}"
    with running_ui(argv, port=port, cwd=REPO_ROOT, env=ENV, log=tmp_path / "ui.out") as page:
        assert "ChatUser" in page and "EchoUser" not in page
        with urllib.request.urlopen(base + "/socketio/", timeout=5) as response:
            assert response.status == 200
        session = json.loads((tmp_path / "ui" / "ui-session.json").read_text())
        assert session["target_pid"] and "--async-mode gevent" in " ".join(session["target_command"])
        # A test started with the host field cleared loads the app the UI started.
        form = urllib.parse.urlencode({"user_count": 4, "spawn_rate": 10, "host": "",
                                       "user_classes": "ChatUser"}).encode()
        with urllib.request.urlopen(base + "/swarm", data=form, timeout=10) as response:
            assert json.loads(response.read())["success"]
        deadline = time.monotonic() + 40
        live: dict = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(base + "/socketio/api/live", timeout=5) as response:
                live = json.loads(response.read())
            events = (live.get("figures") or {}).get("events") or []
            if any(e["name"] == "chat_message" and e["ok"] >= 10 for e in events):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no chat_message acks from a test with an empty host: {live}")
        assert live["cell"].startswith("gevent-app--chat--")
        urllib.request.urlopen(base + "/stop", data=b"", timeout=10).close()


# --- bad input: one line, a non-zero exit -----------------------------------------------------------

def run_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sioharness.bench", *args, "--results", str(cwd), "--no-report"],
                          cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=180)


def test_a_locustfile_without_users_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty_locustfile.py"
    empty.write_text("from loadtests import SocketIOUser\n")
    done = run_bench("--locustfile", str(empty), "--target-cmd", TARGET_CMD, "--modes", "gevent", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "defines no user class" in done.stderr


def test_an_unknown_user_class_lists_the_valid_ones(tmp_path: Path) -> None:
    done = run_bench("--locustfile", str(LOCUSTFILE), "--user", "ChatUsr", "--target-cmd", TARGET_CMD,
                     "--modes", "gevent", cwd=tmp_path)
    assert done.returncode == 2
    assert "--user ChatUsr" in done.stderr and "(it has: ChatUser)" in done.stderr
    assert done.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("command, reason", [
    ("python -c 'import sys; print(\"boom: no config\"); sys.exit(3)' {port}", "exited with code 3"),
    ("python -c 'import time; print(\"listening soon\", flush=True); time.sleep(60)' {port}", "did not open port"),
])
def test_a_target_command_that_does_not_serve_fails_its_cell(tmp_path: Path, command: str, reason: str) -> None:
    done = run_bench("--locustfile", str(LOCUSTFILE), "--target-cmd", command, "--target-timeout", "3",
                     "--duration", "2", "--warmup", "0", "--users", "2", "--run-id", "bad", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    record = json.loads((tmp_path / "bad" / "app--chat" / "run.json").read_text())
    assert record["status"] == "failed" and reason in record["reason"]
    assert ("boom: no config" if "exited" in reason else "listening soon") in record["reason"]  # the log tail


def test_a_server_that_answers_no_call_is_a_failed_cell(tmp_path: Path) -> None:
    silent = tmp_path / "silent_locustfile.py"
    silent.write_text(
        "import dataclasses\n"
        "from locust import task\n"
        "from loadtests import SocketIOUser\n\n"
        "class SilentUser(SocketIOUser):\n"
        "    def on_start(self):\n"
        "        self.settings = dataclasses.replace(self.settings, call_timeout=0.5)\n\n"
        "    @task\n"
        "    def ask(self):\n"
        "        if self.connected or self.connect(auth={'token': 'let-me-in'}):\n"
        "            self.call('no_such_event', {})\n")
    done = run_bench("--locustfile", str(silent), "--target-cmd", TARGET_CMD, "--modes", "gevent",
                     "--duration", "3", "--warmup", "0", "--users", "2", "--run-id", "silent", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    record = json.loads((tmp_path / "silent" / "gevent-app--silent" / "run.json").read_text())
    assert record["status"] == "failed" and "answered none of the run's acked calls" in record["reason"]


def test_capacity_search_on_the_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sioharness.bench import capacity

    code = capacity.main(["--locustfile", str(LOCUSTFILE), "--target-cmd", TARGET_CMD, "--modes", "gevent",
                          "--start", "5", "--max-steps", "1", "--step-duration", "3", "--warmup", "1",
                          "--slo-p99-ms", "500", "--results", str(tmp_path), "--run-id", "cap"])
    assert code == 0, capsys.readouterr().out[-3000:]
    result = json.loads((tmp_path / "cap" / "capacity.json").read_text())
    assert result["scenario"] == "chat"
    steps = result["targets"]["gevent-app"]["steps"]
    assert len(steps) == 1 and steps[0]["users"] == 5
    assert (tmp_path / "cap" / "gevent-app--chat--u00005" / "summary.json").is_file()
    assert capacity.main(["--locustfile", str(LOCUSTFILE), "--user", "Nobody", "--results", str(tmp_path)]) == 2
    assert "(it has: ChatUser)" in capsys.readouterr().err
