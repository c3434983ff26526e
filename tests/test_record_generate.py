"""Record a real app's Socket.IO traffic (python -m sioharness.bench.record), write a locustfile from it, replay it.

The pure parts (redaction, the trace reader, session kinds, the rendered
code) are tested on synthetic traces; the live tests record real apps (an
ASGI app, a browser's session). ``test_replay_fidelity.py`` records
``examples/classic/app.py`` while python-socketio clients log in, join a
room and chat, generates a locustfile from the trace, runs it under
``python -m sioharness.bench --app`` and replays it at 20x, with these
helpers.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.generate import render, session_kinds
from sioharness.bench.trace_recorder import MAX_ARG_CHARS, REDACTED, bounded, redacted
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT
from sioharness.core.trace_file import TraceError, read_trace

APP = REPO_ROOT / "examples" / "classic" / "app.py"


def test_secrets_are_redacted_at_any_depth_and_big_arguments_cut() -> None:
    value = {"token": "s3cret", "user": {"password": "pw", "name": "ann"}, "list": [{"api_key": "k"}],
             "blob": b"\x00\x01"}
    assert redacted(value) == {"token": REDACTED, "user": {"password": REDACTED, "name": "ann"},
                               "list": [{"api_key": REDACTED}], "blob": {"binary_bytes": 2}}
    big = bounded({"text": "x" * (MAX_ARG_CHARS + 10)})
    assert big["truncated_chars"] > MAX_ARG_CHARS and len(big["head"]) == 200


def _trace(tmp_path: Path, records: list[dict], header: bool = True) -> Path:
    lines = ([json.dumps({"type": "trace", "version": 1, "app": "app.py:socketio"})] if header else [])
    lines += [json.dumps(r) for r in records]
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _session(sid: str, seq0: int, t0: int, chats: int) -> list[dict]:
    records = [{"type": "connect", "seq": seq0, "sid": sid, "accepted": True, "cookies": ["session"], "t_ns": t0},
               {"type": "emit", "event": "welcome", "to": "sender", "cause": seq0, "sid": sid, "t_ns": t0},
               {"type": "event", "seq": seq0 + 1, "sid": sid, "event": "join", "args": [{"room": "r1"}],
                "ack": False, "t_ns": t0 + 1_000_000},
               {"type": "join", "sid": sid, "room": "r1", "cause": seq0 + 1, "t_ns": t0 + 1_000_000}]
    for i in range(chats):
        seq = seq0 + 2 + i
        records += [{"type": "event", "seq": seq, "sid": sid, "event": "chat", "args": [{"text": f"hi {i}"}],
                     "ack": False, "t_ns": t0 + (i + 2) * 50_000_000},
                    {"type": "emit", "event": "chat_reply", "to": "sender", "cause": seq, "sid": sid,
                     "t_ns": t0 + (i + 2) * 50_000_000},
                    {"type": "emit", "event": "room_msg", "to": "room", "room": "r1", "recipients": 3,
                     "cause": seq, "sid": sid, "t_ns": t0 + (i + 2) * 50_000_000}]
    return records


def test_sessions_become_user_classes_with_the_recorded_mix(tmp_path: Path) -> None:
    records = _session("a", 1, 0, 6) + _session("b", 100, 0, 4)
    records += [{"type": "connect", "seq": 200, "sid": "c", "accepted": True, "t_ns": 0},
                {"type": "event", "seq": 201, "sid": "c", "event": "ping", "args": [], "ack": True, "t_ns": 1}]
    trace = read_trace(_trace(tmp_path, records))
    kinds = session_kinds(trace)
    assert [(k.events, k.sessions) for k in kinds] == [(("chat", "join"), 2), (("ping",), 1)]
    chat = kinds[0].stats["chat"]
    assert chat.count == 10 and chat.replies["chat_reply"] == 10 and chat.reached == 30
    code = render(trace, kinds)
    compile(code, "locustfile.py", "exec")  # it is Python
    assert "class ChatUser(SocketIOUser):" in code and "class PingUser(SocketIOUser):" in code
    assert "weight = 2" in code and "@task(10)" in code
    assert "self.request('chat', *self.in_my_room(random.choice(self.CHAT_ARGS)), reply='chat_reply')" in code
    assert "self.emit('join', *self.in_my_room(random.choice(self.JOIN_ARGS)))" in code
    assert "self.joined(self.room)" in code and "room_prefix, room_share = 'r1', 2" in code
    assert "self.call('ping', *random.choice(self.PING_ARGS))" in code
    assert "self.on('welcome', self.on_greeting)" in code and "log in first" in code
    assert "'chat' made the server emit 'room_msg' to the room (30 deliveries for 10 sends)" in code
    assert "primary = 'chat'" in code and "50.0" in code  # a recorded gap of 50 ms


def test_a_file_that_is_not_a_trace_is_one_line_and_bad_lines_are_counted(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="not a trace of python -m sioharness.bench.record"):
        read_trace(_trace(tmp_path, [{"type": "event"}], header=False))
    path = _trace(tmp_path, _session("a", 1, 0, 2))
    with open(path, "a") as handle:
        handle.write("not json\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    trace = read_trace(path)
    assert trace.bad_lines == 2 and session_kinds(trace)[0].stats["chat"].count == 2
    done = subprocess.run([sys.executable, "-m", "loadtests.generate", str(tmp_path / "missing.jsonl")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "missing.jsonl" in done.stderr


DRIVER = '''
"""Two kinds of session on the classic example: chatters join a room and talk, lurkers join and listen."""
import sys, threading, time
import requests, socketio

url = sys.argv[1]

def user(n, chatty):
    http = requests.Session()
    http.post(url + "/login", data={"name": f"user{n}"}, timeout=10)
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    with open("cookies.txt", "a") as seen:  # the test looks for these values in the trace
        seen.writelines(v + "\\n" for v in http.cookies.values())
    sio = socketio.Client()
    sio.connect(url, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=10)
    sio.emit("join", {"room": "lobby"})
    time.sleep(0.5)  # everyone is in the room before anyone talks
    if chatty:
        for i in range(8):
            sio.emit("my_event", {"data": f"hello {i}"})
            if i % 3 == 0:
                sio.emit("my_room_event", {"room": "lobby", "data": f"all {i}"})
            time.sleep(0.1)
    else:
        time.sleep(1.5)
    time.sleep(0.3)
    sio.disconnect()

threads = [threading.Thread(target=user, args=(n, n % 2 == 0)) for n in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
'''


ENV = os.environ | {"PYTHONPATH": str(REPO_ROOT)}


class Recording:
    """A running ``sioharness.bench.record``: its URL while it runs, what it printed once it has stopped."""

    def __init__(self, url: str) -> None:
        self.url, self.output = url, ""


@contextlib.contextmanager
def recording(out: Path, app: str = f"{APP}:socketio", mode: str = "threading") -> Iterator[Recording]:
    """``bench.record`` of ``app`` into ``out`` while the body runs; Ctrl-C (SIGINT) ends it, which must exit 0."""
    recorder = subprocess.Popen([sys.executable, "-m", "sioharness.bench.record",
                                 "--app", app, "--mode", mode, "--out", str(out),
                                 "--duration", "180"], cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert recorder.stdout is not None
        first = recorder.stdout.readline()
        assert " on http://127.0.0.1:" in first, first + recorder.stdout.read()
        session = Recording(first.split(" on ", 1)[1].split(";", 1)[0])
        yield session
        time.sleep(0.5)
        recorder.send_signal(signal.SIGINT)
        session.output, _ = recorder.communicate(timeout=60)
    finally:
        if recorder.poll() is None:
            os.killpg(recorder.pid, signal.SIGKILL)
            recorder.wait()
    assert recorder.returncode == 0, session.output


def record(tmp_path: Path, out: Path, drive: list[str], mode: str = "threading") -> str:
    """``bench.record`` of the classic example while ``drive`` (a command, {url} filled in) runs; its output."""
    with recording(out, mode=mode) as session:
        subprocess.run([arg.replace("{url}", session.url) for arg in drive], check=True, timeout=150, env=ENV,
                       cwd=tmp_path, capture_output=True)
    return session.output


def generate(trace: Path) -> str:
    """``python -m loadtests.generate`` of ``trace``: the locustfile, which must compile."""
    done = subprocess.run([sys.executable, "-m", "loadtests.generate", str(trace)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    compile(done.stdout, "locustfile.py", "exec")
    return done.stdout


def replay_under_bench(tmp_path: Path, locustfile: Path, run_id: str) -> dict:
    """The generated locustfile under ``sioharness bench --app`` (gevent, 4 users, 3 s): MyEventUser's summary."""
    done = subprocess.run([sys.executable, "-m", "sioharness.bench", "--app", f"{APP}:socketio",
                           "--locustfile", str(locustfile),
                           "--modes", "gevent", "--users", "4", "--duration", "3", "--warmup", "1", "--results",
                           str(tmp_path / "results"), "--run-id", run_id],
                          cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((tmp_path / "results" / run_id / "gevent-app--myevent" / "summary.json").read_text())


def record_and_generate(tmp_path: Path) -> tuple[Path, str]:
    """Record the classic app while DRIVER's chatters and lurkers use it, check the trace, generate the locustfile
    (``tmp_path / "locustfile.py"``); the trace and the code."""
    trace = tmp_path / "trace.jsonl"
    (tmp_path / "drive.py").write_text(DRIVER)
    out = record(tmp_path, trace, [sys.executable, str(tmp_path / "drive.py"), "{url}"])
    assert "4 connects, 26 client events" in out and "4 joins, 4 disconnects" in out, out
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert records[0]["type"] == "trace" and records[-1] == {"type": "end", "records": len(records) - 2,
                                                             "dropped": 0}
    greetings = [r for r in records if r["type"] == "emit" and r["args"] == [{"data": "Connected", "count": 0}]]
    assert len(greetings) == 4 and all(r["to"] == "sender" and r["cause"] is not None for r in greetings)

    code = generate(trace)
    (tmp_path / "locustfile.py").write_text(code)
    assert "class MyEventUser(SocketIOUser):" in code and "class ListenerUser(SocketIOUser):" in code, code
    assert "4 sessions of 2 kind(s); 26 client events" in code
    assert "room_prefix, room_share = 'lobby', 2" in code
    return trace, code


@pytest.mark.slow
def test_the_classic_app_recorded_becomes_a_locustfile_that_runs_under_bench(tmp_path: Path) -> None:
    """Chatters and lurkers recorded; the generated locustfile runs under python -m sioharness.bench like any other
    (the 20x replay of the same recording is in test_replay_fidelity.py)."""
    record_and_generate(tmp_path)
    summary = replay_under_bench(tmp_path, tmp_path / "locustfile.py", "replay")
    assert summary["status"] == "ok" and summary["latency"]["my_event"]["count"] > 10, summary.get("problems")


def _har_session(url: str, t0: float, chats: int) -> dict:
    frames = [{"type": "receive", "time": t0, "opcode": 1, "data": '0{"sid":"x","upgrades":[],"pingInterval":25000}'},
              {"type": "send", "time": t0 + 0.001, "opcode": 1, "data": "40"},
              {"type": "receive", "time": t0 + 0.002, "opcode": 1, "data": '40{"sid":"y"}'},
              {"type": "receive", "time": t0 + 0.003, "opcode": 1, "data": '42["welcome",{"hi":1}]'}]
    for i in range(chats):
        t = t0 + 1 + i * 0.2
        frames += [{"type": "send", "time": t, "opcode": 1, "data": f'42["chat",{{"text":"hi {i}"}}]'},
                   {"type": "receive", "time": t + 0.01, "opcode": 1, "data": f'42["chat_reply",{{"n":{i}}}]'},
                   {"type": "receive", "time": t + 0.02, "opcode": 1, "data": '42["news",{}]'},
                   {"type": "send", "time": t + 0.05, "opcode": 1, "data": f'42{i}["ping"]'},
                   {"type": "receive", "time": t + 0.06, "opcode": 1, "data": f"43{i}[]"},
                   {"type": "send", "time": t + 0.07, "opcode": 1, "data": "3"},
                   {"type": "send", "time": t + 0.08, "opcode": 2, "data": "AAE="}]
    return {"request": {"url": url, "headers": [{"name": "Cookie", "value": "session=abc; theme=dark"}]},
            "_resourceType": "websocket", "_webSocketMessages": frames}


def test_a_browsers_har_file_becomes_a_locustfile_with_inferred_replies(tmp_path: Path) -> None:
    url = "ws://127.0.0.1:5000/socket.io/?EIO=4&transport=websocket"
    har = {"log": {"entries": [_har_session(url, 100.0, 5), _har_session(url, 200.0, 3),
                               {"request": {"url": "http://127.0.0.1:5000/static/app.js"}},
                               {"request": {"url": "http://127.0.0.1:5000/socket.io/?EIO=4&transport=polling"}}]}}
    path = tmp_path / "session.har"
    path.write_text(json.dumps(har))
    done = subprocess.run([sys.executable, "-m", "loadtests.generate", str(path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    code = done.stdout
    compile(code, "locustfile.py", "exec")
    assert "inferred from timing (a HAR file)" in code and "2 websocket sessions" in code
    assert "class ChatUser(SocketIOUser):" in code and "weight = 2" in code
    # chat_reply came within the window after each chat: a request; news was a push of the server's own.
    assert "self.request('chat', *random.choice(self.CHAT_ARGS), reply='chat_reply')" in code
    assert "self.call('ping', *random.choice(self.PING_ARGS))" in code and "reply='news'" not in code
    assert "self.on('welcome', self.on_greeting)" in code and "cookies (session, theme)" in code
    assert "8 frames of session.har could not be read" in done.stderr  # the binary frames
    (tmp_path / "not.har").write_text(json.dumps({"log": {"entries": []}}))
    bad = subprocess.run([sys.executable, "-m", "loadtests.generate", str(tmp_path / "not.har")], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no Socket.IO websocket session" in bad.stderr and "Traceback" not in bad.stderr


def test_the_fidelity_report_flags_a_mix_or_payload_that_moved(tmp_path: Path) -> None:
    from reports.fidelity import compare, profile_of

    def trace(name: str, sessions: dict[str, list[tuple[str, int, int]]]) -> Path:
        records = [{"type": "event", "sid": sid, "event": event, "args": ["x" * size], "t_ns": t * 1_000_000}
                   for sid, events in sessions.items() for event, size, t in events]
        path = tmp_path / name
        path.write_text("\n".join(json.dumps(r) for r in [{"type": "trace", "version": 1}, *records]) + "\n")
        return path

    recorded = profile_of(read_trace(trace("a.jsonl", {"s1": [("chat", 10, 0), ("chat", 10, 100), ("ping", 0, 200)],
                                                       "s2": [("chat", 12, 0), ("ping", 0, 150)]})))
    same = profile_of(read_trace(trace("b.jsonl", {"r1": [("chat", 11, 0), ("chat", 10, 120), ("ping", 0, 230)],
                                                   "r2": [("chat", 12, 0), ("ping", 0, 140)]})))
    table, flags = compare(recorded, same, 5.0)
    assert flags == 0 and "| `chat` | 60.0% | 60.0% |" in table
    moved = profile_of(read_trace(trace("c.jsonl", {"r1": [("chat", 100, 0), ("ping", 0, 1000), ("ping", 0, 2000)]})))
    table, flags = compare(recorded, moved, 5.0)
    assert "mix off by -26.7 points" in table and "payload size off by more than 2x" in table and flags >= 3


ASGI_APP = REPO_ROOT / "tests" / "asgi_chat_app.py"  # logs every packet; greets, replies, rooms

ASGI_DRIVER = '''
import sys, time
import socketio

clients = []
for n in range(3):
    sio = socketio.Client()
    sio.connect(sys.argv[1], transports=["websocket"], auth={"token": "s3cret"}, wait_timeout=10)
    sio.emit("join", {"room": "r"})
    clients.append(sio)
time.sleep(0.3)
for i in range(5):
    clients[0].emit("my_event", {"data": i})
    clients[1].emit("say", {"room": "r", "text": f"hi {i}"})
    time.sleep(0.05)
time.sleep(0.5)
for sio in clients:
    sio.disconnect()
'''


@pytest.mark.slow
def test_an_asgi_app_is_recorded_too(tmp_path: Path) -> None:
    (tmp_path / "drive.py").write_text(ASGI_DRIVER)
    trace = tmp_path / "trace.jsonl"
    with recording(trace, app=f"{ASGI_APP}:app", mode="asyncio") as session:
        subprocess.run([sys.executable, str(tmp_path / "drive.py"), session.url], check=True, timeout=120, env=ENV)
    out = session.output
    assert "3 connects, 13 client events" in out and "3 joins" in out, out
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    connects = [r for r in records if r["type"] == "connect"]
    assert len(connects) == 3 and all(r["auth"] == {"token": "[redacted]"} and r["accepted"] for r in connects)
    greetings = [r for r in records if r["type"] == "emit" and r["event"] == "welcome"]
    assert {r["cause"] for r in greetings} == {r["seq"] for r in connects}
    assert {r["to"] for r in greetings} == {"sender"}
    said = [r for r in records if r["type"] == "emit" and r["event"] == "said"]
    assert len(said) == 5 and {(r["to"], r["room"], r["recipients"]) for r in said} == {("room", "r", 3)}
    replies = [r for r in records if r["type"] == "emit" and r["event"] == "my_response"]
    assert len(replies) == 5 and all(r["to"] == "sender" and r["cause"] is not None for r in replies)
    code = generate(trace)
    assert "reply='my_response'" in code
    assert "connect_auth = {'token': os.environ.get('REPLAY_AUTH_TOKEN', '')}" in code
    assert "self.connect(auth=self.connect_auth)" in code and "s3cret" not in code


BROWSER_USERS = """
async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await fetch('/login', {method: 'POST', body: new URLSearchParams({name: 'browser'})});
  const open = () => new Promise((resolve) => {
    const ws = new WebSocket(location.origin.replace('http', 'ws') + '/socket.io/?EIO=4&transport=websocket');
    ws.onmessage = (m) => {
      if (m.data[0] === '0') ws.send('40');
      else if (m.data.startsWith('40')) resolve(ws);
      else if (m.data === '2') ws.send('3');
    };
  });
  const send = (ws, event, data) => ws.send('42' + JSON.stringify([event, data]));
  const chatter = async () => {
    const ws = await open();
    send(ws, 'join', {room: 'lobby'});
    await sleep(500);
    for (let i = 0; i < 6; i++) {
      send(ws, 'my_event', {data: 'hello ' + i});
      if (i % 3 === 0) send(ws, 'my_room_event', {room: 'lobby', data: 'all ' + i});
      await sleep(100);
    }
    await sleep(300);
    ws.send('41'); ws.close();
  };
  const lurker = async () => {
    const ws = await open();
    send(ws, 'join', {room: 'lobby'});
    await sleep(1500);
    ws.send('41'); ws.close();
  };
  await Promise.all([chatter(), lurker()]);
}
"""


@pytest.mark.slow
def test_a_browser_session_recorded_in_the_server_and_as_a_har_gives_one_mix(tmp_path: Path) -> None:
    """Chromium runs a chatter and a lurker on the app's own origin; the server's trace and the HAR agree."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.lock)")
    trace = tmp_path / "trace.jsonl"
    sockets: dict[str, dict] = {}
    with recording(trace) as session, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context().new_page()
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")

            def created(event: dict) -> None:
                sockets[event["requestId"]] = {"request": {"url": event["url"], "headers": []},
                                               "_resourceType": "websocket", "_webSocketMessages": []}

            def frame(kind: str) -> object:
                def on(event: dict) -> None:
                    response = event["response"]
                    sockets[event["requestId"]]["_webSocketMessages"].append(
                        {"type": kind, "time": event["timestamp"], "opcode": response["opcode"],
                         "data": response["payloadData"]})
                return on

            cdp.on("Network.webSocketCreated", created)
            cdp.on("Network.webSocketFrameSent", frame("send"))
            cdp.on("Network.webSocketFrameReceived", frame("receive"))
            page.goto(session.url + "/")
            page.evaluate(BROWSER_USERS)
            page.wait_for_timeout(300)
        finally:
            browser.close()
    out = session.output
    assert "2 connects, 10 client events" in out, out
    har = tmp_path / "browser.har"
    har.write_text(json.dumps({"log": {"entries": list(sockets.values())}}))

    def mix(records: list[dict]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in records:
            if record.get("type") == "event":
                counts[record["event"]] = counts.get(record["event"], 0) + 1
        return counts

    from loadtests.har_trace import read_har

    server_side = mix(read_trace(trace).records)
    assert server_side == {"join": 2, "my_event": 6, "my_room_event": 2}
    assert mix(read_har(har).records) == server_side, "the HAR's frames give the server's event mix"

    (tmp_path / "locustfile.py").write_text(generate(trace))
    summary = replay_under_bench(tmp_path, tmp_path / "locustfile.py", "browser")
    assert summary["status"] == "ok" and summary["latency"]["my_event"]["count"] > 5, summary.get("problems")


def test_a_port_already_in_use_is_refused_not_mistaken_for_the_app(tmp_path: Path) -> None:
    """Readiness would otherwise find the other server listening there and announce the app as serving."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "sioharness.bench.record",
                               "--app", f"{APP}:socketio", "--port", str(port),
                               "--duration", "5", "--out", str(tmp_path / "t.jsonl")], cwd=REPO_ROOT, env=ENV,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"port {port} on 127.0.0.1 is already in use" in done.stderr, done.stderr
    assert "serving" not in done.stdout
