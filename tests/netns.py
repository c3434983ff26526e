"""Separate hosts on one machine: network namespaces joined by a bridge (root only).

:class:`NetnsLab` makes a switch namespace holding a bridge, then one
namespace per host, each with its own address on a private /24 (chosen
among 10.251.0.0/16, clear of every address the machine already has) and a
veth pair to the bridge. The test process gets one address on the bridge too
(a veth in the root namespace), so it can check health and read what the
hosts serve. Every namespace and link it made is removed on exit, even on
failure; nothing else is touched.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
from types import TracebackType


class NetnsUnavailable(RuntimeError):
    """Not root, no ``ip``, or ``ip netns`` failed: the caller skips, saying why."""


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if proc.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _used_addresses() -> list[ipaddress.IPv4Interface]:
    found = []
    for line in _ip("-4", "-o", "addr", "show").splitlines():
        parts = line.split()
        if "inet" in parts:
            found.append(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]))
    return found


class NetnsLab:
    """Namespaces ``host(name)`` on one bridge; ``prefix(ns)`` runs a command inside one."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("no 'ip' command (apt-get install iproute2)")
        self.tag = f"{os.getpid() % 1000:03d}{random.randrange(100):02d}"
        used = _used_addresses()
        for _ in range(50):
            net = ipaddress.IPv4Network(f"10.251.{random.randrange(256)}.0/24")
            if not any(net.overlaps(a.network) for a in used):
                self.network = net
                break
        else:
            raise NetnsUnavailable("no free /24 in 10.251.0.0/16")
        self.switch = f"sio-sw-{self.tag}"
        self.root_link = f"sio-r{self.tag}"
        self.namespaces: list[str] = []
        self._links: list[str] = []  # veth ends made in the root namespace (moved away unless a step failed)
        self._next = 2

    def _address(self) -> str:
        address = str(self.network.network_address + self._next)
        self._next += 1
        return address

    def __enter__(self) -> NetnsLab:
        try:
            _ip("netns", "add", self.switch)
            self.namespaces.append(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            # The test process's own address on the bridge.
            _ip("link", "add", self.root_link, "type", "veth", "peer", "name", "root", "netns", self.switch)
            _ip("-n", self.switch, "link", "set", "root", "master", "br0", "up")
            self.root_address = str(self.network.network_address + 1)
            _ip("addr", "add", f"{self.root_address}/{self.network.prefixlen}", "dev", self.root_link)
            _ip("link", "set", self.root_link, "up")
        except BaseException:
            self.close()
            raise
        return self

    def host(self, name: str) -> tuple[str, str]:
        """A new namespace joined to the bridge: (namespace, its address)."""
        ns, outer = f"sio-{name}-{self.tag}", f"v{name}{self.tag}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        self._links.append(outer)
        _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", outer, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", outer, "master", "br0", "up")
        address = self._address()
        _ip("-n", ns, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns, address

    @staticmethod
    def prefix(ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            with contextlib.suppress(NetnsUnavailable, subprocess.TimeoutExpired):
                _ip("netns", "delete", ns)
        self.namespaces = []
        for link in [self.root_link, *self._links]:  # gone with their peers already, unless a step failed
            if os.path.exists(f"/sys/class/net/{link}"):
                with contextlib.suppress(NetnsUnavailable, subprocess.TimeoutExpired):
                    _ip("link", "delete", link)
        self._links = []

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def net_namespace(pid: int) -> str:
    """The network namespace a process lives in (``net:[inode]``)."""
    return os.readlink(f"/proc/{pid}/ns/net")
