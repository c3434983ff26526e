"""The user's HTTP session: Locust's, with redirects held to the load's own targets.

A Socket.IO app often logs its users in over HTTP first (a form, a cookie
session) and reads the session cookie in its connect handler.
:attr:`SocketIOUser.http` is a Locust ``HttpSession`` on the user's target:
each request is measured and recorded like any sample, and its cookies go
with the user's next ``connect()``. A redirect may lead only where the load
may go (loopback, or a host the user said they own); any other is refused
as a failed request before it is followed. The same guard holds the
long-polling requests of ``ReferenceUser`` (python-engineio's own session).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from locust.clients import HttpSession  # first: Locust's gevent patching must precede requests' imports
from requests import Session
from requests.exceptions import RequestException

from loadtests.wire.safety import UnsafeTargetError


class RedirectRefused(RequestException):
    """A redirect towards a host that is not a load target."""


class _RedirectGuard:
    """Follows a redirect only where ``check_url`` accepts (it raises UnsafeTargetError otherwise)."""

    _check_url: Callable[[str], None]

    def get_redirect_target(self, resp: Any) -> str | None:
        target = super().get_redirect_target(resp)  # type: ignore[misc]  # requests' SessionRedirectMixin
        if target is not None:
            try:
                self._check_url(urljoin(resp.url, target))
            except UnsafeTargetError as exc:
                raise RedirectRefused(f"redirect from {resp.url} refused: {exc}", response=resp) from None
        return target


class TargetHttpSession(_RedirectGuard, HttpSession):
    """Locust's ``HttpSession`` (each request a sample) whose redirects stay on the load's targets."""

    def __init__(self, base_url: str, request_event: Any, user: Any, *,
                 check_url: Callable[[str], None]) -> None:
        super().__init__(base_url, request_event, user)
        self._check_url = check_url


class GuardedSession(_RedirectGuard, Session):
    """A plain ``requests`` session whose redirects stay on the load's targets."""

    def __init__(self, check_url: Callable[[str], None]) -> None:
        super().__init__()
        self._check_url = check_url


def cookie_header(cookies: dict[str, str]) -> str:
    """A ``Cookie`` header's value; ValueError for a name or value that would break the header."""
    parts = []
    for name, value in cookies.items():
        text = f"{name}={value}"
        if not name or any(c in text for c in "\r\n;") or any(c in name for c in " =,"):
            raise ValueError(f"cookie {name!r} cannot go into a Cookie header as it is")
        parts.append(text)
    return "; ".join(parts)
