"""What the web UI accepts from a browser: its own start form, from its own pages.

Locust's ``/swarm`` writes every form key that names a parsed option into the
options, hidden or not, and checks no value against its option's type. So a
form could switch off the loopback guard (``i_own_this_host=true``), aim the
load elsewhere (``target_urls``) or record anywhere (``results_dir``). And any
web page the user opens could post that form to ``127.0.0.1:8089``. Here:

- a request that changes state must come from the UI's own origin (its
  ``Origin``, else its ``Sec-Fetch-Site``), and a UI listening on loopback
  answers only requests addressed to a loopback name (no DNS rebinding);
- ``/swarm`` accepts Locust's own fields and the options its form shows,
  each value checked as the command line checks it; every target URL must
  pass the loopback guard, and the results folder must lie inside the one
  the UI was started with.
"""
from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

#: Locust's own fields of the start form (its /swarm handler reads each by name)
LOCUST_FORM_FIELDS = frozenset({"user_count", "spawn_rate", "host", "user_classes", "shape_class", "run_time",
                                "profile"})
#: Locust's routes that change the test although a GET reaches them
STATE_CHANGING_GET_PATHS = ("/stop", "/stats/reset")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Headers(Protocol):
    """A request's headers, looked up without regard to case (werkzeug's, or a dict in tests)."""

    def get(self, key: str) -> str | None: ...


class FormRefused(ValueError):
    """A request or form field the UI does not accept; the message names it."""


def shown_options(parser: Any, locust_own: Iterable[str]) -> dict[str, argparse.Action]:
    """The options beyond Locust's own that its start form shows, by field name."""
    own = set(locust_own)
    return {dest: action for dest, action in parser.args_included_in_web_ui.items() if dest not in own}


def is_loopback_name(host_header: str) -> bool:
    """True for a Host header naming loopback literally: 127.x, [::1] or localhost (any port)."""
    host = urlsplit("//" + host_header).hostname or ""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_origin(method: str, path: str, headers: Headers, *, loopback_ui: bool) -> None:
    """Raise FormRefused for a request the UI's own pages did not make, where that matters."""
    host = headers.get("Host") or ""
    if loopback_ui and not is_loopback_name(host):
        raise FormRefused(f"the web UI listens on loopback and answers only loopback names, not Host {host[:80]!r}")
    if method.upper() in SAFE_METHODS and not path.rstrip("/").endswith(STATE_CHANGING_GET_PATHS):
        return
    origin = headers.get("Origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != host.lower()):
        raise FormRefused(f"refusing a {method} {path} sent by another site ({origin[:80]})")
    if headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        raise FormRefused(f"refusing a {method} {path} sent by another site")


def check_swarm_form(form: Mapping[str, list[str]], shown: Mapping[str, argparse.Action], *,
                     check_target: Callable[[str], None], results_root: str) -> None:
    """Raise FormRefused naming the first field ``/swarm`` should not act on.

    ``form`` maps each field to its values; ``check_target`` raises ValueError
    for a URL the loopback guard refuses; ``results_root`` is the folder the UI
    was started with ("" when it records nothing).
    """
    for field, values in form.items():
        if field in LOCUST_FORM_FIELDS:
            continue
        action = shown.get(field)
        if action is None:
            raise FormRefused(f"the form has no field {field[:60]!r}: set it on the command line")
        for value in values:
            _check_value(field, action, value)
    for value in form.get("host", []):
        if value.strip():
            _checked(check_target, "host", value.strip())
    for value in form.get("target_urls", []):
        for url in filter(None, (part.strip() for part in value.split(","))):
            _checked(check_target, "target_urls", url)
    for value in form.get("results_dir", []):
        _check_results_dir(value, results_root)


def _checked(check: Callable[[str], None], field: str, value: str) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise FormRefused(f"{field}: {exc}") from None


def _check_value(field: str, action: argparse.Action, value: str) -> None:
    if action.nargs == 0:  # a flag: Locust reads "true" as set, anything else as unset
        if value not in ("true", "false"):
            raise FormRefused(f"{field} must be true or false, not {value[:40]!r}")
        return
    convert = action.type if callable(action.type) else str
    try:
        converted = convert(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        raise FormRefused(f"{field}: {exc or 'not a valid value'} ({value[:40]!r})") from None
    if action.choices is not None and converted not in action.choices:
        raise FormRefused(f"{field} must be one of {', '.join(map(str, action.choices))}, not {value[:40]!r}")


def _check_results_dir(value: str, root: str) -> None:
    if not value or value == root:
        return
    if not root:
        raise FormRefused("results_dir: this web UI was started without --results-dir, so it records nowhere")
    inside = Path(root).resolve()
    wanted = (Path(value) if Path(value).is_absolute() else Path.cwd() / value).resolve()
    if wanted != inside and inside not in wanted.parents:
        raise FormRefused(f"results_dir must be {root} or a folder inside it, not {value[:120]!r}")
