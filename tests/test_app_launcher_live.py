"""``--app``: a Flask-SocketIO app written the common way, served unchanged, over real processes.

``examples/classic/app.py`` answers by emit, greets in its connect handler,
logs users in with a cookie session, has its port and ``async_mode=None`` in
the code and its packet logging on. The launcher serves it in each async
mode; the lean client, then whole ``python -m sioharness.bench`` runs, talk to it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadtests.wire.client import Client
from sioharness.bench.own_app import app_targets, launch_command
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT
from sioharness.core.schema import APP_INFO_FILE
from target_app.process import TargetProcess

pytestmark = pytest.mark.slow

APP = REPO_ROOT / "examples" / "classic" / "app.py"
LOCUSTFILE = REPO_ROOT / "examples" / "classic" / "locustfile.py"
ENV = os.environ | {"PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture(params=[("threading", "dev"), ("eventlet", "dev"), ("gevent", "dev"), ("gevent", "gunicorn")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def classic(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TargetProcess, Path]]:
    mode, server = request.param
    [spec] = [t for t in app_targets(f"{APP}:socketio", modes=[mode], servers=[server])]
    target = launch_command(spec, log_path=tmp_path / "target.log", app_info=tmp_path / APP_INFO_FILE)
    try:
        yield target, tmp_path
    finally:
        target.stop()


def log_in(url: str, name: str) -> str:
    """POST the app's login form; the session cookie it set, as a Cookie header's value."""
    form = urllib.parse.urlencode({"name": name}).encode()
    with urllib.request.urlopen(url + "/login", data=form, timeout=10) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
    return "; ".join(cookie.split(";", 1)[0] for cookie in cookies)


def test_the_classic_app_as_written_serves_every_mode(classic: tuple[TargetProcess, Path]) -> None:
    target, folder = classic
    info = json.loads((folder / APP_INFO_FILE).read_text())
    # async_mode=None in the code, yet each cell runs in its own mode.
    assert info["async_mode"] == target.mode
    assert info["socketio_logs_packets"] and info["engineio_logs_packets"] and info["tcp_nodelay"] is False

    client = Client(target.url, timeout=10, headers={"Cookie": log_in(target.url, "alice")})
    greetings: list = []
    client.on("my_response", greetings.append)
    client.connect()
    try:
        # What the connect handler emitted (before the CONNECT packet) reached the handler.
        assert greetings == [{"data": "Connected", "count": 0}]
        assert client.request("my_event", {"data": "hi"}, reply="my_response",
                              match=lambda m: m["data"] == "hi") == {"data": "hi", "count": 1}
        # my_ping() takes no argument: it answers only if it was sent none.
        assert client.request("my_ping", reply="my_pong") is None
        # The cookie login: the server knows this connection as alice.
        who = client.request("whoami", reply="my_response", match=lambda m: isinstance(m["data"], dict))
        assert who["data"] == {"user": "alice"}
    finally:
        client.close()
    assert "TypeError" not in target.log_tail(200)


def samples_of(cell: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(path) for path in sorted(cell.glob("samples-*.parquet"))])


def run_bench(*args: str, results: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sioharness.bench", *args, "--results", str(results)],
                          cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=240)


def test_bench_loads_the_classic_app_unchanged_and_counts_what_the_server_counts(tmp_path: Path) -> None:
    done = run_bench("--app", f"{APP}:socketio", "--locustfile", str(LOCUSTFILE), "--modes", "threading,gevent",
                     "--app-server", "dev,gunicorn", "--users", "6", "--duration", "3", "--warmup", "1",
                     "--run-id", "classic", results=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cells = sorted(p.name for p in (tmp_path / "classic").iterdir() if p.is_dir())
    assert cells == ["gevent-app--classic", "gevent-app-gunicorn--classic", "threading-app--classic",
                     "threading-app-gunicorn--classic"]
    for name in cells:
        cell = tmp_path / "classic" / name
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["status"] == "ok", (name, summary["problems"], summary["samples_lost"])
        assert summary["app"]["async_mode"] == name.split("-")[0]
        assert any("logs every Socket.IO and Engine.IO packet" in note for note in summary["notes"])
        samples = samples_of(cell).to_pandas()
        # Every my_event the server received (its own log says so) is one recorded round trip.
        received = len(re.findall(r'received event "my_event" from', (cell / "target.log").read_text()))
        recorded = samples[(samples.kind == "ack") & (samples.name == "my_event")]
        assert received > 50 and len(recorded) == received, name
        assert recorded.ok.all(), recorded[~recorded.ok].error.value_counts().head()
        # The room fan-out: deliveries expected from the roster, all received.
        fanout = summary["fanout"]["by_event"]["my_room_event"]
        assert fanout["push"] == "my_response" and fanout["expected"] > 0 and fanout["lost"] == 0
        # Each user logged in over HTTP once, measured as a sample.
        logins = samples[samples.name == "/login"]
        assert len(logins) == 6 and logins.ok.all()
        # The launcher records the app's GC pauses, with no edit to the app.
        assert summary["gc"] is not None and summary["gc"]["pauses"] > 0, name


LOGIN_LOCUSTFILE = '''
from locust import task

from loadtests import SocketIOUser


class LoginUser(SocketIOUser):
    def on_start(self):
        self.name = f"user-{self.user_id}"
        self.greeted = 0
        self.on("my_response", self.on_response)
        self.http.post("/login", data={"name": self.name})

    def on_response(self, message):
        if message.get("data") == "Connected":
            self.greeted += 1

    @task
    def whoami(self):
        if not self.connected and not self.connect():
            self.pump(1)
            return
        if self.greeted:  # the greeting of the app's connect handler reached on()
            self.request("whoami", reply="my_response",
                         match=lambda m: isinstance(m["data"], dict) and m["data"].get("user") == self.name)
        self.pump(0.01)
'''


def test_a_cookie_login_user_is_seen_by_the_server_under_its_own_name(tmp_path: Path) -> None:
    locustfile = tmp_path / "login_locustfile.py"
    locustfile.write_text(LOGIN_LOCUSTFILE)
    done = run_bench("--app", f"{APP}:app", "--locustfile", str(locustfile), "--modes", "eventlet",
                     "--users", "3", "--duration", "2", "--warmup", "0", "--run-id", "login",
                     results=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    samples = samples_of(tmp_path / "login" / "eventlet-app--login").to_pandas()
    whoami = samples[samples.name == "whoami"]
    # A reply naming anyone else (or nobody) would never match: a failed sample.
    assert len(whoami) > 20 and whoami.ok.all()


PROJECT_FILES = {
    "core/__init__.py": 'GREETING = "hello from the project\'s own core"\n',
    "reports/__init__.py": 'EVENT = "my_event"\n',
    "app.py": '''from flask import Flask
from flask_socketio import SocketIO, emit

from core import GREETING
from reports import EVENT

app = Flask(__name__)
socketio = SocketIO(app)


@socketio.on(EVENT)
def my_event(message):
    emit("my_response", {"data": message["data"], "greeting": GREETING})


if __name__ == "__main__":
    socketio.run(app, port=5003)
''',
    "locustfile.py": '''from locust import task

from core import GREETING
from reports import EVENT

from loadtests import SocketIOUser


class ProjectUser(SocketIOUser):
    @task
    def my_event(self):
        if self.connected or self.connect():
            self.request(EVENT, {"data": 1}, reply="my_response", match=lambda m: m.get("greeting") == GREETING)
        else:
            self.pump(1)
''',
}


def test_a_project_with_its_own_core_and_reports_packages_works(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for name, text in PROJECT_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    done = run_bench("--app", f"{project / 'app.py'}:socketio", "--locustfile", str(project / "locustfile.py"),
                     "--modes", "gevent", "--users", "2", "--duration", "2", "--warmup", "0",
                     "--run-id", "project", results=tmp_path / "results")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    samples = samples_of(tmp_path / "results" / "project" / "gevent-app--project").to_pandas()
    acks = samples[samples.name == "my_event"]
    # The greeting matched: the app and the locustfile both imported the project's core.
    assert len(acks) > 50 and acks.ok.all()


@pytest.mark.parametrize("args, message", [
    (["--app", "no/such/app.py:socketio"], "no such file"),
    (["--app", f"{APP}:not an attribute"], "is not an attribute name"),
    (["--app", f"{APP}:socketio", "--modes", "trio"], "unknown mode 'trio'"),
    (["--app", f"{APP}:socketio", "--modes", "asyncio"], "an ASGI app runs in mode asyncio under uvicorn only"),
    (["--app", f"{APP}:socketio", "--app-server", "uwsgi"], "unknown server 'uwsgi'"),
    (["--app", f"{APP}:socketio", "--app-python", "/no/such/python"], "not an executable file"),
    (["--app", f"{APP}:socketio", "--target-cmd", "python app.py {port}"], "--app and --target-cmd exclude each other"),
    (["--app-server", "gunicorn"], "go with --app"),
])
def test_bad_app_arguments_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_bench(*args, "--locustfile", str(LOCUSTFILE), "--no-report", results=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr


def test_an_app_object_that_is_not_there_fails_the_cell_with_the_reason(tmp_path: Path) -> None:
    done = run_bench("--app", f"{APP}:sockets", "--locustfile", str(LOCUSTFILE), "--modes", "gevent",
                     "--duration", "2", "--warmup", "0", "--run-id", "missing", "--no-report", results=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "has no attribute 'sockets'" in done.stdout + done.stderr


def test_capacity_searches_the_app_as_written(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sioharness.bench.capacity",
                           "--app", f"{APP}:socketio", "--app-nodelay",
                           "--locustfile", str(LOCUSTFILE), "--modes", "gevent", "--start", "4", "--max-steps", "1",
                           "--step-duration", "2", "--warmup", "0", "--results", str(tmp_path), "--run-id", "cap"],
                          cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "cap" / "capacity.json").read_text())
    [step] = result["targets"]["gevent-app"]["steps"]
    assert step["users"] == 4 and step["peak_connected"] == 4


ASGI_APP = REPO_ROOT / "tests" / "asgi_chat_app.py"  # logs every packet; greets, replies, rooms

ASGI_LOCUSTFILE = '''
from locust import task

from loadtests import SocketIOUser


class AsgiUser(SocketIOUser):
    primary = "my_event"

    def on_start(self):
        self.greeted = 0
        self.on("welcome", self.on_welcome)

    def on_welcome(self, message):
        self.greeted += 1

    @task
    def ask(self):
        if not self.connected and not self.connect():
            self.pump(1)
            return
        if self.greeted:
            n = self.user_id * 1000000 + self.greeted
            self.greeted += 1
            self.request("my_event", {"data": n}, reply="my_response", match=lambda m: m["data"] == n)
        self.pump(0.01)
'''


def test_an_asgi_app_runs_under_uvicorn_as_written(tmp_path: Path) -> None:
    """A python-socketio ASGI app (AsyncServer + ASGIApp): --modes asyncio --app-server uvicorn."""
    (tmp_path / "asgi_locustfile.py").write_text(ASGI_LOCUSTFILE)
    done = run_bench("--app", f"{ASGI_APP}:app", "--locustfile", str(tmp_path / "asgi_locustfile.py"),
                     "--modes", "asyncio", "--app-server", "uvicorn", "--users", "4", "--duration", "3",
                     "--warmup", "1", "--run-id", "asgi", results=tmp_path / "results")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cell = tmp_path / "results" / "asgi" / "asyncio-app-uvicorn--asgi"
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["status"] == "ok", (summary["problems"], summary["samples_lost"])
    assert summary["app"]["async_mode"] == "asgi" and summary["app"]["server"] == "uvicorn"
    received = len(re.findall(r'received event "my_event" from', (cell / "target.log").read_text()))
    recorded = samples_of(cell).to_pandas()
    recorded = recorded[(recorded.kind == "ack") & (recorded.name == "my_event")]
    assert received > 50 and len(recorded) == received and recorded.ok.all()
    assert "must not run" not in (cell / "target.log").read_text()


@pytest.mark.parametrize("modes, servers", [("gevent", "uvicorn"), ("asyncio", "dev"), ("asyncio,gevent", "uvicorn")])
def test_asgi_and_wsgi_modes_do_not_mix(tmp_path: Path, modes: str, servers: str) -> None:
    done = run_bench("--app", f"{ASGI_APP}:app", "--modes", modes, "--app-server", servers,
                     results=tmp_path / "results")
    assert done.returncode == 2 and "an ASGI app runs in mode asyncio under uvicorn only" in done.stderr, \
        done.stderr[-2000:]
