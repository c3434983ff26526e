"""A malformed frame from a client is one warning line in the target's log, not a traceback.

python-engineio logs every exception a message handler raises with its
traceback, so a fuzzing or broken client writes twenty lines per frame and
buries real errors. Bad input (a frame that does not decode) becomes one
``WARNING`` line with the reason; any other exception keeps its traceback.
"""
from __future__ import annotations

import json
import logging

from core.redact import PACKET_LOGGERS

#: exceptions that mean "the client sent something that does not decode"
BAD_INPUT = (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, json.JSONDecodeError)


class OneLineBadInput(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BAD_INPUT):
            record.msg = f"{record.getMessage()} (bad input from a client): {type(exc).__name__}: {exc}"
            record.args, record.exc_info, record.exc_text = None, None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install() -> None:
    """Apply to the packet loggers (idempotent)."""
    for name in PACKET_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineBadInput) for f in logger.filters):
            logger.addFilter(OneLineBadInput())
