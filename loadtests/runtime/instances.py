"""Several target instances: which URL a user loads, and who should receive a broadcast.

With ``--target-urls`` the users spread over several instances sharing a
message queue: user *k* of a class takes URL ``k mod N``. The lean client
speaks websocket only, so each connection stays on the instance it opened
(no sticky sessions needed; long-polling behind a proxy is another matter,
see the README).

A broadcast's ack counts the recipients on the sender's *instance* only (a
server cannot see the others' rooms), so with several instances the
deliveries a broadcast should cause come from the load generator's own
:class:`loadtests.runtime.fanout.RoomRoster`: the members of the room whose join was acknowledged and
whose connection is still up when the broadcast is sent.

No Locust import here: this is pure logic, testable alone.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from urllib.parse import urlsplit

from sioharness.core.load_params import EXPECTED_FROM

#: user number -> the target URL it loads, in this process (written to targets-<worker>.json)
USER_TARGETS: dict[int, str] = {}



def parse_target_urls(text: str | None) -> tuple[str, ...]:
    """The comma-separated URLs of ``--target-urls``; ValueError naming a malformed one."""
    urls = tuple(part.strip().rstrip("/") for part in (text or "").split(",") if part.strip())
    for url in urls:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            raise ValueError(f"--target-urls: {url!r} must look like http://127.0.0.1:5000 (scheme, host and port)")
    return urls


@dataclass(frozen=True)
class TargetChoice:
    """The instance one user loads."""

    url: str
    #: 0-based position in ``--target-urls``
    index: int
    #: how many instances there are
    count: int

    @property
    def label(self) -> str:
        """``instance 2/3 127.0.0.1:5001``: what a failure on it is tagged with."""
        return f"instance {self.index + 1}/{self.count} {urlsplit(self.url).netloc}"


def pick_target(urls: tuple[str, ...], user_index: int, default: str) -> TargetChoice:
    """User ``user_index``'s instance: round robin over ``urls``, else ``default`` (``--host``)."""
    if not urls:
        return TargetChoice(default, 0, 1)
    return TargetChoice(urls[user_index % len(urls)], user_index % len(urls), len(urls))


def on_instance(exc: BaseException, label: str) -> BaseException:
    """A copy of ``exc`` of the same class whose message ends with ``[label]``.

    The recorder writes ``ClassName: message``, so the class survives and the
    errors table of a report shows which instance each failure came from.
    The original is returned when it cannot be copied.
    """
    try:
        tagged = copy.copy(exc)
    except Exception:  # classes whose constructor takes other arguments than their args
        try:
            tagged = type(exc).__new__(type(exc))
            tagged.__dict__.update(getattr(exc, "__dict__", {}))
        except Exception:
            return exc
    try:
        tagged.args = (f"{exc} [{label}]",)
    except Exception:
        return exc
    return tagged


def resolve_expected_from(choice: str, instances: int) -> str:
    """``auto`` -> ``roster`` with several instances, ``acks`` with one."""
    if choice not in EXPECTED_FROM:
        raise ValueError(f"--expected-from must be one of {', '.join(EXPECTED_FROM)}, got {choice!r}")
    if choice == "auto":
        return "roster" if instances > 1 else "acks"
    return choice
