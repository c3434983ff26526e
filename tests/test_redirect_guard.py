"""No request leaves the load's targets through a redirect.

A loopback server answers every request with a 302 to ``0.0.0.0:<port>``:
an address the loopback guard refuses (it is not 127.0.0.0/8 or ::1), which
Linux nonetheless connects to this machine. A second server listens there on
127.0.0.1 and counts what reaches it: a followed redirect shows as a hit, and
no packet leaves the machine even when the guard fails.
"""
from __future__ import annotations

import functools
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from locust.event import EventHook

from loadtests.wire.http_session import GuardedSession, RedirectRefused, TargetHttpSession
from loadtests.wire.safety import require_loopback
from sioharness.core.stats_client import NoStatsError, fetch_stats, probe_stats

from .test_locust_scenarios import run_locust


class _Counting(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


class _Redirecting(BaseHTTPRequestHandler):
    location: str

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(302)
        self.send_header("Location", self.location + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Redirect:
    url: str  # the loopback server that redirects
    hits: list[str]  # what reached the redirect's destination
    port: int  # the destination's port (on 0.0.0.0, which the guard refuses, and on 127.0.0.1, which it accepts)


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def redirect() -> Iterator[Redirect]:
    hits: list[str] = []
    counting = _serve(type("Counting", (_Counting,), {"hits": hits}))
    port = counting.server_address[1]
    redirecting = _serve(type("Redirecting", (_Redirecting,), {"location": f"http://0.0.0.0:{port}"}))
    try:
        yield Redirect(f"http://127.0.0.1:{redirecting.server_address[1]}", hits, port)
    finally:
        for server in (redirecting, counting):
            server.shutdown()
            server.server_close()


def test_the_destination_is_reachable_so_a_followed_redirect_would_show(redirect: Redirect) -> None:
    with urllib.request.urlopen(redirect.url + "/probe", timeout=5) as response:  # urllib follows it
        assert response.read() == b"ok"
    assert redirect.hits == ["/probe"]


def test_a_plain_session_follows_redirects_only_to_load_targets(redirect: Redirect) -> None:
    guarded = GuardedSession(require_loopback)
    with pytest.raises(RedirectRefused, match="refusing to load 0.0.0.0"):
        guarded.get(redirect.url + "/socket.io/?EIO=4&transport=polling", timeout=5)
    assert redirect.hits == []
    owned = GuardedSession(functools.partial(require_loopback, owned=["0.0.0.0"]))
    assert owned.get(redirect.url + "/yours", timeout=5).text == "ok"
    assert redirect.hits == ["/yours"]


def test_a_users_http_session_records_a_refused_redirect_as_a_failure(redirect: Redirect) -> None:
    failures: list[BaseException] = []
    events = EventHook()
    events.add_listener(lambda exception=None, **_: failures.append(exception) if exception else None)
    session = TargetHttpSession(redirect.url, events, None, check_url=require_loopback)
    session.get("/login")
    assert len(failures) == 1 and "refusing to load 0.0.0.0" in str(failures[0])
    assert redirect.hits == []


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_reference_user_follows_no_redirect_off_loopback(redirect: Redirect, tmp_path: Path, transport: str) -> None:
    run = run_locust(redirect, tmp_path, "ReferenceUser", "--transport", transport, "--fail-fast-after", "0", users=1)
    connects = run.samples[run.samples.kind == "connect"]
    assert len(connects) > 0 and not connects.ok.any(), run.log[-2000:]
    assert redirect.hits == [], f"a {transport} connect followed the redirect: {redirect.hits}"


def test_a_stats_probe_ends_at_a_redirect(redirect: Redirect) -> None:
    with pytest.raises(NoStatsError, match="answered HTTP 302"):
        fetch_stats(redirect.url)
    assert probe_stats(redirect.url) is None and redirect.hits == []
