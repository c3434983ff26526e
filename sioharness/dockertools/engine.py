"""Bring up a Docker engine where none runs, and stop only the one it started.

    python3 -m sioharness.dockertools.engine up      # root only: install Debian packages, start dockerd
    python3 -m sioharness.dockertools.engine status
    python3 -m sioharness.dockertools.engine down    # stop the dockerd that `up` started, by its pid

For CI runners and other machines with no engine. ``up`` does nothing when
an engine already answers (it is not ours to manage). It installs Debian's
``docker.io`` (engine 20.10), ``containerd``, ``runc``, ``iptables`` and
``docker-compose`` (v1) when missing, then starts ``dockerd`` with its own
data root (in the cache folder, so built images survive), exec root and pid
file. ``down`` reads that pid file, checks the process is the dockerd it
started (its command line names the pid file), and ends it: SIGTERM, then
SIGKILL after a grace period. Nothing else is touched.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sioharness.dockertools.cli import DockerError, cache_dir, engine_status, is_root, run, say

#: Debian packages that make a working engine plus compose v1.
PACKAGES = ("docker.io", "containerd", "runc", "iptables", "docker-compose")
DEFAULT_SOCKET = "/var/run/docker.sock"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
NICENESS = 10


@dataclass(frozen=True)
class EnginePaths:
    """Where a started engine keeps its state; the pid file marks it as ours."""

    data_root: Path
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "dockerd.pid"

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def log_file(self) -> Path:
        return self.data_root.parent / "dockerd.log"

    @classmethod
    def default(cls) -> EnginePaths:
        # The run dir is on tmpfs: a reboot forgets the pid with the process.
        return cls(data_root=cache_dir() / "dockerd" / "data", run_dir=Path("/run/sio-loadharness-dockerd"))


def missing_packages(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The packages dpkg does not report as installed."""
    if shutil.which("dpkg-query") is None:
        return list(packages)
    missing = []
    for name in packages:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
        if result.returncode != 0 or "install ok installed" not in result.stdout:
            missing.append(name)
    return missing


def install_packages(names: list[str]) -> None:
    if shutil.which("apt-get") is None:
        raise DockerError(f"apt-get not found: install {' '.join(names)} by hand")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    say(f"engine: installing {' '.join(names)} (apt-get)")
    run(["apt-get", "update", "-qq"], timeout=600, env=env, nice=True)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names], timeout=900, env=env, nice=True)


def read_pid(paths: EnginePaths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def is_our_dockerd(pid: int, paths: EnginePaths) -> bool:
    """True only for a live dockerd whose command line names our pid file."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in cmdline if a]
    return bool(args) and os.path.basename(args[0]) == "dockerd" and str(paths.pid_file) in args


def start(paths: EnginePaths, *, install: bool = True, socket: str = DEFAULT_SOCKET) -> bool:
    """Start dockerd unless an engine answers. Returns True when this call started one."""
    reachable, detail = engine_status()
    if reachable:
        say(f"engine: a Docker engine already answers (server {detail}); leaving it alone")
        return False
    pid = read_pid(paths)
    if pid is not None and is_our_dockerd(pid, paths):
        raise DockerError(f"dockerd {pid} (started by this script) runs but does not answer; "
                          f"see {paths.log_file}, or stop it with `python3 -m sioharness.dockertools.engine down`")
    if not is_root():
        raise DockerError("no Docker engine answers, and starting one needs root "
                          "(run `sudo python3 -m sioharness.dockertools.engine up`, or start Docker your usual way)")
    missing = missing_packages()
    if missing:
        if not install:
            raise DockerError(f"missing Debian packages: {' '.join(missing)} (drop --no-install to install them)")
        install_packages(missing)
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    for folder in (paths.data_root, paths.exec_root):
        folder.mkdir(parents=True, exist_ok=True)
    argv = [
        dockerd,
        "--data-root", str(paths.data_root),
        "--exec-root", str(paths.exec_root),
        "--pidfile", str(paths.pid_file),
        "--storage-driver", "overlay2",
        "--host", f"unix://{socket}",
    ]
    say(f"engine: starting {' '.join(argv)}")
    with paths.log_file.open("ab") as log:
        # Niced, with everything it runs (builds, containers): the machine is shared.
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True, preexec_fn=lambda: os.nice(NICENESS))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DockerError(f"dockerd exited with {process.returncode}; last lines of {paths.log_file}:\n"
                              + _tail(paths.log_file))
        if engine_status(timeout=5)[0]:
            say(f"engine: dockerd {process.pid} ready in {READY_TIMEOUT_S - (deadline - time.monotonic()):.1f} s "
                f"(data root {paths.data_root})")
            return True
        time.sleep(0.25)
    stop(paths)
    raise DockerError(f"dockerd did not answer within {READY_TIMEOUT_S:.0f} s; see {paths.log_file}")


def stop(paths: EnginePaths) -> bool:
    """Stop the dockerd that :func:`start` started. Returns True when one was stopped."""
    pid = read_pid(paths)
    if pid is None:
        say("engine: no engine started by this harness (no pid file); nothing to stop")
        return False
    if not is_our_dockerd(pid, paths):
        say(f"engine: pid {pid} in {paths.pid_file} is not our dockerd (gone already); nothing to stop")
        paths.pid_file.unlink(missing_ok=True)
        return False
    say(f"engine: stopping dockerd {pid}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and is_our_dockerd(pid, paths):
        time.sleep(0.2)
    if is_our_dockerd(pid, paths):
        say(f"engine: dockerd {pid} still running after {STOP_TIMEOUT_S:.0f} s; SIGKILL")
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    paths.pid_file.unlink(missing_ok=True)
    return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m sioharness.dockertools.engine",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing missing packages")
    parser.add_argument("--data-root", type=Path, help="dockerd data root (default: cache folder)")
    args = parser.parse_args(argv)
    paths = EnginePaths.default()
    if args.data_root is not None:
        paths = EnginePaths(data_root=args.data_root.resolve(), run_dir=paths.run_dir)
    try:
        if args.action == "up":
            start(paths, install=not args.no_install)
        elif args.action == "down":
            stop(paths)
        else:
            reachable, detail = engine_status()
            pid = read_pid(paths)
            ours = pid is not None and is_our_dockerd(pid, paths)
            print(f"engine: {'reachable, server ' + detail if reachable else 'not reachable: ' + detail}; "
                  f"{'started by this harness, pid ' + str(pid) if ours else 'not started by this harness'}")
            return 0 if reachable else 1
    except DockerError as exc:
        print(f"docker_engine: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
