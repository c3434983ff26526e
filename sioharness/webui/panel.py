"""The Socket.IO page and tabs in Locust's web UI, and what each test start does.

Runs in the Locust process that serves the web UI (standalone, or the
master of ``--processes N`` / master-worker runs):

- each test started from the UI gets its own cell folder (see
  :mod:`sioharness.webui.session`); the master puts it in the test's
  ``results_dir`` option, which Locust hands to every worker with the spawn
  message, and each recording process follows it
  (:func:`follow_results_dir`);
- ``/socketio/`` is a page with live figures (polls ``/socketio/api/live``
  every 2 s), ``POST /socketio/api/report`` writes the full report of the
  current test into its folder, ``/socketio/files/<cell>/report.html``
  serves it;
- two tabs in Locust's own UI ("Socket.IO": microsecond percentiles per
  event; "Socket.IO figures": connections, fan-out, target CPU and RSS)
  ride on Locust's ``/stats/requests`` poll, and a link to the page is added
  to Locust's page and its download tab;
- ``--web-login`` gets a username and password from ``$LOADTEST_WEB_AUTH``
  (Locust's login form for browsers, HTTP Basic for scripts).
"""
from __future__ import annotations

import base64
import binascii
import csv
import dataclasses
import hmac
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from loadtests.runtime.env_state import harness_of, settings_of
from loadtests.wire.safety import require_loopback
from sioharness.core.paths import IMPORT_ROOT, python_path_with
from sioharness.core.stats_client import probe_stats
from sioharness.webui import form_guard

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.runners import MasterRunner, WorkerRunner
    from locust.web import WebUI

    from loadtests.runtime.recorder import Recorder
    from sioharness.webui.live import LiveCell, ServerSeries
    from sioharness.webui.session import TestCell, UiSession

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: ``user:password`` for ``--web-login`` (an environment variable keeps it out of ``ps``)
ENV_WEB_AUTH = "LOADTEST_WEB_AUTH"
FLUSH_MESSAGE = "loadtests_webui_flush"
FLUSHED_MESSAGE = "loadtests_webui_flushed"
#: seconds a snapshot is reused: many pollers (tabs, Locust's own poll) cost one computation
SNAPSHOT_TTL_S = 1.0
#: seconds the report child may take
REPORT_TIMEOUT_S = 180.0
#: report files a cell folder may serve
SERVED_FILES = ("report.html", "report.md", "summary.json", "run.json")


class WebAuthError(ValueError):
    """``$LOADTEST_WEB_AUTH`` is missing or not ``user:password``."""


def parse_credentials(text: str | None) -> tuple[str, str]:
    """``user:password`` -> (user, password); raises WebAuthError naming the problem."""
    if not text:
        raise WebAuthError(f"--web-login needs ${ENV_WEB_AUTH}=user:password "
                           "(python -m sioharness.bench.ui --web-auth user:password sets it)")
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise WebAuthError(f"${ENV_WEB_AUTH} must look like user:password (both non-empty), got {len(text)} characters "
                           "without that shape")
    return user, password


def _master(environment: Environment) -> MasterRunner | None:
    """The runner, if this process is the master of a distributed run."""
    from locust.runners import MasterRunner  # Locust monkey-patches on import: only inside a Locust process

    runner = environment.runner
    return runner if isinstance(runner, MasterRunner) else None


def _worker(environment: Environment) -> WorkerRunner | None:
    """The runner, if this process is a worker of a distributed run."""
    from locust.runners import WorkerRunner

    runner = environment.runner
    return runner if isinstance(runner, WorkerRunner) else None


def _recorder(environment: Environment) -> Recorder | None:
    """This process's sample recorder, if the harness records."""
    harness = harness_of(environment)
    return harness.recorder if harness is not None else None


# --- every recording process ---------------------------------------------------


def follow_results_dir(environment: Environment, **_: Any) -> None:
    """``test_start``: point this process's recorder at the test's ``results_dir``.

    The master picks a folder per test; workers receive it with the spawn
    message, before their ``test_start``.
    """
    recorder = _recorder(environment)
    options = environment.parsed_options
    wanted = getattr(options, "results_dir", "") if options else ""
    if recorder is None or not wanted or Path(wanted) == recorder.results_dir:
        return
    harness = harness_of(environment)
    if getattr(options, "samples_via_master", False) and harness is not None and harness.sender is not None:
        return  # the master writes this worker's samples into its folder; this one keeps what cannot be sent
    recorder.retarget(Path(wanted))  # anything left belongs to the previous folder
    logger.info("recording this test's samples to %s", wanted)


def _flush_local(environment: Environment) -> int:
    """Flush this process's recorder now (in gevent's thread pool); rows written."""
    recorder = _recorder(environment)
    if recorder is None:
        return 0
    before = recorder.written
    recorder.flush_in_thread()
    return recorder.written - before


def on_flush_request(environment: Environment, msg: Any, **_: Any) -> None:
    """Worker side of the report button: flush, then tell the master."""
    rows = _flush_local(environment)
    runner = environment.runner
    assert runner is not None  # a message arrived, so this worker has its runner
    runner.send_message(FLUSHED_MESSAGE, {"id": (msg.data or {}).get("id"), "rows": rows})


# --- the process serving the web UI ---------------------------------------------


class SocketIOPanel:
    """The web UI extension: per-test folders, live figures, report, auth."""

    def __init__(self, environment: Environment) -> None:
        # Only the process serving the UI needs these (they pull in pandas): imported here, not at the
        # top, so worker processes and headless runs start without them.
        from sioharness.webui import live, session

        self._live, self._session = live, session
        self.environment = environment
        web_ui = environment.web_ui
        assert web_ui is not None  # on_init builds the panel only where the web UI runs
        options = environment.parsed_options
        root = getattr(options, "results_dir", "") if options is not None else ""
        #: what the start form sends back when the user keeps the folder
        self.root_option = root
        self.session: UiSession | None = session.UiSession(Path(root)) if root else None
        self.server: ServerSeries | None = (
            live.ServerSeries(Path(root) / session.SESSION_SERVER_CSV) if root else None)
        self.live: LiveCell | None = None
        self.base = (getattr(options, "web_base_path", "") or "").rstrip("/")
        self._target_labels: dict[str, tuple[str, str]] = {}
        self._lock = Semaphore()
        self._snapshot: tuple[float, dict[str, Any]] | None = None
        self._report: dict[str, Any] = {"state": "idle"}
        self._report_lock = Semaphore()
        self._flush_id = 0
        self._flushed: dict[int, int] = {}
        self._flush_event = Event()

        events = environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        master = _master(environment)
        if master is not None:
            master.register_message(FLUSHED_MESSAGE, self._on_flushed)
        if web_ui.web_login:
            configure_login(web_ui, parse_credentials(os.environ.get(ENV_WEB_AUTH)), self.base)
        elif os.environ.get(ENV_WEB_AUTH):
            logger.warning("$%s is set but Locust runs without --web-login: the web UI has no login", ENV_WEB_AUTH)
        self._install_routes(web_ui)
        self._extend_locust_ui(web_ui)

    # --- tests starting and stopping ------------------------------------------

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        if self.session is None:
            return
        options = environment.parsed_options
        assert options is not None  # recording (self.session) needs its --results-dir option
        chosen = getattr(options, "results_dir", "") or self.root_option
        current = self.session.current
        if current is not None and Path(chosen) == current.path:
            chosen = str(self.session.root)  # not the form: the folder we set for the last test
        if Path(chosen) != self.session.root:
            self.session = self._session.UiSession(Path(chosen))  # the user typed another folder in the form
        mode, server = self._target_label(environment.host or "")
        master = _master(environment)
        workers = master.worker_count if master is not None else 1
        cell = self.session.start_test(
            mode=mode, server=server, user_classes=[c.__name__ for c in environment.user_classes],
            options=options, host=environment.host, workers=workers, now_ns=time.time_ns())
        options.results_dir = str(cell.path)  # sent to the workers with the spawn message
        harness = harness_of(environment)
        if harness is not None:  # its test_start ran first: files it writes per test go to the cell too
            harness.settings = dataclasses.replace(harness.settings, results_dir=str(cell.path))
        with self._lock:
            sampled = cell.record.extra["ui"]["target_sampled"]
            self.live = self._live.LiveCell(cell.path, cell.started_ns, server=self.server if sampled else None)
            self._snapshot = None
        self._report = {"state": "idle"}
        logger.info("Socket.IO: this test records into %s", cell.path)

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self.session is None:
            return
        now_ns = time.time_ns()
        if self.live is not None and self.live.ended_ns is None:
            self.live.ended_ns = now_ns
        cell = self.session.stop_test(now_ns=now_ns)
        if cell is not None:
            self._write_locust_stats(cell.path)
            self._snapshot = None

    def _target_label(self, host: str) -> tuple[str, str]:
        """(mode, server) of the target: from sioharness.bench.ui's session file, else the target's /stats."""
        session = self._session.read_session(self.session.root) if self.session else {}
        if session.get("mode") and session.get("server") and session.get("target_url") == host:
            return str(session["mode"]), str(session["server"])
        if host not in self._target_labels:
            stats = probe_stats(host, timeout=2.0) or {}
            self._target_labels[host] = (str(stats.get("async_mode") or "unknown"),
                                         str(stats.get("server") or "unknown"))
        return self._target_labels[host]

    def _write_locust_stats(self, cell_dir: Path) -> None:
        """Locust's own request table, for the report's cross-check (``locust_stats.csv``)."""
        from locust import stats as locust_stats

        try:
            writer = locust_stats.StatsCSV(self.environment, locust_stats.PERCENTILES_TO_REPORT)
            with open(cell_dir / "locust_stats.csv", "w", newline="") as handle:
                writer.requests_csv(csv.writer(handle))
        except Exception:
            logger.exception("Socket.IO: could not write locust_stats.csv")

    # --- live figures -----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The live figures (at most SNAPSHOT_TTL_S old), with the run's state."""
        runner = self.environment.runner
        state = str(getattr(runner, "state", "unknown"))
        with self._lock:
            now = time.monotonic()
            if self._snapshot is not None and now - self._snapshot[0] < SNAPSHOT_TTL_S:
                return self._snapshot[1]
            live = self.live
            cell = self.session.current if self.session else None
            running = cell is not None and cell.running
            figures = None
            if live is not None:
                # Parquet reads and percentiles in a real thread: the hub keeps serving users.
                figures = gevent.get_hub().threadpool.apply(self._compute, (live, running))
            elif self.server is not None:
                self.server.update()
            data = {
                "state": state,
                "user_count": getattr(runner, "user_count", 0),
                "recording": self.session is not None,
                "results_dir": str(self.session.root) if self.session else None,
                "cell": cell.name if cell else None,
                "running": running,
                "target": self._target_info(),
                "figures": figures,
                "report": dict(self._report),
                "cells": self._cells(),
            }
            self._snapshot = (now, data)
            return data

    @staticmethod
    def _compute(live: LiveCell, running: bool) -> dict[str, Any]:
        live.update()
        return live.snapshot(now_ns=time.time_ns(), running=running)

    def _target_info(self) -> dict[str, Any]:
        session = self._session.read_session(self.session.root) if self.session else {}
        started = bool(session.get("target_pid"))
        # Sampled: sioharness.bench.ui started it, and the current test (if any) loads that target.
        sampled = started and (self.live is None or self.live.server is not None)
        return {"url": self.environment.host, "mode": session.get("mode"), "server": session.get("server"),
                "started_by_harness": started, "sampled": sampled, "pid": session.get("target_pid")}

    def _cells(self) -> list[dict[str, Any]]:
        if self.session is None:
            return []
        out = []
        for path in self.session.cells()[-50:]:
            try:
                status = json.loads((path / self._session.RUN_JSON).read_text()).get("status")
            except (OSError, ValueError, AttributeError):
                status = None
            report = path / "report.html"
            out.append({"name": path.name, "status": status,
                        "report": f"files/{path.name}/report.html" if report.is_file() else None})
        return out

    # --- the report button -----------------------------------------------------

    def _on_flushed(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        if data.get("id") == self._flush_id:
            self._flushed[msg.node_id] = int(data.get("rows") or 0)
            self._flush_event.set()

    def flush_recorders(self, timeout: float = 10.0) -> int:
        """Write what every recording process holds in memory; rows written (best effort)."""
        runner = _master(self.environment)
        if runner is None:
            return _flush_local(self.environment)
        workers = {c.id for c in runner.clients.all}
        if not workers:
            return 0
        self._flush_id += 1
        self._flushed = {}
        runner.send_message(FLUSH_MESSAGE, {"id": self._flush_id})
        deadline = time.monotonic() + timeout
        while not workers <= set(self._flushed) and time.monotonic() < deadline:
            self._flush_event.clear()
            self._flush_event.wait(max(0.0, deadline - time.monotonic()))
        if missing := workers - set(self._flushed):
            logger.warning("Socket.IO: %d worker(s) did not confirm their flush", len(missing))
        return sum(self._flushed.values())

    def write_report(self) -> tuple[int, dict[str, Any]]:
        """Write the full report of the current (or last) test; (HTTP status, JSON body)."""
        if self.session is None:
            return 409, {"error": "not recording: start Locust with --results-dir (python -m sioharness.bench.ui does)"}
        cell = self.session.current
        if cell is None:
            return 409, {"error": "no test has been started from this UI yet"}
        if not self._report_lock.acquire(blocking=False):
            return 409, {"error": "a report is being written already"}
        try:
            self._report = {"state": "writing", "cell": cell.name}
            self._snapshot = None
            return self._write_report(cell)
        finally:
            self._report_lock.release()

    def _write_report(self, cell: TestCell) -> tuple[int, dict[str, Any]]:
        started = time.monotonic()
        was_running = cell.running
        rows = self.flush_recorders()
        if was_running:
            assert self.session is not None  # write_report checked it
            self.session.snapshot(cell, now_ns=time.time_ns())
        self._write_locust_stats(cell.path)
        argv = [sys.executable, "-m", "sioharness.webui.report_job", str(cell.path)]
        env = os.environ | {"PYTHONPATH": python_path_with(IMPORT_ROOT)}
        try:
            done = subprocess.run(argv, cwd=IMPORT_ROOT, env=env, capture_output=True, text=True,
                                  timeout=REPORT_TIMEOUT_S, stdin=subprocess.DEVNULL)
            code, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired:
            code, out, err = -1, "", f"the report took longer than {REPORT_TIMEOUT_S:.0f} s"
        finally:
            if was_running and cell.running:  # still running: back to "running"
                cell.record.write(cell.path)
        seconds = round(time.monotonic() - started, 2)
        if code != 0:
            problem = (err.strip().splitlines() or [f"report child exited with code {code}"])[-1]
            self._report = {"state": "failed", "cell": cell.name, "error": problem, "seconds": seconds}
            return 500, dict(self._report)
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {}
        self._report = {
            "state": "done", "cell": cell.name, "seconds": seconds, "flushed_rows": rows,
            "while_running": was_running, "status": result.get("status"), "problems": result.get("problems", []),
            "url": f"files/{cell.name}/report.html", "path": str(cell.path / "report.html"),
        }
        self._snapshot = None
        return 200, dict(self._report)

    # --- Flask ------------------------------------------------------------------

    def _install_routes(self, web_ui: WebUI) -> None:
        from flask import Blueprint, Response, abort, jsonify, send_from_directory

        app = web_ui.app
        assert app is not None  # WebUI creates its Flask app in __init__
        guard = web_ui.auth_required_if_enabled
        bp = Blueprint("socketio_panel", __name__, url_prefix=self.base or None)

        @bp.route("/socketio/")
        @guard
        def page() -> Response:
            response = send_from_directory(STATIC_DIR, "socketio.html")
            response.headers["Cache-Control"] = "no-store"
            return response

        @bp.route("/socketio/static/<path:name>")
        @guard
        def static(name: str) -> Response:
            return send_from_directory(STATIC_DIR, name)

        @bp.route("/socketio/api/live")
        @guard
        def live() -> Response:
            return jsonify(self.snapshot())

        @bp.route("/socketio/api/report", methods=["POST"])
        @guard
        def report() -> tuple[Response, int]:
            status, body = self.write_report()
            return jsonify(body), status

        @bp.route("/socketio/files/<cell>/<name>")
        @guard
        def files(cell: str, name: str) -> Response:
            path = self.session.cell_path(cell) if self.session else None
            if path is None or name not in SERVED_FILES or not (path / name).is_file():
                abort(404)
            response = send_from_directory(path, name)
            response.headers["Cache-Control"] = "no-store"
            return response

        app.register_blueprint(bp)

    def _extend_locust_ui(self, web_ui: WebUI) -> None:
        """Tabs in Locust's UI (fed through its /stats/requests poll) and links to the page."""
        from flask import jsonify, request

        app = web_ui.app
        assert app is not None  # WebUI creates its Flask app in __init__
        web_ui.template_args["extended_tabs"] = [
            {"title": "Socket.IO", "key": "socketio"},
            {"title": "Socket.IO figures", "key": "socketio-figures"},
        ]
        web_ui.template_args["extended_tables"] = [
            {"key": "socketio", "structure": [
                {"key": "kind", "title": "Kind"}, {"key": "name", "title": "Name"},
                {"key": "count", "title": "# samples"}, {"key": "failed", "title": "# failed"},
                {"key": "per_s", "title": "ok/s"}, {"key": "p50_us", "title": "p50 µs"},
                {"key": "p90_us", "title": "p90 µs"}, {"key": "p99_us", "title": "p99 µs"},
                {"key": "p999_us", "title": "p99.9 µs"}, {"key": "max_us", "title": "max µs"}]},
            {"key": "socketio-figures", "structure": [
                {"key": "figure", "title": "Figure"}, {"key": "value", "title": "Value"}]},
        ]
        web_ui.template_args["extended_csv_files"] = [
            {"href": "./socketio/", "title": "Socket.IO live page: charts and the full report"}]
        web_ui.template_args.pop("extended_stats", None)

        from locust.argument_parser import default_args_dict, get_parser

        shown = form_guard.shown_options(get_parser(), default_args_dict())
        options = self.environment.parsed_options
        loopback_ui = form_guard.is_loopback_name(str(getattr(options, "web_host", "") or "0.0.0.0"))

        @app.before_request
        def refuse_what_the_ui_does_not_offer() -> Any:
            """Foreign requests, and start forms with fields or targets the UI does not offer, get a 4xx."""
            try:
                form_guard.check_origin(request.method, request.path, request.headers, loopback_ui=loopback_ui)
            except form_guard.FormRefused as exc:
                return jsonify({"success": False, "message": str(exc)}), 403
            if request.method != "POST" or not request.path.endswith("/swarm"):
                return None
            settings = settings_of(self.environment)

            def check_target(url: str) -> None:
                require_loopback(url, allow_remote=bool(settings and settings.i_own_this_host),
                                 owned=settings.owned_hosts if settings else ())

            try:
                form_guard.check_swarm_form(request.form.to_dict(flat=False), shown, check_target=check_target,
                                            results_root=self.root_option)
            except form_guard.FormRefused as exc:
                return jsonify({"success": False, "message": str(exc), "host": request.form.get("host")}), 400
            return None

        @app.after_request
        def add_socketio_stats(response: Any) -> Any:
            if not request.path.endswith("/stats/requests") or response.status_code != 200 or not response.is_json:
                return response
            try:
                body = response.get_json()
                body["extended_stats"] = locust_tab_rows(self.snapshot())
                response.set_data(json.dumps(body))
            except Exception:
                logger.exception("Socket.IO: could not add the tab's figures")
            return response

        index = app.view_functions.get("locust.index")
        if index is not None:
            def index_with_link(*args: Any, **kwargs: Any) -> Any:
                page = index(*args, **kwargs)
                return page.replace("</body>", PAGE_LINK + "</body>", 1) if isinstance(page, str) else page

            app.view_functions["locust.index"] = index_with_link


#: a link to the Socket.IO page, outside React's root so the UI leaves it alone
PAGE_LINK = (
    '<a id="socketio-page-link" href="./socketio/" target="_blank" rel="noopener" '
    'style="position:fixed;right:16px;bottom:48px;z-index:2000;padding:8px 14px;border-radius:18px;'
    'background:#15803d;color:#fff;font:500 14px/1.2 Roboto,Helvetica,Arial,sans-serif;text-decoration:none;'
    'box-shadow:0 2px 6px rgba(0,0,0,.3)">Socket.IO live &amp; report &#8599;</a>'
)


def _fmt(value: Any, digits: int = 1) -> Any:
    return None if value is None else round(float(value), digits)


def locust_tab_rows(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """``extended_stats`` for Locust's /stats/requests: one entry per extended tab."""
    figures = snapshot.get("figures") or {}
    timed = ("per_s", "p50_us", "p90_us", "p99_us", "p999_us", "max_us")
    events = [{"kind": e["kind"], "name": e["name"], "count": e["count"], "failed": e["failed"],
               **{k: _fmt(e[k]) for k in timed}} for e in figures.get("events", [])]
    rows: list[dict[str, Any]] = []

    def add(figure: str, value: Any) -> None:
        rows.append({"figure": figure, "value": "-" if value is None else str(value)})

    add("test folder", snapshot.get("cell") or ("no test started yet" if snapshot.get("recording")
                                                  else "not recording (no --results-dir)"))
    conn = figures.get("connections") or {}
    add("concurrent connections", conn.get("concurrent"))
    add("peak concurrent connections", conn.get("peak"))
    add("connects/s (last 5 s)", _fmt(conn.get("connects_per_s")))
    add("disconnects/s (last 5 s)", _fmt(conn.get("disconnects_per_s")))
    add("connect failures", conn.get("connect_failures"))
    fanout = figures.get("fanout")
    if fanout:
        add("fan-out deliveries expected (settled)", fanout["settled_expected"])
        add("fan-out deliveries received (settled)", fanout["settled_received"])
        ratio = fanout.get("loss_ratio")
        add("fan-out lost", f"{fanout['lost']} ({ratio * 100:.3f} %)" if ratio is not None else fanout["lost"])
    server = figures.get("server")
    if server:
        add("target CPU % (last 2.5 s)", server.get("cpu_pct_now"))
        add("target RSS MiB (now / peak)", f"{server['rss_mib_now']} / {server['rss_mib_peak']}")
    else:
        add("target CPU and RSS", "only when python -m sioharness.bench.ui started the target")
    add("samples read (recording processes)", f"{figures.get('samples', 0)} ({figures.get('recorders', 0)})")
    report = snapshot.get("report") or {}
    add("full report", report.get("path") or "Socket.IO page (link at the bottom right): Write full report")
    return [{"key": "socketio", "data": events}, {"key": "socketio-figures", "data": rows}]


# --- login -----------------------------------------------------------------------


def configure_login(web_ui: WebUI, credentials: tuple[str, str], base: str = "") -> None:
    """One user for ``--web-login``: Locust's login form for browsers, HTTP Basic for scripts."""
    from flask import Blueprint, jsonify, redirect, request, session, url_for
    from flask_login import UserMixin, login_user

    user, password = credentials

    class _User(UserMixin):
        def __init__(self, name: str) -> None:
            self.id = name

    def valid(name: str | None, secret: str | None) -> bool:
        # compare_digest on both, always: no early exit that times the user name
        ok_user = hmac.compare_digest((name or "").encode(), user.encode())
        ok_pass = hmac.compare_digest((secret or "").encode(), password.encode())
        return ok_user and ok_pass

    app = web_ui.app
    assert app is not None  # WebUI creates its Flask app in __init__
    app.secret_key = secrets.token_hex(32)  # sessions last as long as this process
    manager = web_ui.login_manager
    manager.user_loader(lambda name: _User(name) if hmac.compare_digest(name.encode(), user.encode()) else None)

    @manager.request_loader
    def basic_auth(req: Any) -> Any:
        header = req.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            name, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return _User(name) if valid(name, secret) else None

    @manager.unauthorized_handler
    def unauthorized() -> Any:
        if "/socketio/api/" in request.path or request.path.endswith("/stats/requests"):
            response = jsonify({"error": "login required (HTTP Basic or the login page)"})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Basic realm="Locust"'
            return response
        return redirect(url_for("locust.login"))

    bp = Blueprint("socketio_login", __name__, url_prefix=base or None)

    @bp.route("/socketio/login", methods=["POST"])
    def login_submit() -> Any:
        if valid(request.form.get("username"), request.form.get("password")):
            login_user(_User(user))
            session["auth_error"] = None
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Invalid username or password"
        return redirect(url_for("locust.login"))

    app.register_blueprint(bp)
    web_ui.auth_args = {"username_password_callback": f"{base}/socketio/login"}


# --- registration ----------------------------------------------------------------


#: the attribute of Locust's Environment that holds the panel
_PANEL_ATTR = "loadtests_webui"


def set_panel(environment: Environment, panel: SocketIOPanel) -> None:
    setattr(environment, _PANEL_ATTR, panel)


def on_init(environment: Environment, **_: Any) -> None:
    """Locust ``init`` listener: the panel where the UI runs, folder-following where samples are recorded."""
    if getattr(environment, "web_ui", None) is not None:
        try:
            set_panel(environment, SocketIOPanel(environment))
        except WebAuthError as exc:
            sys.stderr.write(f"locust: error: {exc}\n")
            sys.exit(2)
    worker = _worker(environment)
    if worker is not None:
        worker.register_message(FLUSH_MESSAGE, on_flush_request, concurrent=True)
    # After the panel's test_start listener: in a standalone run it picks the folder first.
    environment.events.test_start.add_listener(follow_results_dir)
