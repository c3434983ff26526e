"""The web UI extension over HTTP in a plain ``locust --class-picker`` run (one process, no sioharness.bench.ui).

Two tests started one after the other from the same UI must land in two
cell folders, each holding its own samples only, and the Socket.IO API must
show the second test's fan-out.
"""
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sioharness.core.paths import HARNESS_LOCUSTFILE
from sioharness.core.paths import IMPORT_ROOT as REPO_ROOT
from target_app.process import TargetProcess, free_port, start_target


def _request(url: str, data: dict | list | None = None) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST" if body is not None
                                                           else "GET"), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def web_ui(tmp_path: Path) -> Iterator[tuple[str, TargetProcess, Path]]:
    results = tmp_path / "session"
    port = free_port()
    with start_target("gevent", "dev", log_path=tmp_path / "target.log") as target:
        argv = [sys.executable, "-m", "locust", "-f", str(HARNESS_LOCUSTFILE),
                "--class-picker", "--web-host", "127.0.0.1", "--web-port", str(port), "--host", target.url,
                "--results-dir", str(results), "--stop-timeout", "3"]
        with open(tmp_path / "locust.log", "wb") as log:
            locust = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for(lambda: locust.poll() is not None or _reachable(base), 60, "the web UI")
            assert locust.poll() is None, (tmp_path / "locust.log").read_text()
            yield base, target, results
        finally:
            locust.send_signal(signal.SIGTERM)
            try:
                locust.wait(timeout=30)
            except subprocess.TimeoutExpired:
                locust.kill()
                locust.wait(timeout=10)


def _reachable(base: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(base + "/", timeout=2):
        return True
    return False


def _live(base: str) -> dict:
    return json.loads(_request(base + "/socketio/api/live")[1])


def _run_test(base: str, target: TargetProcess, results: Path, form: dict, until, what: str) -> Path:
    status, body = _request(base + "/swarm", {"host": target.url, "results_dir": str(results), **form})
    assert status == 200 and json.loads(body)["success"], body
    live = _wait_for(lambda: (d := _live(base))["figures"] and until(d["figures"]) and d, 40, what)
    cell = results / live["cell"]
    assert _request(base + "/stop", {})[0] == 200
    _wait_for(lambda: json.loads((cell / "run.json").read_text())["status"] == "ok", 40, "the stop in run.json")
    return cell


def _names(cell: Path) -> set[tuple[str, str]]:
    rows = set()
    for shard in cell.glob("samples-*.parquet"):
        table = pq.read_table(shard, columns=["kind", "name"])
        rows |= set(zip(table.column("kind").to_pylist(), table.column("name").to_pylist(), strict=True))
    return rows


@pytest.mark.slow  # Locust tests of real load, several seconds each
def test_two_tests_two_folders_and_live_fanout(web_ui: tuple[str, TargetProcess, Path]) -> None:
    base, target, results = web_ui
    idle = _live(base)
    assert idle["recording"] and idle["cell"] is None and idle["figures"] is None
    status, body = _request(base + "/socketio/api/report", {})
    assert status == 409 and "no test has been started" in json.loads(body)["error"]

    echo = _run_test(base, target, results,
                     {"user_count": 3, "spawn_rate": 10, "user_classes": "EchoUser", "emit_rate": 30},
                     lambda f: any(e["name"] == "echo" and e["ok"] >= 30 for e in f["events"]), "echo samples")
    broadcast = _run_test(base, target, results,
                          {"user_count": 6, "spawn_rate": 20, "user_classes": "BroadcastUser", "emit_rate": 10,
                           "room_size": 3},
                          lambda f: (f["fanout"] or {}).get("settled_expected", 0) >= 20, "settled fan-out")

    # The target named itself through /stats: no sioharness.bench.ui session file here.
    assert echo.name.startswith("gevent-dev--echo-") and broadcast.name.startswith("gevent-dev--broadcast-")
    assert sorted(p.name for p in results.iterdir() if p.is_dir()) == sorted([echo.name, broadcast.name])
    assert _names(echo) == {("connect", "connect"), ("ack", "echo"), ("disconnect", "disconnect")}
    assert {("ack", "broadcast"), ("push", "fanout"), ("ack", "join")} <= _names(broadcast)
    assert ("ack", "echo") not in _names(broadcast)
    run = json.loads((broadcast / "run.json").read_text())
    assert run["scenario"] == "broadcast" and run["load"]["room_size"] == 3 and run["load"]["users"] == 6

    final = _live(base)
    figures = final["figures"]
    on_disk = sum(pq.ParquetFile(s).metadata.num_rows for s in broadcast.glob("samples-*.parquet"))
    assert final["cell"] == broadcast.name and final["running"] is False and figures["samples"] == on_disk
    fanout = figures["fanout"]
    assert fanout["expected"] > 0 and fanout["received"] == fanout["expected"] and fanout["lost"] == 0
    assert figures["server"] is None and final["target"]["sampled"] is False
    assert [c["name"] for c in final["cells"]] == [echo.name, broadcast.name]
    assert _request(f"{base}/socketio/files/{echo.name}/report.html")[0] == 404  # not written yet
    assert _request(f"{base}/socketio/files/..%2Fsession/run.json")[0] == 404
    assert _request(f"{base}/socketio/files/{echo.name}/samples.parquet")[0] == 404


@pytest.mark.slow  # Locust tests of real load, several seconds each
def test_a_timed_test_does_not_end_the_web_ui_and_its_figures_stay_final(
        web_ui: tuple[str, TargetProcess, Path]) -> None:
    """A run time arms the watchdog for that test only: the UI outlives its deadline (2 s + 3 s + 15 s)."""
    base, target, results = web_ui
    started = time.monotonic()
    status, body = _request(base + "/swarm", {"host": target.url, "results_dir": str(results), "user_count": 2,
                                              "spawn_rate": 10, "user_classes": "EchoUser", "emit_rate": 20,
                                              "run_time": "2s"})
    assert status == 200 and json.loads(body)["success"], body
    done = _wait_for(lambda: (d := _live(base))["cell"] and d["running"] is False and d["figures"] and d, 40,
                     "the timed test's end")
    rate = [e["per_s"] for e in done["figures"]["events"] if e["name"] == "echo"]
    time.sleep(max(0.0, started + 24 - time.monotonic()))  # past the deadline: 2 s run, 3 s stop, 15 s grace
    assert _reachable(base), "the web UI is still there"
    later = _live(base)
    assert later["cell"] == done["cell"] and later["running"] is False
    assert [e["per_s"] for e in later["figures"]["events"] if e["name"] == "echo"] == rate, "final figures hold"


def test_a_host_outside_loopback_is_refused_before_swarming(web_ui: tuple[str, TargetProcess, Path]) -> None:
    base, target, results = web_ui
    status, body = _request(base + "/swarm", {"host": "http://192.0.2.7:5000", "user_count": 2, "spawn_rate": 10,
                                              "user_classes": "EchoUser"})
    answer = json.loads(body)
    assert status == 400 and answer["success"] is False and "refusing to load 192.0.2.7" in answer["message"]
    time.sleep(1.0)
    assert _reachable(base), "the web UI is still there"
    assert _live(base)["cell"] is None, "no test started"
    assert not (results.exists() and any(p.name == "load.json" for p in results.rglob("load.json")))


def _post(url: str, data: dict, headers: dict[str, str]) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(data, doseq=True).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST"),
                                    timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_start_form_takes_only_what_it_shows_from_the_ui_itself(
        web_ui: tuple[str, TargetProcess, Path], tmp_path: Path) -> None:
    """The form cannot switch off the guard, aim elsewhere or record elsewhere; other sites cannot post it."""
    base, target, results = web_ui
    start = {"host": target.url, "user_count": 2, "spawn_rate": 10, "user_classes": "EchoUser"}
    refused = [
        ({**start, "target_urls": f"{target.url},http://198.51.100.7:5999", "i_own_this_host": "true"}, {},
         400, "no field 'i_own_this_host'"),
        ({**start, "target_urls": f"{target.url},http://198.51.100.7:5999"}, {}, 400,
         "target_urls: refusing to load 198.51.100.7"),
        ({**start, "results_dir": str(tmp_path / "elsewhere")}, {}, 400, "results_dir must be"),
        ({**start, "emit_rate": "nan"}, {}, 400, "emit_rate"),
        ({**start, "host": "http://" + "a" * 64 + ".example:5000"}, {}, 400, "refusing to load aaaa"),
        (start, {"Origin": "https://evil.example"}, 403, "another site"),
        (start, {"Sec-Fetch-Site": "cross-site"}, 403, "another site"),
        (start, {"Host": "rebound.example:8089"}, 403, "answers only loopback names"),
    ]
    for form, headers, status, message in refused:
        got, body = _post(base + "/swarm", form, headers)
        assert got == status and message in json.loads(body)["message"], (form, headers, body)
    time.sleep(1.0)
    assert _live(base)["cell"] is None, "no test started"
    assert not (tmp_path / "elsewhere").exists()
    assert not [p for p in results.iterdir() if p.is_dir()], "no cell folder"
    got, _ = _post(base + "/stop", {}, {"Origin": "https://evil.example"})
    assert got == 403

    # The same form, from the UI's own page, starts the test.
    own = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
    got, body = _post(base + "/swarm", {**start, "results_dir": str(results), "emit_rate": 20}, own)
    assert got == 200 and json.loads(body)["success"], body
    _wait_for(lambda: _live(base)["cell"], 30, "the test's cell")
    assert _post(base + "/stop", {}, own)[0] == 200
