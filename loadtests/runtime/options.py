"""The load test's parameters: Locust custom arguments and their value object.

Each parameter is a Locust custom argument, so it shows in the web UI (and
can be changed there per run) and works headless. :class:`LoadSettings` is
what the users read; it validates the values again because the web UI hands
them over unchecked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadtests.runtime.instances import parse_target_urls, resolve_expected_from
from loadtests.wire.safety import require_loopback
from sioharness.core.load_params import (
    ENV_AUTH_TOKEN,
    ENV_OWN_HOST,
    ENV_OWN_HOSTS,
    ENV_RESULTS_DIR,
    MAX_PAYLOAD_BYTES,
    TRANSPORTS,
    LocustOptions,
    add_locust_options,
    options_from_locust,
)

__all__ = ["ENV_AUTH_TOKEN", "ENV_OWN_HOST", "ENV_OWN_HOSTS", "ENV_RESULTS_DIR", "MAX_PAYLOAD_BYTES", "TRANSPORTS",
           "LoadSettings", "add_arguments", "check_host"]


@dataclass(frozen=True)
class LoadSettings(LocustOptions):
    """The harness's Locust options as the users read them (``sioharness.core.load_params`` declares each one).

    Beyond the table's own checks, the targets must be loopback or owned hosts.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        urls = parse_target_urls(self.target_urls)  # ValueError names the bad URL
        for url in urls:
            require_loopback(url, allow_remote=self.i_own_this_host, owned=self.owned_hosts)
        resolve_expected_from(self.expected_from, len(urls))

    @property
    def owned_hosts(self) -> tuple[str, ...]:
        """The hosts of ``--own-hosts`` (allowed as targets besides loopback)."""
        return tuple(h.strip() for h in self.own_hosts.split(",") if h.strip())

    @property
    def urls(self) -> tuple[str, ...]:
        """The instances of ``--target-urls`` (empty: every user loads ``--host``)."""
        return parse_target_urls(self.target_urls)

    @property
    def expected_source(self) -> str:
        """``acks`` or ``roster``: where a fan-out send's ``expected`` comes from."""
        return resolve_expected_from(self.expected_from, len(self.urls))

    @property
    def auth(self) -> dict[str, str] | None:
        """The CONNECT auth payload, or None when no token is set."""
        return {"token": self.auth_token} if self.auth_token else None

    @classmethod
    def from_options(cls, options: Any) -> LoadSettings:
        """Build from Locust's ``parsed_options`` (None or missing fields: defaults).

        Raises ValueError naming the bad option.
        """
        return cls(**options_from_locust(options))


def check_host(host: str | None, settings: LoadSettings) -> None:
    """Refuse a ``--host`` outside loopback unless the user owns it (UnsafeTargetError)."""
    if host:
        require_loopback(host, allow_remote=settings.i_own_this_host, owned=settings.owned_hosts)


#: Locust's own listeners default to every interface; here to loopback. A flag
#: (--web-host, --master-bind-host) or LOCUST_WEB_HOST / LOCUST_MASTER_BIND_HOST
#: still chooses another interface (containers do).
LOOPBACK_LISTENERS = {"web_host": "127.0.0.1", "master_bind_host": "127.0.0.1"}


def add_arguments(parser: Any) -> None:
    """Register the custom arguments on Locust's parser (``init_command_line_parser``).

    Also makes Locust's web UI and master listen on loopback by default.
    """
    parser.set_defaults(**LOOPBACK_LISTENERS)
    # On the parser itself, not an argument group: only Locust's parser knows
    # the web-UI flags (include_in_web_ui, is_secret).
    add_locust_options(parser.add_argument)
