"""At its connection or descriptor limit the target refuses new clients itself, and still answers /stats."""
from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import websocket

from loadtests.wire.client import Client
from loadtests.wire.errors import ConnectError
from target_app.admission import CONTROL_HEADROOM, DESCRIPTOR_RESERVE, Admission, starts_a_session
from target_app.process import TargetProcess

from .conftest import DEV_TARGETS, running_target, target_id
from .sio_raw import RawPeer

LIMIT = 12


# --- the decision, without a server -------------------------------------------------------------


def test_the_smaller_of_the_two_limits_names_the_reason() -> None:
    roomy = Admission(100, fd_limit=lambda: 10_000, fds_in_use=20)
    assert (roomy.limit, roomy.limited_by) == (100, "connection limit")
    tight = Admission(10_000, fd_limit=lambda: 1_000, fds_in_use=20)
    assert tight.limit == 1_000 - 20 - DESCRIPTOR_RESERVE - CONTROL_HEADROOM
    assert tight.limited_by == "descriptor limit"


def test_a_limit_lowered_at_run_time_counts_at_the_next_handshake() -> None:
    limit = [10_000]
    admission = Admission(500, fd_limit=lambda: limit[0], fds_in_use=20)
    assert admission.admit(400)
    limit[0] = 400
    assert not admission.admit(400)
    assert admission.limited_by == "descriptor limit"


def test_refusals_are_counted_and_logged_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    admission = Admission(10, fd_limit=lambda: 10_000, fds_in_use=0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="target_app"):
        assert admission.admit(8)
        assert admission.admit(9)  # 90%: one "nearing" line
        assert admission.admit(9)
        for _ in range(5):
            assert not admission.admit(10)
        now[0] = 1.5
        assert not admission.admit(10)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("nearing the connection limit: 9 of 10" in line for line in lines) == 1
    assert sum("refusing new clients at the connection limit" in line for line in lines) == 2
    assert admission.snapshot() == {"limit": 10, "limited_by": "connection limit", "refused": 6}


@pytest.mark.parametrize(("path", "query", "starts"), [
    ("/socket.io/", "EIO=4&transport=websocket", True),
    ("/socket.io", "EIO=4&transport=polling&t=x", True),
    ("/socket.io/", "EIO=4&transport=websocket&sid=abc", False),
    ("/stats", "", False),
    ("/healthz", "", False),
])
def test_only_a_handshake_starts_a_session(path: str, query: str, starts: bool) -> None:
    assert starts_a_session(path, query) is starts


# --- real targets -------------------------------------------------------------------------------


@pytest.fixture(params=DEV_TARGETS, ids=target_id)
def small_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TargetProcess]:
    yield from running_target(*request.param, tmp_path, "--max-connections", str(LIMIT))


def get_json(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, json.loads(response.read())


def refused_handshake(url: str) -> str:
    """The lean client's error for one more client (it must be refused)."""
    client = Client(url, timeout=5)
    try:
        with pytest.raises(ConnectError) as refused:
            client.connect()
    finally:
        client.close()
    return str(refused.value)


def log_text(target: TargetProcess) -> str:
    assert target.log_path is not None
    return target.log_path.read_text(errors="replace")


@pytest.mark.slow
def test_at_the_connection_limit_a_new_client_is_refused_and_stats_answer(small_target: TargetProcess) -> None:
    peers = [RawPeer(small_target.url) for _ in range(LIMIT)]
    try:
        message = refused_handshake(small_target.url)
        assert "503" in message and "connection limit" in message, message
        for path in ("/healthz", "/stats"):  # at capacity, exactly when a test needs them
            status, _ = get_json(small_target.url + path)
            assert status == 200, path
        _, stats = get_json(small_target.url + "/stats")
        assert stats["connected"] == LIMIT
        assert stats["admission"]["limited_by"] == "connection limit"
        assert stats["admission"]["refused"] >= 1
    finally:
        for peer in peers:
            peer.close()
    # Room again once the server has dropped the sessions of the clients that left.
    deadline = time.monotonic() + 15
    while True:
        try:
            with RawPeer(small_target.url) as peer:
                assert peer.call("echo", "back") == "back"
            break
        except websocket.WebSocketBadStatusException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    log = log_text(small_target)
    assert log.count(f"nearing the connection limit: 11 of {LIMIT} sessions") == 1, log[-2000:]
    assert "refusing new clients at the connection limit" in log
    assert "Traceback" not in log


def tree_fds(pid: int) -> int:
    return psutil.Process(pid).num_fds()


@pytest.mark.slow
@pytest.mark.parametrize("target_param", [("gevent", "dev"), ("asgi", "uvicorn")], ids=target_id)
def test_near_the_descriptor_limit_clients_are_refused_by_name(target_param: tuple[str, str],
                                                                 tmp_path: Path) -> None:
    for target in running_target(*target_param, tmp_path):
        room = 8
        nofile = tree_fds(target.pid) + DESCRIPTOR_RESERVE + CONTROL_HEADROOM + room
        subprocess.run(["prlimit", f"--pid={target.pid}", f"--nofile={nofile}:{nofile}"], check=True)
        peers = []
        try:
            message = ""
            for _ in range(room + 40):  # bounded: the refusal comes within `room` clients
                try:
                    peers.append(RawPeer(target.url))
                except websocket.WebSocketBadStatusException as exc:
                    message = f"{exc.status_code} {exc.resp_body!r}"
                    break
            assert "descriptor limit" in message, message or f"{len(peers)} clients, none refused"
            assert "503" in message
            assert "descriptor limit" in refused_handshake(target.url)
            status, stats = get_json(target.url + "/stats")
            assert status == 200 and stats["admission"]["limited_by"] == "descriptor limit"
            assert get_json(target.url + "/healthz")[0] == 200
        finally:
            for peer in peers:
                with contextlib.suppress(Exception):
                    peer.close()
        log = log_text(target)
        assert "refusing new clients at the descriptor limit" in log
        assert "Too many open files" not in log and "Traceback" not in log, log[-2000:]



def test_closed_sessions_awaiting_the_purge_do_not_count_near_the_limit() -> None:
    from types import SimpleNamespace

    from target_app.admission import open_sessions

    table = {str(i): SimpleNamespace(closed=i % 2 == 0) for i in range(10)}
    assert open_sessions(table, exact_from=100) == 10  # far from the limit: the table's length
    assert open_sessions(table, exact_from=9) == 5
