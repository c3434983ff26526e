"""What a successful round trip returns when the answer carried nothing.

python-socketio returns None for an ack with no arguments, so a caller
cannot tell it from a failure. :meth:`SocketIOUser.call` and
:meth:`SocketIOUser.request` return :data:`ACKED` instead: true, and not
None, so ``call(...) is not None`` always means it succeeded.
"""
from __future__ import annotations

from typing import Any


class _Acked:
    """The type of :data:`ACKED`: one instance, true."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "ACKED"


#: the answer to a call (or request) that succeeded with no arguments, or only null
ACKED: Any = _Acked()


def answer_of(value: Any) -> Any:
    """A successful round trip's return value: ``value``, or :data:`ACKED` for None."""
    return ACKED if value is None else value
