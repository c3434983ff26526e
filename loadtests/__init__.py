"""Socket.IO load tests on Locust: the public API.

A locustfile for your own server::

    from locust import task
    from loadtests import FanOut, SocketIOUser, stamped

    class ChatUser(SocketIOUser):
        fanout = {"chat_message": FanOut("new_message", expected="roster")}

        def on_start(self):
            self.room = self.group_room("chat", size=5)
            if self.connect(auth={"token": "..."}) and self.call("join_room", {"room": self.room}) is not None:
                self.joined(self.room)

        @task
        def chat(self):
            self.pace()
            self.call("chat_message", stamped(room=self.room, text="hi"))

Importing :class:`SocketIOUser` registers the harness with Locust (its
options, the sample recorder and the watchdog); nothing else is needed.
Importing this package alone stays cheap: Locust (which monkey-patches the
process with gevent) is imported only when a name that needs it is used.
See docs/own-app.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtests.answers import ACKED
    from loadtests.runtime.fanout import FanOut, stamped
    from loadtests.socketio_user import AckError, SocketIOUser

__all__ = ["ACKED", "AckError", "FanOut", "SocketIOUser", "stamped"]

_HOMES = {"ACKED": "loadtests.answers", "AckError": "loadtests.socketio_user",
          "SocketIOUser": "loadtests.socketio_user",
          "FanOut": "loadtests.runtime.fanout", "stamped": "loadtests.runtime.fanout"}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'loadtests' has no attribute {name!r} (public: {', '.join(__all__)})")
    import importlib

    return getattr(importlib.import_module(home), name)
