"""``python -m sioharness.bench.ui`` as a user meets it, in a real headless Chromium.

One session (a gevent target, Locust's web UI with two worker processes and
a login) is started the way ``make ui`` starts it. The browser logs in,
picks EchoUser, sets users and two scenario parameters, starts, watches the
Socket.IO page's figures change (samples from both workers), writes the
full report, stops; then Ctrl-C (SIGINT) must stop everything. Debian's
``/usr/bin/chromium`` is driven by playwright: no browser is downloaded.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT
from target_app.process import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.lock)")

USER, PASSWORD = "tester", "correct horse"
#: the scenario parameters the start form must offer (their form field names)
SCENARIO_FIELDS = ("payloadBytes", "emitRate", "roomSize", "sendersPerRoom", "namespace", "transport",
                   "openModel", "callTimeout", "authToken")
TIMEOUT_MS = 30_000


@dataclass
class UiSession:
    process: subprocess.Popen
    results: Path
    url: str
    log: Path

    def record(self) -> dict:
        return json.loads((self.results / "ui-session.json").read_text())


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _kill_group(pid: int | None) -> None:
    """SIGKILL a process group this test's session started (its leaders had their own sessions)."""
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def ui_session(tmp_path: Path) -> Iterator[UiSession]:
    results = tmp_path / "session"
    web_port = free_port()
    log = tmp_path / "scripts-ui.out"
    argv = [sys.executable, "-m", "sioharness.bench.ui", "--target", "gevent-dev", "--processes", "2",
            "--web-port", str(web_port), "--results", str(results), "--web-auth", f"{USER}:{PASSWORD}",
            "--users", "3", "--spawn-rate", "3", "--stop-timeout", "2"]
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)}
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    session = UiSession(process, results, f"http://127.0.0.1:{web_port}", log)
    try:
        _wait_for(lambda: process.poll() is not None or "Socket.IO page" in log.read_text(), 90,
                  "sioharness.bench.ui to print the web UI's address")
        assert process.poll() is None, f"sioharness.bench.ui exited early:\n{log.read_text()}"
        yield session
    finally:
        pids = {}
        with contextlib.suppress(OSError, ValueError):
            pids = session.record()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
        for pid in (process.pid, pids.get("locust_pid"), pids.get("target_pid")):
            _kill_group(pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _samples(page) -> int:
    text = page.locator("#sio-samples").inner_text()
    match = re.match(r"([\d,]+) \((\d+)\)", text)
    return int(match.group(1).replace(",", "")) if match else 0


def test_start_watch_report_stop_in_chromium(ui_session: UiSession, tmp_path: Path) -> None:
    base = ui_session.url
    record = ui_session.record()
    locust_tree = [p.pid for p in psutil.Process(record["locust_pid"]).children(recursive=True)]
    assert len(locust_tree) == 2, "Locust's --processes 2 workers"

    # The login protects the API too; HTTP Basic works for scripts.
    assert _get(f"{base}/socketio/api/live")[0] == 401
    assert _get(f"{base}/socketio/api/live", ("tester", "wrong"))[0] == 401
    status, body = _get(f"{base}/socketio/api/live", (USER, PASSWORD))
    assert status == 200 and json.loads(body)["recording"] is True

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()

            # Locust's login form.
            page.goto(base + "/")
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.get_by_role("button", name=re.compile("log ?in", re.I)).click()

            # Every scenario is in the class picker; choose EchoUser only.
            picker = page.get_by_role("table").first
            picker.wait_for()
            for name in ("ChurnUser", "EchoUser", "BroadcastUser", "RoomsUser", "IdleUser", "ReferenceUser"):
                assert picker.get_by_role("row", name=re.compile(name)).count() == 1, name
            picker.get_by_role("checkbox").first.uncheck()  # the "all" box
            picker.get_by_role("row", name=re.compile("EchoUser")).get_by_role("checkbox").check()

            page.fill("input[name=userCount]", "4")
            page.fill("input[name=spawnRate]", "4")
            page.get_by_text("Custom parameters").click()
            for field in SCENARIO_FIELDS:
                assert page.locator(f"[name={field}]").count() == 1, f"{field} missing from the start form"
            page.fill("input[name=emitRate]", "25")
            page.fill("input[name=payloadBytes]", "256")
            page.get_by_role("button", name=re.compile("^start$", re.I)).click()

            # Locust's own Socket.IO tab fills from the recorder's samples.
            page.get_by_role("tab", name=re.compile("^Socket\\.IO$", re.I)).click()
            page.get_by_role("cell", name="echo", exact=True).wait_for()

            # The Socket.IO page, opened from the link on Locust's page.
            with context.expect_page() as opened:
                page.click("#socketio-page-link")
            sio = opened.value
            sio.wait_for_selector("#sio-events tbody tr[data-key=echo]")
            first = _wait_for(lambda: _samples(sio), 30, "samples on the Socket.IO page")
            _wait_for(lambda: _samples(sio) > first, 30, "the sample count to grow")
            _wait_for(lambda: sio.locator("#sio-samples").inner_text().endswith("(2)"), 30,
                      "samples from both worker processes")
            _wait_for(lambda: sio.locator("#sio-concurrent").inner_text().startswith("4 "), 30,
                      "four concurrent connections")
            _wait_for(lambda: sio.locator("#sio-server").inner_text() not in ("-", "not sampled"), 30,
                      "the target's CPU and RSS")
            p50 = sio.locator("#sio-events tbody tr[data-key=echo] td").nth(6).inner_text()
            assert float(p50.replace(",", "")) > 0
            sio.screenshot(path=str(tmp_path / "socketio-page.png"), full_page=True)

            # The full report of the running test, written into its folder and served.
            sio.click("#sio-report-button")
            link = sio.locator("#sio-report-link")
            link.wait_for(state="visible", timeout=120_000)
            cell = json.loads(_get(f"{base}/socketio/api/live", (USER, PASSWORD))[1])["cell"]
            cell_dir = ui_session.results / cell
            assert (cell_dir / "report.html").is_file() and (cell_dir / "summary.json").is_file()
            report_page = context.new_page()
            report_page.goto(urllib.parse.urljoin(sio.url, link.get_attribute("href")))
            assert "echo" in report_page.content()
            report_page.close()

            # Stop from Locust's page; the test's run.json is final.
            page.bring_to_front()
            page.get_by_role("button", name=re.compile("^stop$", re.I)).click()
            run = _wait_for(lambda: (r := json.loads((cell_dir / "run.json").read_text()))["status"] == "ok" and r,
                            60, "run.json to say ok after the stop")
            page.screenshot(path=str(tmp_path / "locust-page.png"))
        finally:
            browser.close()

    assert run["scenario"] == "echo" and run["mode"] == "gevent" and run["server"] == "dev"
    assert run["load"]["users"] == 4 and run["load"]["emit_rate"] == 25 and run["load"]["payload_bytes"] == 256
    assert run["ui"]["workers"] == 2 and run["load_ended_ns"] > run["load_started_ns"]
    shards = list(cell_dir.glob("samples-*.parquet"))
    assert len({s.name.rsplit("-", 1)[0] for s in shards}) == 2, "shards from both worker processes"
    assert (cell_dir / "server.csv").read_text().count("\n") > 2
    assert (tmp_path / "socketio-page.png").stat().st_size > 10_000

    # Ctrl-C: Locust, its workers and the target all end.
    watched = [ui_session.process.pid, record["locust_pid"], record["target_pid"], *locust_tree]
    ui_session.process.send_signal(signal.SIGINT)
    assert ui_session.process.wait(timeout=60) == 0, ui_session.log.read_text()
    _wait_for(lambda: not any(map(_alive, watched)), 10, "every process of the session to end")
    final = ui_session.record()
    assert final["status"] == "ok" and final["cells"] == [cell]
