"""What a run records about where and on what it ran (``run.json``)."""
from __future__ import annotations

import datetime as dt
import os
import platform
import socket
from importlib import metadata

import psutil

# The packages whose versions shape a figure.
MEASURED_PACKAGES = (
    "flask", "flask-socketio", "python-socketio", "python-engineio", "simple-websocket",
    "eventlet", "gevent", "greenlet", "gunicorn", "uvicorn", "websockets", "locust",
    "websocket-client", "pandas", "pyarrow",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in MEASURED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> dict[str, object]:
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu_model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model,
    }


def iso(t_ns: int) -> str:
    return dt.datetime.fromtimestamp(t_ns / 1e9, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id(profile: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{profile}"
