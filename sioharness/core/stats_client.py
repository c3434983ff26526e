"""Reading a target's ``/stats`` document (the reference target and the asyncio baseline serve it)."""
from __future__ import annotations

import json
import urllib.error
from typing import Any

from sioharness.core.local_http import open_url


class NoStatsError(Exception):
    """Something answered at the URL, but not with a ``/stats`` JSON object."""


def fetch_stats(base_url: str, *, timeout: float = 3.0) -> dict[str, Any]:
    """The ``/stats`` object of the server at ``base_url``.

    Raises OSError when nothing answers (refused, timed out), and
    NoStatsError when a server answers without a ``/stats`` object.
    """
    url = base_url.rstrip("/") + "/stats"
    try:
        with open_url(url, timeout=timeout) as response:
            document = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise NoStatsError(f"{url} answered HTTP {exc.code}") from None
    except ValueError as exc:
        raise NoStatsError(f"{url} did not answer JSON: {exc}") from None
    if not isinstance(document, dict):
        raise NoStatsError(f"{url} answered {type(document).__name__}, not an object")
    return document


def probe_stats(base_url: str, *, timeout: float = 3.0) -> dict[str, Any] | None:
    """``/stats`` when the server has it; None when it has none or nothing answers."""
    try:
        return fetch_stats(base_url, timeout=timeout)
    except (OSError, NoStatsError):
        return None


def connected_count(base_url: str, *, timeout: float = 0.4) -> int | None:
    """The ``connected`` counter of ``/stats``, or None when it cannot be read."""
    document = probe_stats(base_url, timeout=timeout)
    try:
        return int(document["connected"]) if document is not None else None
    except (KeyError, TypeError, ValueError):
        return None
