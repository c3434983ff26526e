"""Fuzz: random and mutated Engine.IO / Socket.IO frames from many connections, while a good client echoes.

Every mode gets ``MAX_FRAMES`` frames (a count, not a duration), under a
watchdog (``FUZZ_SECONDS``) and a connection cap (``MAX_CONNECTIONS``);
seeded (the seed is in every failure message; ``SIO_FUZZ_SEED`` replays one).
The target must stay up, every echo of the well-behaved client must come
back intact, its books must return to that one client, and its memory must
stay bounded.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest
import websocket

from target_app.process import TargetProcess

from .conftest import DEV_TARGETS, running_target, target_id
from .sio_raw import RawPeer, ws_url

# alone: the good client must be served within seconds of the fuzz, which contention from other tests delays
pytestmark = [pytest.mark.slow, pytest.mark.alone]

FUZZ_SECONDS = 90.0  # watchdog: the frame count ends a healthy run long before
MAX_FRAMES = 10_000
MAX_CONNECTIONS = 3000
FUZZ_THREADS = 6
MAX_MESSAGE = 64 * 1024  # the target's --max-http-buffer-size: oversized frames stay cheap
# Growth allowed in the target's RSS after the fuzz (bad clients gone): generous,
# a leak per connection or per frame would exceed it many times over.
RSS_GROWTH_LIMIT = 80 * 1024 * 1024
SEED = int(os.environ.get("SIO_FUZZ_SEED", random.SystemRandom().randrange(1 << 32)))
FUZZED = DEV_TARGETS

# Valid packets to mutate: Engine.IO open/ping/pong/message/upgrade/noop and
# Socket.IO connect, event, ack, binary event on "/" and "/bench".
VALID = [
    "2", "3", "40", "40/bench,", '40{"token":"x"}', "41", "41/bench,", "5", "6",
    '42["echo",{"a":1}]', '421["echo","hello"]', '42/bench,7["echo",[1,2,3]]',
    '42["broadcast",{"payload":{"t_ns":1},"room":"r"}]', '42["join",{"room":"r"}]',
    '42["room_message",{"room":"r","payload":"p"}]', '42["subscribe_ticks",{"rate":1000,"count":3}]',
    '42["unsubscribe_ticks"]', '43["x"]', '451-["echo",{"_placeholder":true,"num":0}]', "44{}",
    # Known-bad shapes: lifecycle names as events, tick requests out of range or
    # slow enough to pin a stream, an attachment count that lies.
    '42["connect"]', '42["disconnect"]', '42/bench,["connect",{}]',
    '42["subscribe_ticks",{"rate":1e-6,"count":2,"size":65536}]', '42["subscribe_ticks",{"count":1e400}]',
    '42["subscribe_ticks",{"rate":-1,"count":-5,"size":1e12}]', '451000000-["echo",{"_placeholder":true,"num":0}]',
]


def mutate(rng: random.Random, packet: str) -> str | bytes:
    """One of several ways of breaking ``packet``, or garbage."""
    choice = rng.randrange(12)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if choice == 1:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 64)))
    if choice == 2:
        return packet[: rng.randrange(len(packet) + 1)]  # truncated
    if choice == 3:
        i = rng.randrange(len(packet) + 1)
        return packet[:i] + rng.choice("[]{}\",:0-/\\\x00\xff") + packet[i:]
    if choice == 4 and len(packet) > 1:
        i = rng.randrange(len(packet))
        return packet[:i] + packet[i + 1:]
    if choice == 5:
        return packet[:2] + str(rng.choice([-1, 2**31, 2**64, 10**30])) + packet[2:]  # absurd ack ids
    if choice == 6:
        depth = rng.randrange(100, 3000)
        return '42["echo",' + "[" * depth + "]" * depth + "]"  # deep nesting
    if choice == 7:
        return '42["echo","' + "x" * (MAX_MESSAGE + rng.randrange(1, 4096)) + '"]'  # over the limit
    if choice == 8:
        return f'45{rng.randrange(1, 50)}-["echo",{{"_placeholder":true,"num":{rng.randrange(-3, 60)}}}]'
    if choice == 9:
        return '42["' + "e" * rng.randrange(1, 5000) + '",1]'  # long unknown event names
    if choice == 10:
        return json.dumps([rng.random(), None, {"k": [True]}])
    return packet


def send_raw_bytes(ws: websocket.WebSocket, rng: random.Random) -> None:
    """Bytes below the websocket framing: bad opcodes, reserved bits, unmasked or lying lengths."""
    header = bytes([rng.randrange(256), rng.randrange(256)])
    ws.sock.sendall(header + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))))


def fuzz_http(url: str, rng: random.Random) -> None:
    """Long-polling requests with broken query strings, sids and bodies."""
    query = rng.choice(["EIO=3&transport=polling", "EIO=4&transport=carrier", "EIO=4&transport=polling&sid=bogus",
                        "EIO=x", "", "EIO=4&transport=polling&t=" + "9" * 300])
    body = None if rng.random() < 0.5 else bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    request = urllib.request.Request(f"{url}/socket.io/?{query}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            response.read(4096)
    except (OSError, ValueError):
        pass  # refusals are the point


class Budget:
    """Shared bounds of the fuzzers: time, frames and connections."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + FUZZ_SECONDS
        self.frames = 0
        self.connections = 0
        self.lock = threading.Lock()

    def take(self, frames: int = 0, connections: int = 0) -> bool:
        with self.lock:
            if time.monotonic() > self.deadline or self.frames >= MAX_FRAMES or self.connections >= MAX_CONNECTIONS:
                return False
            self.frames += frames
            self.connections += connections
            return True


def fuzzer(url: str, seed: int, budget: Budget) -> None:
    rng = random.Random(seed)
    while budget.take(connections=1):
        if rng.random() < 0.1:
            fuzz_http(url, rng)
            continue
        try:
            ws = websocket.create_connection(ws_url(url), timeout=2)
        except (OSError, websocket.WebSocketException):
            continue
        try:
            ws.recv()  # the Engine.IO open packet
            if rng.random() < 0.7:
                ws.send(rng.choice(["40", "40/bench,"]))  # reach the Socket.IO layer first
            for _ in range(rng.randrange(1, 25)):
                if not budget.take(frames=1):
                    break
                if rng.random() < 0.05:
                    send_raw_bytes(ws, rng)
                    break  # the framing is broken now
                frame = mutate(rng, rng.choice(VALID))
                if isinstance(frame, bytes):
                    ws.send(frame, opcode=rng.choice([websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT]))
                else:
                    ws.send(frame)
        except (OSError, websocket.WebSocketException):
            pass  # the server closed this one: allowed
        finally:
            if rng.random() < 0.5:
                ws.sock and ws.sock.close()  # abrupt: no close frame
            else:
                with contextlib.suppress(OSError, websocket.WebSocketException):
                    ws.close(timeout=0.5)


class GoodClient(threading.Thread):
    """Echoes numbered payloads until told to stop; every one must come back intact."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="good-client")
        self.peer = RawPeer(url, timeout=10)
        self.stop = threading.Event()
        self.sent = 0
        self.failures: list[str] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set() and self.sent < 100_000:
                self.sent += 1
                payload = {"n": self.sent, "blob": "y" * (self.sent % 300)}
                answer = self.peer.call("echo", payload, ack_id=self.sent)
                if answer != payload:
                    self.failures.append(f"echo #{self.sent} came back as {answer!r:.80}")
                time.sleep(0.005)
        except Exception as exc:  # any failure of the good client fails the test
            self.failures.append(f"echo #{self.sent}: {type(exc).__name__}: {exc}")
        finally:
            self.peer.close()


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root] + root.children(recursive=True))


@pytest.fixture(params=FUZZED, ids=target_id)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TargetProcess]:
    yield from running_target(*request.param, tmp_path, "--max-http-buffer-size", str(MAX_MESSAGE),
                              "--ping-interval", "1", "--ping-timeout", "2")


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_fuzzed_frames_leave_the_target_serving_a_good_client(target: TargetProcess) -> None:
    # Warm the server up (imports, first connections) before taking the RSS baseline.
    for _ in range(20):
        RawPeer(target.url).close()
    rss_before = tree_rss(target.pid)
    good = GoodClient(target.url)
    good.start()
    budget = Budget()
    fuzzers = [threading.Thread(target=fuzzer, args=(target.url, SEED + i, budget), daemon=True)
               for i in range(FUZZ_THREADS)]
    for thread in fuzzers:
        thread.start()
    for thread in fuzzers:
        thread.join(timeout=FUZZ_SECONDS + 30)
    time.sleep(0.5)  # the good client keeps echoing after the storm too
    good.stop.set()
    good.join(timeout=15)
    context = f"seed {SEED} (replay: SIO_FUZZ_SEED={SEED}); {budget.frames} frames on {budget.connections} connections"

    assert not any(t.is_alive() for t in fuzzers), f"a fuzzer did not finish; {context}"
    assert budget.frames >= MAX_FRAMES, f"the fuzz stopped short of {MAX_FRAMES} frames; {context}"
    assert target.alive(), f"the target died; {context}\n{target.log_tail(30)}"
    assert not good.is_alive(), f"the good client hung; {context}"
    assert good.failures == [], f"{good.failures[:5]}; {context}"
    assert good.sent > 20, context
    with urllib.request.urlopen(target.url + "/healthz", timeout=5) as response:
        assert response.status == 200
    # Every bad client is dropped from the books (by the ping timeout at worst).
    assert wait_for(lambda: target.stats()["connected"] == 0, 15), f"{target.stats()}; {context}"
    with RawPeer(target.url) as peer:
        assert peer.call("echo", "after") == "after"
    growth = tree_rss(target.pid) - rss_before
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.0f} MiB; {context}"
    # Bad input is one warning line each; a traceback would bury real errors.
    assert target.log_path is not None
    log = target.log_path.read_text(errors="replace")
    assert "Traceback" not in log, f"{context}\n{log[log.index('Traceback') - 300:][:3000]}"


def test_budget_stops_at_the_frame_cap() -> None:
    budget = Budget()
    taken = 0
    while budget.take(frames=1) and taken < MAX_FRAMES * 2:
        taken += 1
    assert taken == MAX_FRAMES
