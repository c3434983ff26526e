"""Serve a user's Flask-SocketIO app, unchanged, in a chosen async mode and server.

Run as a script by the runner (``--app PATH_OR_MODULE:OBJECT``), in the app's
own interpreter (``--app-python``)::

    python sioharness/bench/app_launcher.py --app examples/classic/app.py:socketio \\
        --port 5002 --mode gevent --server dev

It needs only the standard library and what the app imports. In order:

1. the mode's monkey patching (dev server), before anything imports socket;
2. ``sys.path``: the app's folder (or, for a module name, the working
   folder) first, and never this file's folder, so a project's own ``core``
   or ``profile`` module is the one it imports;
3. Flask-SocketIO's ``SocketIO.init_app`` is wrapped so that every
   ``SocketIO`` takes the cell's async mode, whatever the app passes;
4. the app is imported under its own module name: its
   ``if __name__ == "__main__"`` block does not run;
5. the app is served on the given loopback port: ``dev`` as
   ``socketio.run`` serves it, ``gunicorn`` with one worker of the mode's
   class (the app is imported in the worker, after gunicorn's patching).

An ASGI python-socketio app (``socketio.ASGIApp``, or its
``socketio.AsyncServer``) runs with ``--mode asyncio --server uvicorn``:
no patching, served by uvicorn.

``--nodelay`` sets TCP_NODELAY on every connection (the WSGI servers leave
Nagle's algorithm on), with the reference target's middleware, loaded from
its file. With ``--info FILE`` it writes what it found as JSON: the async
mode the app runs in, whether its Socket.IO and Engine.IO loggers log every
packet, and whether TCP_NODELAY was set. Nothing here imports the harness's
packages, which would shadow a project's own ``core`` or ``reports``.
"""
from __future__ import annotations

import sys


def _patch_first() -> None:
    """Run as a script for the dev server: patch before any other import can import socket or threading."""
    argv = sys.argv[1:]
    value = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag in ("--mode", "--server")}
    for arg in argv:
        flag, sep, rest = arg.partition("=")
        if sep and flag in ("--mode", "--server"):
            value[flag] = rest
    if value.get("--server", "dev") == "dev":
        patch_for(value.get("--mode", ""))


def patch_for(mode: str) -> None:
    """The mode's monkey patching; first, before the app imports socket or threading."""
    if mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    elif mode == "gevent":
        from gevent import monkey

        monkey.patch_all()


if __name__ == "__main__":
    _patch_first()

import argparse  # noqa: E402 (after the patching)
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

MODES = ("threading", "eventlet", "gevent", "asyncio")
SERVERS = ("dev", "gunicorn", "uvicorn")
GUNICORN_WORKER_CLASS = {"threading": "gthread", "eventlet": "eventlet", "gevent": "gevent"}
#: exit status for an app spec that cannot be loaded (the runner shows the log's last lines)
#: where the runner asks for GC pauses (sioharness/core/gc_pauses.py reads the same variable)
GC_LOG_ENV = "SIO_GC_LOG"
#: where sioharness.bench.record asks for a trace of the app's sessions (trace_recorder.py reads the same variable)
RECORD_ENV = "SIO_RECORD"
EXIT_BAD_APP = 3


class AppSpecError(Exception):
    """An ``--app`` that cannot be loaded; the message says why."""


def split_spec(spec: str) -> tuple[str, str | None]:
    """(``module or path``, ``object`` or None) of ``PATH_OR_MODULE[:OBJECT]``."""
    where, sep, obj = spec.rpartition(":")
    if not sep or not where or "/" in obj or obj.endswith(".py"):
        return spec, None  # no object named (a Windows-free world: ':' only separates)
    return where, obj or None


def force_async_mode(mode: str) -> None:
    """Make every Flask-SocketIO ``SocketIO`` take ``mode``, whatever the app passes."""
    from flask_socketio import SocketIO

    original = SocketIO.init_app
    if getattr(original, "_forced_mode", None) == mode:
        return

    def init_app(self: Any, app: Any, **kwargs: Any) -> Any:
        kwargs["async_mode"] = mode
        return original(self, app, **kwargs)

    init_app._forced_mode = mode  # type: ignore[attr-defined]
    SocketIO.init_app = init_app


def import_app_module(where: str) -> Any:
    """Import the app's module from a file path or a dotted module name, its folder first on sys.path."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(here)]
    if where.endswith(".py") or os.sep in where:
        path = Path(where).resolve()
        if not path.is_file():
            raise AppSpecError(f"--app {where}: no such file")
        sys.path.insert(0, str(path.parent))
        name = path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise AppSpecError(f"--app {where}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # the app may import itself by name
        spec.loader.exec_module(module)
        return module
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name and where.startswith(exc.name):
            raise AppSpecError(f"--app {where}: no module {exc.name!r} (from {os.getcwd()})") from None
        raise


def find_flask_and_socketio(module: Any, obj_name: str | None) -> tuple[Any, Any]:
    """(the Flask app, its SocketIO) named by ``obj_name`` in ``module``, or found there."""
    from flask import Flask
    from flask_socketio import SocketIO

    if obj_name is None:
        candidates = [v for v in vars(module).values() if isinstance(v, (SocketIO, Flask))]
        socketios = [v for v in candidates if isinstance(v, SocketIO)]
        found = socketios or candidates
        if not found:
            raise AppSpecError(f"--app {module.__name__}: no SocketIO or Flask object at its top level; "
                               "name it, e.g. app.py:socketio")
        obj = found[0]
    else:
        call = obj_name.endswith("()")
        obj = module
        for part in obj_name.removesuffix("()").split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                name = obj_name.removesuffix("()")
                raise AppSpecError(f"--app: module {module.__name__!r} has no attribute {name!r}") from None
        if call:
            obj = obj()
    if isinstance(obj, Flask):
        socketio = obj.extensions.get("socketio")
        if socketio is None:
            raise AppSpecError(f"--app: the Flask app {obj.name!r} has no SocketIO (no SocketIO(app) ran)")
        return obj, socketio
    if isinstance(obj, SocketIO):
        for value in vars(module).values():
            if isinstance(value, Flask) and value.extensions.get("socketio") is obj:
                return value, obj
        raise AppSpecError(f"--app: no Flask app at the top level of {module.__name__} uses this SocketIO; "
                           "name the Flask app instead, e.g. app.py:app")
    raise AppSpecError(f"--app: {obj_name} is a {type(obj).__name__}, not a Flask app or a Flask-SocketIO SocketIO")


def load(spec: str, mode: str, nodelay: bool = False) -> tuple[Any, Any]:
    """Import the app named by ``spec`` with ``mode`` forced; (Flask app, SocketIO).

    Runs in the process that serves (a gunicorn worker, not its master), so
    the GC pauses it records (``$SIO_GC_LOG``, set by the runner) are the app's.
    """
    where, obj_name = split_spec(spec)
    force_async_mode(mode)
    if os.environ.get(GC_LOG_ENV):
        _harness_module("sioharness/core/gc_pauses.py", "_sio_harness_gc_pauses").record_gc_pauses()
    if os.environ.get(RECORD_ENV):  # python -m sioharness.bench.record: every session into a trace
        _harness_module("sioharness/bench/trace_recorder.py", "_sio_harness_trace").install_from_env(spec)
    module = import_app_module(where)
    app, socketio = find_flask_and_socketio(module, obj_name)
    if nodelay:
        app.wsgi_app = _harness_module("target_app/nodelay.py", "_sio_harness_nodelay").NoDelayMiddleware(app.wsgi_app)
    return app, socketio


def _harness_module(relative: str, name: str) -> Any:
    """A stdlib-only module of the harness, loaded from its file under a private name (the app may have its own
    ``core`` or ``target_app``)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[2] / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(module)
    return module


def describe(spec: str, mode: str, server: str, socketio: Any, nodelay: bool) -> dict[str, Any]:
    """What run.json keeps about the app as it ran."""
    sio = socketio.server
    return {
        "app": spec,
        "async_mode": getattr(sio, "async_mode", mode),
        "server": server,
        # Logging every packet costs a large share of a server's CPU: the report says so.
        "socketio_logs_packets": bool(sio.logger.isEnabledFor(logging.INFO)),
        "engineio_logs_packets": bool(sio.eio.logger.isEnabledFor(logging.INFO)),
        "tcp_nodelay": nodelay,
    }


def write_info(path: str | None, info: dict[str, Any]) -> None:
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(info, out)
        os.replace(tmp, path)


def serve_dev(args: argparse.Namespace) -> None:
    app, socketio = load(args.app, args.mode, args.nodelay)
    write_info(args.info, describe(args.app, args.mode, "dev", socketio, args.nodelay))
    print(f"serving {args.app} ({socketio.server.async_mode}, dev server) on {args.host}:{args.port}", flush=True)
    socketio.run(app, host=args.host, port=args.port, allow_unsafe_werkzeug=True, use_reloader=False, debug=False)


def find_asgi_app(module: Any, obj_name: str | None) -> tuple[Any, Any]:
    """(the ASGI app to serve, its socketio.AsyncServer) named by ``obj_name`` in ``module``, or found there."""
    import socketio

    def server_of(obj: Any) -> Any:
        if isinstance(obj, socketio.AsyncServer):
            return obj
        if isinstance(obj, socketio.ASGIApp):
            return obj.engineio_server
        return None

    if obj_name is None:
        found = [v for v in vars(module).values() if server_of(v) is not None]
        apps = [v for v in found if isinstance(v, socketio.ASGIApp)]
        if not found:
            raise AppSpecError(f"--app {module.__name__}: no socketio.ASGIApp or AsyncServer at its top level; "
                               "name it, e.g. app.py:app")
        obj = (apps or found)[0]
    else:
        obj = module
        for part in obj_name.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise AppSpecError(f"--app: module {module.__name__!r} has no attribute {obj_name!r}") from None
    sio = server_of(obj)
    if sio is None:
        raise AppSpecError(f"--app: {obj_name} is a {type(obj).__name__}, not a socketio.ASGIApp or AsyncServer "
                           "(--server uvicorn serves ASGI python-socketio apps)")
    return (obj if isinstance(obj, socketio.ASGIApp) else socketio.ASGIApp(sio)), sio


def serve_uvicorn(args: argparse.Namespace) -> None:
    import uvicorn

    if args.mode != "asyncio":
        raise AppSpecError(f"--server uvicorn runs an ASGI app in asyncio mode, not {args.mode}")
    if os.environ.get(GC_LOG_ENV):
        _harness_module("sioharness/core/gc_pauses.py", "_sio_harness_gc_pauses").record_gc_pauses()
    if os.environ.get(RECORD_ENV):
        _harness_module("sioharness/bench/trace_recorder.py", "_sio_harness_trace").install_from_env(args.app)
    where, obj_name = split_spec(args.app)
    app, sio = find_asgi_app(import_app_module(where), obj_name)
    write_info(args.info, {
        "app": args.app, "async_mode": "asgi", "server": "uvicorn",
        "socketio_logs_packets": bool(sio.logger.isEnabledFor(logging.INFO)),
        "engineio_logs_packets": bool(sio.eio.logger.isEnabledFor(logging.INFO)),
        "tcp_nodelay": True,  # uvicorn sets it on every connection
    })
    print(f"serving {args.app} (asyncio, uvicorn) on {args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")


def serve_gunicorn(args: argparse.Namespace) -> None:
    from gunicorn.app.base import BaseApplication

    class Launcher(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", 1)  # Socket.IO sessions live in one process
            self.cfg.set("worker_class", GUNICORN_WORKER_CLASS[args.mode])
            self.cfg.set("graceful_timeout", 5)
            self.cfg.set("control_socket_disable", True)  # one fixed path for every gunicorn of the user
            if args.mode == "threading":
                self.cfg.set("threads", 100)
            else:
                self.cfg.set("worker_connections", 10000)

        def load(self) -> Any:  # in the worker, after its monkey patching
            app, socketio = load(args.app, args.mode, args.nodelay)
            write_info(args.info, describe(args.app, args.mode, "gunicorn", socketio, args.nodelay))
            return app

    print(f"serving {args.app} ({args.mode}, gunicorn) on {args.host}:{args.port}", flush=True)
    Launcher().run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", required=True, help="PATH_OR_MODULE[:OBJECT], e.g. app.py:socketio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--server", choices=SERVERS, default="dev")
    parser.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on every connection")
    parser.add_argument("--info", default=os.environ.get("SIO_APP_INFO"),
                        help="write what was found here, as JSON (default: $SIO_APP_INFO)")
    args = parser.parse_args(argv)
    try:
        if args.server == "uvicorn" or args.mode == "asyncio":
            if (args.server, args.mode) != ("uvicorn", "asyncio"):
                raise AppSpecError("an ASGI app runs with --mode asyncio --server uvicorn, and only so")
            serve_uvicorn(args)
        elif args.server == "gunicorn":
            serve_gunicorn(args)
        else:
            serve_dev(args)
    except AppSpecError as exc:
        print(f"app_launcher: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_APP
    return 0


if __name__ == "__main__":
    sys.exit(main())
