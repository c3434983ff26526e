"""HTTP requests the harness itself makes to a target: they never follow a redirect.

A target's ``/stats``, ``/healthz`` or ``/`` answering 302 to another host
must not lead the harness there: a redirect is an answer like any other
status (urllib raises HTTPError for it), so a probe ends where it started.
"""
from __future__ import annotations

import http.client
import ssl
import urllib.request
from typing import Any, cast


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def open_url(url: str | urllib.request.Request, *, timeout: float,
             context: ssl.SSLContext | None = None) -> http.client.HTTPResponse:
    """``urllib.request.urlopen`` that follows no redirect."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return cast(http.client.HTTPResponse, urllib.request.build_opener(*handlers).open(url, timeout=timeout))
