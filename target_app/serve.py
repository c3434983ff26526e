"""Serve the target under the server its settings name.

``dev`` is the embedded server ``socketio.run`` would pick for the mode
(Werkzeug, eventlet.wsgi or gevent's pywsgi), configured here directly so
the listen backlog and connection cap are ours to set. ``gunicorn`` replaces
this process with one gunicorn master and one worker of the matching class,
as Flask-SocketIO's deployment docs describe. ``uvicorn`` serves the asyncio
baseline.
"""
from __future__ import annotations

import logging
import os
import socket
import sys

from sioharness.core import redact

from . import quiet_errors
from .admission import CONTROL_HEADROOM
from .gc_setting import configure_gc
from .settings import TargetSettings

# Deep enough for a burst of churning clients; the kernel caps it at somaxconn.
LISTEN_BACKLOG = 2048

GUNICORN_WORKER_CLASS = {"threading": "gthread", "eventlet": "eventlet", "gevent": "gevent"}


def serve(settings: TargetSettings) -> None:
    """Run until the process is signalled."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Debug logs hold every packet, the CONNECT auth payload too: keep its secrets out.
    redact.install(*redact.PACKET_LOGGERS)
    quiet_errors.install()
    quiet_errors.install_task_hooks(settings.async_mode)
    if settings.server == "gunicorn":
        _exec_gunicorn(settings)
    elif settings.server == "uvicorn":
        _serve_uvicorn(settings)
    else:
        _DEV_SERVERS[settings.async_mode](settings)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _check_bindable(host: str, port: int) -> None:
    """OSError unless ``host`` resolves and ``port`` is free on it."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _serve_threading(settings: TargetSettings) -> None:
    from .app import create_app

    # Werkzeug reports a taken port or an unknown host itself, over several lines
    # and with exit status 1: find out first, so the error is ours and one line.
    _check_bindable(settings.host, settings.port)
    app = create_app(settings)
    configure_gc(settings.gc, settings.gc_log)  # once the app is built: --gc freeze keeps it out of collections
    socketio = app.extensions["socketio"]
    # Werkzeug, as socketio.run() runs it; a load test runs it without a TTY.
    socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True,
                 log_output=settings.log_level == "debug", use_reloader=False)


def _serve_eventlet(settings: TargetSettings) -> None:
    import eventlet
    import eventlet.wsgi

    from .app import create_app

    app = create_app(settings)
    configure_gc(settings.gc, settings.gc_log)  # once the app is built: --gc freeze keeps it out of collections
    listener = eventlet.listen((settings.host, settings.port), family=_family(settings.host),
                               backlog=LISTEN_BACKLOG)
    # max_size: eventlet caps simultaneous connections at 1024 by default.
    eventlet.wsgi.server(listener, app, max_size=settings.max_connections + CONTROL_HEADROOM,
                         log_output=settings.log_level == "debug")


def _serve_gevent(settings: TargetSettings) -> None:
    from gevent import pywsgi
    from gevent.pool import Pool

    from .app import create_app

    app = create_app(settings)
    configure_gc(settings.gc, settings.gc_log)  # once the app is built: --gc freeze keeps it out of collections
    server = pywsgi.WSGIServer(
        (settings.host, settings.port), app,
        spawn=Pool(settings.max_connections + CONTROL_HEADROOM),
        backlog=LISTEN_BACKLOG,
        # The access log costs CPU per request; errors still go to stderr.
        log="default" if settings.log_level == "debug" else None,
    )
    server.serve_forever()


def _serve_uvicorn(settings: TargetSettings) -> None:
    import uvicorn

    from .asgi_app import create_asgi_app

    app = create_asgi_app(settings)
    configure_gc(settings.gc, settings.gc_log)
    uvicorn.run(
        app, host=settings.host, port=settings.port,
        ws="websockets-sansio", lifespan="off", timeout_graceful_shutdown=2, backlog=LISTEN_BACKLOG,
        limit_concurrency=settings.max_connections + CONTROL_HEADROOM,
        log_level=settings.log_level, access_log=settings.log_level == "debug",
    )


def gunicorn_argv(settings: TargetSettings) -> list[str]:
    """The gunicorn command for these settings (one worker, as Socket.IO needs)."""
    bind = f"[{settings.host}]:{settings.port}" if ":" in settings.host else f"{settings.host}:{settings.port}"
    argv = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", GUNICORN_WORKER_CLASS[settings.async_mode],
        "--workers", "1",
        "--bind", bind,
        "--backlog", str(LISTEN_BACKLOG),
        "--log-level", settings.log_level,
        "--graceful-timeout", "5",
        # Else every gunicorn of the user shares one control socket in $XDG_RUNTIME_DIR or ~/.gunicorn.
        "--no-control-socket",
    ]
    if settings.async_mode == "threading":
        argv += ["--threads", str(settings.threads)]
    else:
        argv += ["--worker-connections", str(settings.max_connections + CONTROL_HEADROOM)]
    if settings.log_level == "debug":
        argv += ["--access-logfile", "-"]
    return argv + ["target_app.wsgi:app"]


def _exec_gunicorn(settings: TargetSettings) -> None:
    # The worker rebuilds the settings from TARGET_* variables (target_app.wsgi).
    env = os.environ | settings.to_env()
    argv = gunicorn_argv(settings)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)


_DEV_SERVERS = {"threading": _serve_threading, "eventlet": _serve_eventlet, "gevent": _serve_gevent}
