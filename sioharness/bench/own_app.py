"""The user's own server as the system under test: started from a command, or sampled by PID.

``--target-cmd "python app.py --port {port} --async-mode {mode}"`` makes the
runner start the user's server for each cell, exactly as it starts the
reference target: a free loopback port, the log in ``target.log``, the
process tree sampled into ``server.csv``, stopped at the cell's end. The
command is split like a shell would split it (no shell runs it) and its
placeholders are filled in: ``{port}``, ``{host}`` (127.0.0.1) and
``{mode}`` (the cell's async mode); a leading ``python`` is the harness's
own interpreter. ``SIO_GC_LOG`` names the cell's ``gc.csv``, where
``sioharness.core.gc_pauses.record_gc_pauses()`` in the app writes its GC pauses. It is ready once its port accepts a
connection; a command that exits first, or never opens its port, fails the
cell with the last lines of its log.

``--app PATH_OR_MODULE:OBJECT`` is the same with a command the runner
writes: ``sioharness/bench/app_launcher.py`` imports the app unchanged (in the app's own
interpreter with ``--app-python``), forces the cell's async mode on its
``SocketIO`` and serves it with the dev server or gunicorn. It writes what
it found (the mode, whether the app logs every packet) to ``app.json`` in the
cell's folder (``sioharness.core.schema.APP_INFO_FILE``).

``--target-pid PID`` (with ``--target-url``) samples a server the user
started themselves; it is never signalled.
"""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import string
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from sioharness.core.children import dies_with_parent
from sioharness.core.gc_pauses import GC_LOG_ENV
from target_app.process import LOOPBACK, TargetProcess, TargetStartError, free_port, port_in_use

#: the placeholders a --target-cmd may use
PLACEHOLDERS: tuple[str, ...] = ("port", "host", "mode")
#: the mode of a command that has no {mode}: the app runs as it chooses
DEFAULT_MODE = "app"
READY_TIMEOUT_S = 30.0
#: the script that serves an --app; it imports nothing of the harness
APP_LAUNCHER = Path(__file__).resolve().with_name("app_launcher.py")
#: the async modes and servers an --app runs in: a Flask-SocketIO app in the WSGI modes (the default
#: modes), an ASGI python-socketio app in asyncio under uvicorn
APP_MODES: tuple[str, ...] = ("threading", "eventlet", "gevent")
ASGI_MODE, ASGI_SERVER = "asyncio", "uvicorn"
APP_SERVERS: tuple[str, ...] = ("dev", "gunicorn", ASGI_SERVER)
#: names the file (sioharness.core.schema.APP_INFO_FILE, in the cell's folder) where the launcher describes the app
APP_INFO_ENV = "SIO_APP_INFO"


class TargetCommandError(ValueError):
    """A --target-cmd that cannot be used; the message says why."""


@dataclass(frozen=True)
class CommandTarget:
    """The user's server, started from a command for each cell (``--target-cmd``)."""

    command: str
    mode: str = DEFAULT_MODE
    #: the server part of the cell name (``--app-name``)
    server: str = "app"
    instances: int = 1
    message_queue: bool = False
    #: seconds the server has to open its port
    ready_timeout_s: float = READY_TIMEOUT_S
    #: the folder the command runs in, first on its PYTHONPATH (an A/B side's checkout); None: here
    cwd: Path | None = None
    #: an --app launcher: ready once it has described the app (gunicorn binds before its worker loads it)
    describes_app: bool = False

    def __post_init__(self) -> None:
        check_command(self.command)
        if not self.ready_timeout_s > 0:
            raise TargetCommandError(f"--target-timeout must be > 0 seconds, got {self.ready_timeout_s}")

    @property
    def label(self) -> str:
        """``gevent-app`` with ``{mode}``; ``app`` for a command that runs in one way only."""
        return self.server if self.mode == DEFAULT_MODE else f"{self.mode}-{self.server}"

    def argv(self, *, port: int, host: str = LOOPBACK) -> list[str]:
        """The command with its placeholders filled in, split into arguments."""
        values = {"port": str(port), "host": host, "mode": self.mode}
        argv = [arg.format_map(values) for arg in shlex.split(self.command)]
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable  # the harness's interpreter, with its pinned stack
        return argv


def app_targets(spec: str, *, modes: Sequence[str] | None = None, servers: Sequence[str] | None = None,
                app_python: str | None = None, app_name: str = "app", nodelay: bool = False,
                ready_timeout_s: float = READY_TIMEOUT_S) -> tuple[CommandTarget, ...]:
    """One target per server and async mode for ``--app`` (default: the dev server in every mode).

    ``nodelay`` sets TCP_NODELAY on the app's connections (``--app-nodelay``).

    TargetCommandError for a spec, mode, server or interpreter that cannot be used.
    """
    where = check_app_spec(spec)
    servers = list(servers or ("dev",))
    modes = list(modes or ([ASGI_MODE] if servers == [ASGI_SERVER] else APP_MODES))
    for kind, chosen, known in (("mode", modes, (*APP_MODES, ASGI_MODE)), ("server", servers, APP_SERVERS)):
        unknown = [value for value in chosen if value not in known]
        if unknown:
            raise TargetCommandError(f"--app: unknown {kind} {unknown[0]!r} (known: {', '.join(known)})")
        if len(set(chosen)) != len(chosen):
            raise TargetCommandError(f"--app: a {kind} is listed twice: {', '.join(chosen)}")
    if (ASGI_MODE in modes or ASGI_SERVER in servers) and (modes != [ASGI_MODE] or servers != [ASGI_SERVER]):
        raise TargetCommandError(f"--app: an ASGI app runs in mode {ASGI_MODE} under {ASGI_SERVER} only, and a "
                                 "Flask-SocketIO app never does: give --modes asyncio --app-server uvicorn alone")
    python = "python" if app_python is None else _check_python(app_python)
    targets: list[CommandTarget] = []
    for server in servers:
        argv = [python, str(APP_LAUNCHER), "--app", where, "--port", "{port}", "--mode", "{mode}",
                "--server", server] + (["--nodelay"] if nodelay else [])
        command = shlex.join(arg if arg in ("{port}", "{mode}") else _escape_braces(arg) for arg in argv)
        label = app_name if server == "dev" else f"{app_name}-{server}"
        targets.extend(CommandTarget(command, mode=mode, server=label, ready_timeout_s=ready_timeout_s,
                                     describes_app=True) for mode in modes)
    return tuple(targets)


def add_app_arguments(group: Any) -> None:
    """The ``--app`` options every runner takes (``sioharness bench``, ``ui``, ``capacity``, ``ab``)."""
    group.add_argument("--app", metavar="PATH_OR_MODULE:OBJECT",
                       help="serve your Flask-SocketIO app unchanged, e.g. app.py:socketio (the async mode is "
                            "forced on it; docs/own-app.md)")
    group.add_argument("--app-server", metavar="SERVER[,SERVER]",
                       help="with --app: dev (socketio.run, the default) and/or gunicorn; uvicorn for an ASGI "
                            "python-socketio app (with --modes asyncio)")
    group.add_argument("--app-python", metavar="PYTHON",
                       help="with --app: the app's own interpreter (its venv's bin/python), for its dependencies")
    group.add_argument("--app-nodelay", action="store_true",
                       help="with --app: set TCP_NODELAY on its connections (the WSGI servers leave Nagle on)")


def app_arguments_error(args: Any) -> str | None:
    """Why the ``--app`` options given do not go together, or None."""
    if (args.app_server or args.app_python or args.app_nodelay) and not args.app:
        return "--app-server, --app-python and --app-nodelay go with --app"
    if args.app and getattr(args, "target_cmd", None):
        return "--app and --target-cmd exclude each other: the runner serves your app, or runs your command"
    return None


def targets_of_app_arguments(args: Any, modes: Sequence[str] | None, *, spec: str | None = None,
                             one: bool = False) -> tuple[CommandTarget, ...]:
    """The targets the ``--app`` options name (``spec`` replaces ``--app``; ``one``: a single server)."""
    servers = [s.strip() for s in (args.app_server or "").split(",") if s.strip()] or None
    if one and servers and len(servers) > 1:
        raise TargetCommandError(f"--app-server takes one server here, got {args.app_server}")
    return app_targets(spec or args.app, modes=modes, servers=servers, app_python=args.app_python,
                       app_name=getattr(args, "app_name", "app"), nodelay=args.app_nodelay,
                       ready_timeout_s=getattr(args, "target_timeout", READY_TIMEOUT_S))


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def check_app_spec(spec: str) -> str:
    """The spec with a file path made absolute; TargetCommandError when its file is missing or it is malformed."""
    if not spec or not spec.strip() or "\0" in spec:
        raise TargetCommandError("--app is empty: give PATH_OR_MODULE[:OBJECT], e.g. app.py:socketio")
    where, sep, obj = spec.rpartition(":")
    if not sep:
        where, obj = spec, ""
    if sep and not where:
        raise TargetCommandError(f"--app {spec!r}: name the module or file before the ':'")
    if obj and not all(part.isidentifier() for part in obj.removesuffix("()").split(".")):
        raise TargetCommandError(f"--app {spec!r}: {obj!r} is not an attribute name (e.g. socketio, app, "
                                 "create_app())")
    if where.endswith(".py") or "/" in where:
        path = Path(where).expanduser()
        if not path.is_file():
            raise TargetCommandError(f"--app {spec!r}: no such file {path}")
        where = str(path.resolve())
    elif not all(part.isidentifier() for part in where.split(".")):
        raise TargetCommandError(f"--app {spec!r}: {where!r} is neither a .py file nor a module name")
    return f"{where}:{obj}" if obj else where


def _check_python(app_python: str) -> str:
    """``--app-python``: an executable interpreter (a venv's bin/python, say), as an absolute path."""
    path = Path(app_python).expanduser()
    if "/" not in app_python:
        found = shutil.which(app_python)
        if found is None:
            raise TargetCommandError(f"--app-python {app_python!r}: not found on PATH")
        path = Path(found)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise TargetCommandError(f"--app-python {app_python!r}: not an executable file")
    return str(path.absolute())  # a venv's python is a symlink that must stay one


def check_command(command: str) -> None:
    """TargetCommandError for an empty command, bad quoting, or an unknown placeholder."""
    if not command.strip():
        raise TargetCommandError("--target-cmd is empty")
    try:
        args = shlex.split(command)
    except ValueError as exc:
        raise TargetCommandError(f"--target-cmd {command!r}: {exc}") from None
    for arg in args:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(arg) if name is not None}
        except ValueError as exc:
            raise TargetCommandError(f"--target-cmd argument {arg!r}: {exc} (write {{{{ and }}}} for braces)") \
                from None
        unknown = sorted(names - set(PLACEHOLDERS))
        if unknown:
            raise TargetCommandError(f"--target-cmd: unknown placeholder {{{unknown[0]}}} "
                                     f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
    if "{port}" not in command:
        raise TargetCommandError("--target-cmd must take its port from {port}, e.g. "
                                 "\"python app.py --port {port}\": the runner picks a free one per cell")


def wait_for_port(target: TargetProcess, timeout: float, ready_file: Path | None = None,
                  who: str = "--target-cmd") -> None:
    """Return once ``target`` accepts a TCP connection (and ``ready_file`` exists); TargetStartError otherwise.

    The error carries the last lines of the target's log.
    """
    deadline = time.monotonic() + timeout
    what = f"port {target.port}"
    described, describe = (f" and described the app in {ready_file.name}", f" and describe the app in "
                           f"{ready_file.name}") if ready_file else ("", "")
    while time.monotonic() < deadline:
        if not target.alive():
            raise TargetStartError(f"{who} exited with code {target.process.returncode} before it opened "
                                   f"{what}{described}. {_log_tail(target)}")
        try:
            with socket.create_connection((target.host, target.port), timeout=0.5):
                if ready_file is None or ready_file.exists():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TargetStartError(f"{who} did not open {what}{describe} within {timeout:.0f} s. {_log_tail(target)}")


def _log_tail(target: TargetProcess) -> str:
    tail = target.log_tail().strip()
    return f"Log tail:\n{tail}" if tail else f"Its log ({target.log_path}) is empty."


def launch_command(spec: CommandTarget, *, log_path: Path, cpu_affinity: Sequence[int] | None = None,
                   port: int | None = None, gc_log: Path | None = None,
                   app_info: Path | None = None, wrapper: Sequence[str] = (),
                   extra_env: Mapping[str, str] | None = None) -> TargetProcess:
    """Start the user's server on ``port`` (default: a free loopback one) and wait for it; the caller stops it.

    ``gc_log`` goes to the app as ``$SIO_GC_LOG`` (``record_gc_pauses()`` writes there), ``app_info``
    as ``$SIO_APP_INFO`` (where the ``--app`` launcher describes the app). ``wrapper`` runs the
    command (valgrind, for the instruction count: it keeps the process's pid), ``extra_env`` adds to
    its environment.
    """
    if port and port_in_use(port, LOOPBACK):  # readiness would find the other server and call this one up
        raise TargetStartError(f"port {port} on {LOOPBACK} is already in use: stop what listens there, or choose "
                               "another port")
    port = port or free_port(LOOPBACK)
    argv = [*wrapper, *spec.argv(port=port)]
    if app_info is not None:
        app_info.unlink(missing_ok=True)  # a stale one must not pass for this start's
    if cpu_affinity:
        argv = ["taskset", "--cpu-list", ",".join(map(str, cpu_affinity)), *argv]
    env = os.environ | {"PYTHONUNBUFFERED": "1"} | dict(extra_env or {})
    if gc_log is not None:
        env[GC_LOG_ENV] = str(gc_log.resolve())  # the app may run in another folder
    if app_info is not None:
        env[APP_INFO_ENV] = str(app_info.resolve())
    if spec.cwd is not None:  # the checkout's own code, not the harness's
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(spec.cwd), env.get("PYTHONPATH")]))
    with open(log_path, "ab") as log:
        try:
            process = subprocess.Popen(dies_with_parent(argv), cwd=spec.cwd, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise TargetStartError(f"--target-cmd could not start {argv[0]!r}: {exc.strerror or exc}") from None
    target = TargetProcess(process=process, host=LOOPBACK, port=port, log_path=log_path, mode=spec.mode,
                           server=spec.server, argv=argv)
    try:
        if spec.describes_app:
            wait_for_port(target, spec.ready_timeout_s, app_info, who="--app")
        else:
            wait_for_port(target, spec.ready_timeout_s)
    except BaseException:
        target.stop()
        raise
    return target


def check_target_pid(pid: int) -> int:
    """``pid`` when a process with it exists here; ValueError otherwise."""
    if pid <= 0 or not psutil.pid_exists(pid):
        raise ValueError(f"--target-pid {pid}: no such process on this machine")
    return pid
