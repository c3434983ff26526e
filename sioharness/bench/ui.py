"""``python -m sioharness.bench.ui`` (``make ui``): a target and Locust's web UI, together.

Starts the reference target in the async mode you choose (or uses one that
already runs), samples its process tree, and starts Locust's web UI on
http://127.0.0.1:8089 with every scenario in the class picker and every
scenario parameter in the start form. Each test started from the UI records
into its own folder under the session's results folder; the Socket.IO page
(``/socketio/``) shows it live and writes its full report. Ctrl-C (or
SIGTERM) stops Locust, then the target, and leaves no process behind.

Exit status: 0 after a normal stop (Ctrl-C), 1 when Locust or the target
died on its own or could not start, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

from loadtests.wire.safety import ALLOW_FLAG, UnsafeTargetError, is_loopback_host, require_loopback
from sioharness.bench.locust_command import local_master_args
from sioharness.bench.locustfile_check import LocustfileError, check_user_classes
from sioharness.bench.own_app import (
    DEFAULT_MODE,
    CommandTarget,
    TargetCommandError,
    add_app_arguments,
    app_arguments_error,
    launch_command,
    targets_of_app_arguments,
)
from sioharness.bench.profile import TargetSpec
from sioharness.core.children import dies_with_parent
from sioharness.core.commands import command_line
from sioharness.core.files import write_json
from sioharness.core.load_params import BY_NAME
from sioharness.core.local_http import open_url
from sioharness.core.paths import (
    HARNESS_LOCUSTFILE,
    IMPORT_ROOT,
    RESULTS_ROOT,
    WEBUI_PLUGIN,
    python_path_with,
)
from sioharness.core.runinfo import machine, versions
from sioharness.core.sampler import TreeSampler, stats_connected
from sioharness.core.schema import APP_INFO_FILE
from sioharness.core.stats_client import NoStatsError, fetch_stats
from sioharness.webui.session import (
    SESSION_JSON,
    SESSION_LOCUST_LOG,
    SESSION_SERVER_CSV,
    SESSION_TARGET_LOG,
    close_running_cells,
    iso,
)
from target_app.process import TargetProcess, TargetStartError, launch_target
from target_app.settings import SERVERS_BY_MODE

DEFAULT_RESULTS = RESULTS_ROOT
ENV_WEB_AUTH = "LOADTEST_WEB_AUTH"  # read by sioharness.webui.panel in the Locust process
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: seconds Locust gets to start its web UI
WEB_READY_TIMEOUT_S = 60.0
#: seconds Locust gets to stop (users' on_stop, the workers' last flush) before it is killed
LOCUST_STOP_TIMEOUT_S = 40.0


class UsageError(ValueError):
    """Bad arguments; the message names the flag."""


@dataclass
class UiPlan:
    """What to start, checked: one target (or a URL), one web UI, one results folder."""

    run_dir: Path
    mode: str | None
    server: str | None
    target_url: str | None
    target_port: int | None
    target_args: list[str]
    web_host: str
    web_port: int
    processes: int | None
    users: int
    spawn_rate: float
    stop_timeout: float
    auth: str | None
    locust_args: list[str] = field(default_factory=list)
    #: the user owns a non-loopback --target-url (Locust's harness asks for the same consent)
    i_own_this_host: bool = False
    #: the user's locustfile (its classes fill the picker); None: the harness's scenarios
    locustfile: Path | None = None
    #: user classes offered in the picker; empty: every class of the locustfile
    user_classes: list[str] = field(default_factory=list)
    #: the user's own server, started from a command (``--target-cmd``)
    target_cmd: CommandTarget | None = None

    @property
    def tls(self) -> bool:
        """Locust serves HTTPS when given a certificate (``--locust-arg=--tls-cert=...``)."""
        return any(arg.startswith("--tls-cert") for arg in self.locust_args)

    @property
    def web_url(self) -> str:
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "") else self.web_host
        host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
        return f"{'https' if self.tls else 'http'}://{host}:{self.web_port}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sioharness.bench.ui", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Example: sioharness ui --target eventlet-dev --processes 2")
    target = parser.add_argument_group("target (started here unless --target-url)")
    target.add_argument("--target", metavar="MODE-SERVER",
                        help="mode and server in one, e.g. gevent-dev, threading-gunicorn, asgi-uvicorn")
    target.add_argument("--mode", choices=sorted(SERVERS_BY_MODE), help="async mode (default gevent)")
    target.add_argument("--server", help="server for the mode (default: the mode's first, e.g. dev)")
    target.add_argument("--port", type=int, help="target port on 127.0.0.1 (default: a free one)")
    target.add_argument("--target-arg", action="append", default=[], metavar="ARG",
                        help="extra flag for the target (repeatable), e.g. --target-arg=--auth-token=s3cret")
    target.add_argument("--target-url", help="use this running target instead of starting one (loopback only)")
    target.add_argument("--target-cmd", metavar="COMMAND",
                        help="start your own server: a command with {port} (and {mode} = --mode, {host})")
    own = parser.add_argument_group("your own app (docs/own-app.md)")
    add_app_arguments(own)
    own.add_argument("--locustfile", type=Path, help="offer the user classes of this locustfile in the picker")
    own.add_argument("--user", metavar="CLASS[,CLASS]", help="offer only these classes (default: all of them)")
    target.add_argument(ALLOW_FLAG, dest="i_own_this_host", action="store_true",
                        help="allow a --target-url that is not loopback: only for a host you own")
    web = parser.add_argument_group("web UI")
    web.add_argument("--web-host", default="127.0.0.1", help="interface of the web UI (default 127.0.0.1)")
    web.add_argument("--web-port", type=int, default=8089, help="port of the web UI (default 8089)")
    web.add_argument("--web-auth", metavar="USER:PASSWORD",
                     help=f"require a login (Locust's --web-login); also read from ${ENV_WEB_AUTH}. "
                          "Needed for a --web-host beyond loopback")
    users, spawn_rate = BY_NAME["users"].default, BY_NAME["spawn_rate"].default
    web.add_argument("--users", type=int, default=users, help=f"users prefilled in the start form (default {users})")
    web.add_argument("--spawn-rate", type=float, default=spawn_rate,
                     help=f"ramp-up prefilled in the form (default {spawn_rate:g}/s)")
    web.add_argument("--stop-timeout", type=float, default=5.0,
                     help="seconds users get to finish at a stop (Locust's --stop-timeout, default 5)")
    web.add_argument("--processes", type=int, metavar="N",
                     help="Locust worker processes (Locust's --processes; -1 = one per core)")
    web.add_argument("--locust-arg", action="append", default=[], metavar="ARG",
                     help="extra flag for Locust (repeatable), e.g. --locust-arg=--loglevel=DEBUG")
    parser.add_argument("--results", type=Path,
                        help="session folder; each test started in the UI gets a folder inside "
                             "(default results/ui-<date>-<time>)")
    return parser


def _port(value: int | None, flag: str) -> int | None:
    if value is not None and not 0 < value < 65536:
        raise UsageError(f"{flag} must be 1..65535, got {value}")
    return value


def resolve_plan(args: argparse.Namespace, *, now: dt.datetime | None = None,
                 environ: Mapping[str, str] | None = None) -> UiPlan:
    """Check the arguments and turn them into a plan; raises UsageError naming the flag."""
    environ = os.environ if environ is None else environ
    mode = server = None
    command = None
    if (problem := app_arguments_error(args)) is not None:
        raise UsageError(problem)
    if args.app:
        if args.target_url or args.target or args.server or args.target_arg:
            raise UsageError("--app serves your app; --target-url, --target, --server and --target-arg do not go "
                             "with it (--mode picks its async mode)")
        try:
            [command] = targets_of_app_arguments(args, [args.mode or "gevent"], one=True)
        except TargetCommandError as exc:
            raise UsageError(str(exc)) from None
        mode, server = command.mode, command.server
    elif args.target_cmd:
        if args.target_url or args.target or args.server or args.target_arg:
            raise UsageError("--target-cmd starts your server; --target-url, --target, --server and "
                             "--target-arg do not go with it")
        try:
            if "{mode}" in args.target_cmd and not args.mode:
                raise TargetCommandError("--target-cmd has {mode}: give --mode")
            command = CommandTarget(args.target_cmd, mode=args.mode or DEFAULT_MODE)
        except TargetCommandError as exc:
            raise UsageError(str(exc)) from None
        mode, server = command.mode, command.server
    elif args.target_url:
        started_flags = [f for f, v in (("--target", args.target), ("--mode", args.mode), ("--server", args.server),
                                        ("--port", args.port), ("--target-arg", args.target_arg)) if v]
        if started_flags:
            raise UsageError(f"--target-url uses a running target; {', '.join(started_flags)} would start one")
        try:
            require_loopback(args.target_url, allow_remote=args.i_own_this_host)
        except UnsafeTargetError as exc:
            raise UsageError(str(exc)) from None
    else:
        if args.target and (args.mode or args.server):
            raise UsageError("give --target MODE-SERVER or --mode/--server, not both")
        try:
            spec = TargetSpec.parse(args.target or f"{args.mode or 'gevent'}-{args.server or ''}".rstrip("-"))
        except ValueError as exc:
            raise UsageError(f"--target/--mode/--server: {exc}") from None
        mode, server = spec.mode, spec.server
    _port(args.port, "--port")
    _port(args.web_port, "--web-port")
    if args.processes is not None and not (args.processes == -1 or args.processes >= 1):
        raise UsageError(f"--processes must be >= 1 (or -1 = one per core), got {args.processes}")
    if args.users < 0 or not args.spawn_rate > 0 or args.stop_timeout < 0:
        raise UsageError("--users must be >= 0, --spawn-rate > 0 and --stop-timeout >= 0")
    auth = args.web_auth or environ.get(ENV_WEB_AUTH) or None
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise UsageError("--web-auth must look like USER:PASSWORD (both non-empty)")
    if not is_loopback_host(args.web_host) and auth is None:
        raise UsageError(f"--web-host {args.web_host} exposes the web UI (which starts load) beyond loopback: "
                         "add --web-auth USER:PASSWORD")
    for arg in args.locust_arg:
        if (owned := arg.split("=", 1)[0]) in LAUNCHER_OWNED:
            raise UsageError(f"--locust-arg={arg}: {owned} is set by sioharness.bench.ui itself "
                             f"({LAUNCHER_OWNED[owned]}), so it is checked")
    users = [name.strip() for name in (args.user or "").split(",") if name.strip()]
    locustfile = args.locustfile.resolve() if args.locustfile else None
    if locustfile is not None or users:
        try:
            check_user_classes(locustfile or HARNESS_LOCUSTFILE, users)
        except LocustfileError as exc:
            raise UsageError(str(exc)) from None
    run_dir = args.results or DEFAULT_RESULTS / f"ui-{(now or dt.datetime.now()):%Y%m%d-%H%M%S}"
    return UiPlan(run_dir=run_dir, mode=mode, server=server, target_url=args.target_url,
                  target_port=args.port, target_args=list(args.target_arg), web_host=args.web_host,
                  web_port=args.web_port, processes=args.processes, users=args.users,
                  spawn_rate=args.spawn_rate, stop_timeout=args.stop_timeout, auth=auth,
                  locust_args=list(args.locust_arg), i_own_this_host=bool(args.target_url and args.i_own_this_host),
                  locustfile=locustfile, user_classes=users, target_cmd=command)


#: Locust options the launcher sets and checks (a web UI beyond loopback needs a login; the master
#: stays on loopback): given again through --locust-arg, the last one would win unchecked.
LAUNCHER_OWNED = {
    "--web-host": "use --web-host", "--web-port": "use --web-port", "--web-login": "use --web-auth",
    "--web-auth": "use --web-auth", "--master-bind-host": "the master listens on loopback",
    "--master-bind-port": "a free port", "--master-port": "a free port", "--processes": "use --processes",
    "-f": "use --locustfile", "--locustfile": "use --locustfile", "-H": "use --target-url",
    "--host": "use --target-url", "--results-dir": "use --results",
}


def locust_argv(plan: UiPlan, target_url: str) -> list[str]:
    """The Locust command: web UI with the class picker, recording into the session folder."""
    # A user's locustfile gets the web UI extension as a second locustfile.
    locustfiles = f"{plan.locustfile},{WEBUI_PLUGIN}" if plan.locustfile else str(HARNESS_LOCUSTFILE)
    argv = [
        sys.executable, "-m", "locust", "-f", locustfiles, "--class-picker",
        "--web-host", plan.web_host, "--web-port", str(plan.web_port),
        "--host", target_url, "--results-dir", str(plan.run_dir),
        "--users", str(plan.users), "--spawn-rate", f"{plan.spawn_rate:g}",
        "--stop-timeout", f"{plan.stop_timeout:g}",
    ]
    if plan.processes:
        argv += local_master_args(plan.processes)
    if plan.auth:
        argv.append("--web-login")  # the credentials travel in the environment, not on the command line
    if plan.i_own_this_host:
        argv.append(ALLOW_FLAG)
    return argv + plan.locust_args + plan.user_classes


def probe_target(url: str) -> dict[str, Any] | None:
    """The target's /stats, or None when it has none; raises OSError when nothing answers."""
    try:
        return fetch_stats(url, timeout=5)
    except NoStatsError:
        return None  # something answers, just not our target's /stats


def wait_web_ui(url: str, locust: subprocess.Popen, timeout: float, *, workers: int = 0,
                auth: str | None = None) -> bool:
    """True once the web UI answers and ``workers`` worker processes have connected.

    A test started before every worker has connected runs on the ones that
    have, so the UI is announced only when all are there. False if Locust
    exits or time runs out.
    """
    deadline = time.monotonic() + timeout
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    # Our own UI on this machine: a self-signed certificate is fine for the readiness probe.
    context = ssl._create_unverified_context() if url.startswith("https:") else None

    def ready() -> bool:
        path = "/worker-count" if workers else "/"
        request = urllib.request.Request(url + path, headers=headers)
        with open_url(request, timeout=2, context=context) as response:
            if response.status != 200:
                return False
            return not workers or json.loads(response.read()).get("worker_count", 0) >= workers

    while time.monotonic() < deadline:
        if locust.poll() is not None:
            return False
        try:
            if ready():
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    return False


def stop_locust(locust: subprocess.Popen, timeout: float = LOCUST_STOP_TIMEOUT_S) -> int | None:
    """SIGTERM Locust's master (it stops the test, then its workers); SIGKILL its group if it hangs."""
    if locust.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            locust.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            locust.wait(timeout=timeout)
    # Whatever is left in the group we started (workers of a killed master) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(locust.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        locust.wait(timeout=5)
    return locust.returncode


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class UiSessionRunner:
    """Starts, watches and stops one UI session; :meth:`run` never leaves a process behind."""

    def __init__(self, plan: UiPlan, *, out: TextIO = sys.stdout, stop: threading.Event | None = None) -> None:
        self.plan = plan
        self.out = out
        self.stop = stop or threading.Event()
        self.target: TargetProcess | None = None
        self.sampler: TreeSampler | None = None
        self.locust: subprocess.Popen | None = None
        self.record: dict[str, Any] = {}

    def say(self, text: str) -> None:
        print(f"ui: {text}", file=self.out, flush=True)

    def _write_record(self, **changes: Any) -> None:
        self.record.update(changes)
        write_json(self.plan.run_dir / SESSION_JSON, self.record)

    def run(self) -> int:
        plan = self.plan
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        started_ns = time.time_ns()
        self.record = {
            "schema": 1, "run_id": plan.run_dir.name, "status": "running", "reason": None,
            "mode": plan.mode, "server": plan.server, "target_url": plan.target_url, "target_pid": None,
            "target_command": None, "web_url": plan.web_url, "processes": plan.processes,
            "web_login": bool(plan.auth), "command": None, "versions": versions(), "machine": machine(),
            "started_at": iso(started_ns), "started_ns": started_ns, "ended_at": None, "ended_ns": None,
        }
        status, reason, code = "ok", None, EXIT_OK
        try:
            status, reason, code = self._run()
        except BaseException as exc:  # KeyboardInterrupt included: clean up, then re-raise
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._shutdown(status, reason)
        return code

    def _run(self) -> tuple[str, str | None, int]:
        plan = self.plan
        self._write_record()
        if plan.target_url:
            try:
                stats = probe_target(plan.target_url)
            except OSError as exc:
                return self._fail(f"nothing answers at --target-url {plan.target_url} ({exc})")
            url = plan.target_url.rstrip("/")
            self._write_record(mode=str((stats or {}).get("async_mode") or "external"),
                               server=str((stats or {}).get("server") or "external"), target_url=url)
            self.say(f"target: {url} (already running; its CPU and RSS are not sampled)")
        else:
            assert plan.mode is not None and plan.server is not None  # resolve_plan sets both without --target-url
            try:
                if plan.target_cmd is not None:
                    self.target = launch_command(plan.target_cmd, log_path=plan.run_dir / SESSION_TARGET_LOG,
                                                 port=plan.target_port, app_info=plan.run_dir / APP_INFO_FILE)
                else:
                    self.target = launch_target(plan.mode, plan.server, port=plan.target_port,
                                                log_path=plan.run_dir / SESSION_TARGET_LOG,
                                                extra_args=plan.target_args)
            except TargetStartError as exc:
                return self._fail(f"the target did not start: {exc}")
            url = self.target.url
            self.sampler = TreeSampler(self.target.pid, plan.run_dir / SESSION_SERVER_CSV,
                                       connected=stats_connected(url)).start()
            self._write_record(target_url=url, target_pid=self.target.pid, target_command=self.target.argv)
            self.say(f"target: {plan.mode}-{plan.server} at {url} (pid {self.target.pid}), "
                     f"log {plan.run_dir / SESSION_TARGET_LOG}")

        argv = locust_argv(plan, url)
        env = os.environ | {"PYTHONPATH": python_path_with(IMPORT_ROOT),
                            "PYTHONUNBUFFERED": "1"}
        env.pop(ENV_WEB_AUTH, None)
        if plan.auth:
            env[ENV_WEB_AUTH] = plan.auth
        self._write_record(command=argv)
        with open(plan.run_dir / SESSION_LOCUST_LOG, "ab") as log:
            # Its own session: a Ctrl-C in the terminal reaches this script only, which stops
            # Locust before the target, so the last test's stop is recorded against a live target.
            self.locust = subprocess.Popen(dies_with_parent(argv), cwd=IMPORT_ROOT, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
        self._write_record(locust_pid=self.locust.pid)
        workers = (os.cpu_count() or 1) if plan.processes == -1 else (plan.processes or 0)
        if not wait_web_ui(plan.web_url, self.locust, WEB_READY_TIMEOUT_S, workers=workers, auth=plan.auth):
            waited = f" with {workers} workers connected" if workers else ""
            return self._fail(f"Locust's web UI did not come up at {plan.web_url}{waited} "
                              f"within {WEB_READY_TIMEOUT_S:.0f} s; "
                              f"{plan.run_dir / SESSION_LOCUST_LOG} ends with:\n"
                              f"{_tail(plan.run_dir / SESSION_LOCUST_LOG)}")
        with_workers = f" with {workers} worker processes" if workers else ""
        self.say(f"Locust web UI{with_workers}: {plan.web_url}/" + ("  (login required)" if plan.auth else ""))
        self.say(f"Socket.IO page (live figures, full report): {plan.web_url}/socketio/")
        self.say(f"each test you start records into {plan.run_dir}/<mode>-<server>--<scenario>--<HHMMSS>/")
        self.say("Ctrl-C stops Locust, then the target")
        return self._watch()

    def _fail(self, reason: str) -> tuple[str, str, int]:
        print(f"ui: error: {reason}", file=sys.stderr, flush=True)
        return "failed", reason, EXIT_FAILED

    def _watch(self) -> tuple[str, str | None, int]:
        locust = self.locust
        assert locust is not None  # _run started it
        while not self.stop.is_set():
            if locust.poll() is not None:
                return self._fail(f"Locust exited with code {locust.returncode}; see "
                                  f"{self.plan.run_dir / SESSION_LOCUST_LOG}")
            if self.target is not None and not self.target.alive():
                return self._fail(f"the target exited with code {self.target.process.returncode}; see "
                                  f"{self.plan.run_dir / SESSION_TARGET_LOG}")
            self.stop.wait(0.5)
        return "ok", None, EXIT_OK

    def _shutdown(self, status: str, reason: str | None) -> None:
        """Locust first (its test stop is recorded while the target still runs), then the target."""
        locust_code = target_code = None
        if self.locust is not None:
            self.say("stopping Locust")
            locust_code = stop_locust(self.locust)
        if self.sampler is not None:
            self.sampler.stop()
        if self.target is not None:
            self.say("stopping the target")
            target_code = self.target.stop()
        now = time.time_ns()
        closed = close_running_cells(self.plan.run_dir, now_ns=now,
                                     reason="the UI session ended before this test's stop was recorded")
        cells = sorted(p.name for p in self.plan.run_dir.iterdir() if p.is_dir() and (p / "run.json").is_file())
        self._write_record(status=status, reason=reason, ended_at=iso(now), ended_ns=now,
                           locust_exit_code=locust_code, target_exit_code=target_code, cells=cells)
        if closed:
            self.say(f"marked partial (still running at the end): {', '.join(closed)}")
        if cells:
            self.say(f"{len(cells)} test(s) recorded in {self.plan.run_dir}; report them all with:")
            self.say(f"  {command_line('report', str(self.plan.run_dir))}")
        else:
            self.say(f"no test was started; session files in {self.plan.run_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        plan = resolve_plan(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if plan.run_dir.exists() and any(plan.run_dir.iterdir()):
        print(f"{parser.prog}: error: {plan.run_dir} already holds results; choose another --results",
              file=sys.stderr)
        return EXIT_USAGE

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        again = stop.is_set()
        stop.set()
        with contextlib.suppress(OSError):  # after a SIGHUP the terminal may be gone
            state = " again: still stopping, please wait" if again else ": stopping"
            print(f"\nui: {signal.Signals(signum).name}{state}", file=sys.stderr)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return UiSessionRunner(plan, stop=stop).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
