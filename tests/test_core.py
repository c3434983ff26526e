"""The bottom layer: cell names, the /stats client, atomic writes."""
from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports.metrics import scenario_of
from sioharness.bench.check import Rule
from sioharness.core.cells import CellName, capacity_variant, cell_name
from sioharness.core.files import atomic_open, write_json
from sioharness.core.sampler import stats_connected
from sioharness.core.stats_client import NoStatsError, connected_count, fetch_stats, probe_stats


def test_cell_names_build_and_parse_one_way() -> None:
    assert cell_name("gevent", "dev", "echo") == "gevent-dev--echo"
    assert cell_name("a b", "dev/x", "chat room") == "a_b-dev_x--chat_room"
    step = str(CellName("gevent-dev-x3", "echo", capacity_variant(20)))
    assert step == "gevent-dev-x3--echo--u00020"
    assert CellName.parse(step) == CellName("gevent-dev-x3", "echo", "u00020")
    assert CellName.parse("loose-folder") == CellName("loose-folder", "", "")


def test_the_check_and_the_reports_agree_on_a_capacity_cell() -> None:
    cell = "gevent-dev--echo--u00020"
    assert scenario_of(None, cell) == "echo"
    assert Rule(metric="m", scenario="echo", target="gevent-dev").applies(cell, {})


class _Handler(http.server.BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.paths.append(self.path)
        body = {"/ok/stats": b'{"connected": 4, "async_mode": "gevent"}', "/list/stats": b"[1]",
                "/text/stats": b"not json"}.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_stats_client_over_a_real_socket(server: str) -> None:
    assert fetch_stats(server + "/ok/")["async_mode"] == "gevent"
    assert connected_count(server + "/ok") == 4
    for path in ("/missing", "/list", "/text"):
        with pytest.raises(NoStatsError):
            fetch_stats(server + path)
        assert probe_stats(server + path) is None and connected_count(server + path) is None
    dead = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(OSError):
        fetch_stats(dead, timeout=1)
    assert probe_stats(dead, timeout=1) is None


def test_the_sampler_asks_an_app_without_stats_once(server: str) -> None:
    """A user's app answers /stats with a 404: one request, not two a second for the whole cell."""
    _Handler.paths.clear()
    probe = stats_connected([server + "/ok", server + "/missing", f"http://127.0.0.1:{_closed_port()}"])
    assert [probe() for _ in range(5)] == [4] * 5
    assert _Handler.paths.count("/missing/stats") == 1 and _Handler.paths.count("/ok/stats") == 5
    assert stats_connected(server + "/missing")() is None


def test_atomic_writes_leave_no_temp_file_behind(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    with pytest.raises(ValueError):
        write_json(tmp_path / "a.json", {"x": float("nan")})
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "b.txt") as handle:
        handle.write("half")
        raise RuntimeError("writer died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_a_planted_link_under_a_temp_name_is_never_written_through(tmp_path: Path) -> None:
    """A results folder (a downloaded artifact) may hold links named like the writer's temp files."""
    folder, outside = tmp_path / "cell", tmp_path / "outside.txt"
    folder.mkdir()
    outside.write_text("keep me")
    for pid in range(os.getpid() - 50, os.getpid() + 50):  # every name a per-process scheme would pick
        (folder / f".summary.json.{pid}.tmp").symlink_to(outside)
    write_json(folder / "summary.json", {"status": "ok"})
    with atomic_open(folder / "report.md") as handle:
        handle.write("# report")
    assert outside.read_text() == "keep me"
    assert json.loads((folder / "summary.json").read_text()) == {"status": "ok"}
    assert not (folder / "summary.json").is_symlink() and (folder / "report.md").read_text() == "# report"


def test_a_planted_link_at_the_final_name_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (tmp_path / "summary.json").symlink_to(outside)
    write_json(tmp_path / "summary.json", {"status": "ok"})
    assert outside.read_text() == "keep me" and not (tmp_path / "summary.json").is_symlink()
