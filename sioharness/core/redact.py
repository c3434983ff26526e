"""Secrets kept out of logs: auth values in Socket.IO payloads become ``[redacted]``.

At debug level python-engineio and python-socketio log every packet, the
CONNECT packet's auth payload included, and results folders (with their
logs) are uploaded as CI artifacts. :class:`RedactingFilter` rewrites a log
record's message before any handler writes it.
"""
from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
#: loggers that write packets or requests: python-engineio/-socketio, the servers, the target's own
PACKET_LOGGERS: tuple[str, ...] = ("engineio.server", "socketio.server", "engineio", "socketio", "werkzeug",
                                   "uvicorn.error", "uvicorn.access", "gunicorn.error", "target_app")
# "token": "...", 'password': '...', and escaped \"token\": \"...\" inside a logged packet string.
_SECRET_VALUE = re.compile(
    r"""(?P<key>(?:\\?["'])(?:token|auth_token|password|passwd|secret|api_key|apikey|authorization|access_token)"""
    r"""(?:\\?["'])\s*:\s*)(?P<quote>\\?["'])(?P<value>.*?)(?P=quote)""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the values of secret-looking keys replaced."""
    return _SECRET_VALUE.sub(lambda m: f"{m['key']}{m['quote']}{REDACTED}{m['quote']}", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's formatted message with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install(*logger_names: str) -> None:
    """Redact what the root logger's handlers and the named loggers write (idempotent)."""
    targets: list[logging.Filterer] = [*logging.getLogger().handlers, *map(logging.getLogger, logger_names)]
    for target in targets:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())
