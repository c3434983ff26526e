"""A bound on the bytes one websocket client can have waiting in the server.

simple-websocket (the websocket of the threading and gevent modes) reads
each connection in a reader task that appends every complete message to a
list, and the Engine.IO handler takes them from it. Under gevent the reader
does not yield while the kernel has data, so a client that sends fast can
park hundreds of megabytes in that list before one is handled. Here the list
holds at most :data:`PENDING_BYTES_PER_CLIENT`: a reader with a full list
waits, the kernel's buffers fill, and TCP pushes back on that client only.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import simple_websocket

#: bytes of received messages one websocket may hold before its reader waits
PENDING_BYTES_PER_CLIENT = 4 * 1024 * 1024
WAIT_SLICE_S = 1.0


class BoundedInbox(list):
    """simple-websocket's ``input_buffer``: ``append`` waits while it holds ``limit`` bytes.

    ``owner`` is the websocket: its ``event`` wakes the consumer, its
    ``connected`` ends a wait when the connection is over.
    """

    def __init__(self, limit: int, owner: Any) -> None:
        super().__init__()
        self.limit = limit
        self.bytes = 0
        self._owner = owner
        self._room: Any = None  # an event of the owner's kind, made at the first wait

    def append(self, message: Any) -> None:
        size = len(message)
        while self.bytes and self.bytes + size > self.limit:
            if not self._owner.connected:
                return  # the connection is over: nobody will take it
            if self._room is None:
                self._room = type(self._owner.event)()
            self._room.clear()
            self._owner.event.set()  # the consumer may not know of what is queued yet
            self._room.wait(timeout=WAIT_SLICE_S)
        self.bytes += size
        super().append(message)

    def pop(self, index: Any = -1) -> Any:
        message = super().pop(index)
        self.bytes -= len(message)
        if self._room is not None:
            self._room.set()
        return message


class BoundedServer(simple_websocket.Server):
    """simple-websocket's server side, with a :class:`BoundedInbox`."""

    @property
    def input_buffer(self) -> BoundedInbox:
        return self._inbox

    @input_buffer.setter
    def input_buffer(self, _initial: list) -> None:
        # Set once by simple-websocket's constructor, before its reader starts.
        self._inbox = BoundedInbox(PENDING_BYTES_PER_CLIENT, self)


def _bounded(websocket_class: type) -> type:
    """engineio's websocket wrapper for a mode, building a :class:`BoundedServer` instead."""

    class BoundedWebSocketWSGI(websocket_class):
        def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            # engineio's SimpleWebSocketWSGI.__call__, with the bounded server.
            self.ws = BoundedServer(environ, **self.server_args)
            ret = self.app(self)
            if self.ws.mode == "gunicorn":
                raise StopIteration()
            if self.ws.mode == "werkzeug":
                raise ConnectionError()
            return ret

    return BoundedWebSocketWSGI


def install(async_mode: str) -> None:
    """Bound the inbox of every websocket the mode's Engine.IO server accepts from now on."""
    if async_mode not in ("threading", "gevent"):
        return  # eventlet and asgi use their own websocket implementations
    import importlib

    from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

    driver = importlib.import_module(f"engineio.async_drivers.{async_mode}")
    current = driver._async["websocket"]
    if isinstance(current, type) and issubclass(current, SimpleWebSocketWSGI) and \
            current.__name__ != "BoundedWebSocketWSGI":
        driver._async["websocket"] = _bounded(current)
