"""A malformed frame from a client is one warning line in the target's log, not a traceback.

python-engineio logs every exception a message handler raises with its
traceback, so a fuzzing or broken client writes twenty lines per frame and
buries real errors. Bad input (a frame that does not decode) becomes one
``WARNING`` line with the reason; any other exception keeps its traceback.
"""
from __future__ import annotations

import json
import logging

from sioharness.core.redact import PACKET_LOGGERS

#: exceptions that mean "the client sent something that does not decode"
BAD_INPUT = (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, json.JSONDecodeError,
             RecursionError)  # RecursionError: JSON nested deeper than the decoder goes


class OneLineBadInput(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and not isinstance(exc, BAD_INPUT) and isinstance(exc.__context__, BAD_INPUT):
            # Raised while refusing bad input (uvicorn's websocket closing twice on
            # invalid UTF-8): the bad input is the news.
            exc = exc.__context__
        if isinstance(exc, BAD_INPUT):
            first_line = record.getMessage().splitlines()[0] if record.getMessage() else ""
            record.msg = f"{first_line} (bad input from a client): {type(exc).__name__}: {exc}"
            record.args, record.exc_info, record.exc_text = None, None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


#: where the asyncio stack reports an exception a bad frame raised in its protocol code
_ASYNCIO_LOGGERS = ("asyncio",)


def install() -> None:
    """Apply to the packet loggers (idempotent)."""
    for name in PACKET_LOGGERS + _ASYNCIO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineBadInput) for f in logger.filters):
            logger.addFilter(OneLineBadInput())


def _one_line(where: str, exc: BaseException) -> None:
    logging.getLogger("target_app").info("%s ended on a closed connection: %s: %s", where, type(exc).__name__, exc)


def install_task_hooks(async_mode: str) -> None:
    """A background task that dies on a connection the client closed is one line, not a traceback.

    python-engineio's websocket writer closes its websocket when it finishes; if
    the client reset the connection first, that close raises in the task, and
    the thread (threading) or greenlet (gevent) prints a traceback per client.
    """
    if async_mode == "threading":
        import threading

        default = threading.excepthook

        def thread_hook(args: threading.ExceptHookArgs) -> None:
            if isinstance(args.exc_value, OSError):
                _one_line(f"thread {args.thread.name if args.thread else '?'}", args.exc_value)
            else:
                default(args)

        threading.excepthook = thread_hook
    elif async_mode == "gevent":
        import gevent

        hub = gevent.get_hub()
        default_print = hub.print_exception

        def print_exception(context: object, exc_type: type, value: BaseException, tb: object) -> None:
            if isinstance(value, OSError):
                _one_line("a greenlet", value)
            else:
                default_print(context, exc_type, value, tb)

        hub.print_exception = print_exception
