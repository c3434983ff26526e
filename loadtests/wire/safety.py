"""Only loopback is a load target unless the user says they own the host."""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

ALLOW_FLAG = "--i-own-this-host"


class UnsafeTargetError(ValueError):
    """A load target outside loopback, without the user's explicit say-so."""


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` resolves to is loopback (127.0.0.0/8, ::1)."""
    host = host.strip("[]").rstrip(".")  # "localhost." is the same name, fully qualified
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):  # UnicodeError: a label over 63 characters, or empty
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _same_host(a: str, b: str) -> bool:
    a, b = (h.strip().strip("[]").rstrip(".").lower() for h in (a, b))
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def require_loopback(url: str, *, allow_remote: bool = False, owned: Collection[str] = ()) -> None:
    """Raise UnsafeTargetError for a URL whose host is not loopback, unless allowed.

    ``owned`` names hosts the user owns (``--own-hosts``): those, and only
    those, are allowed besides loopback; ``allow_remote`` allows any host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise UnsafeTargetError(f"target URL {url!r} must look like http://127.0.0.1:5000")
    if allow_remote or is_loopback_host(parts.hostname) or any(_same_host(parts.hostname, h) for h in owned):
        return
    raise UnsafeTargetError(
        f"refusing to load {parts.hostname}: only loopback addresses (127.0.0.0/8, ::1, localhost) are load "
        f"targets by default. If you own that host and mean to load it, pass {ALLOW_FLAG}.")
