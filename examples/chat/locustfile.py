"""Load test for examples/chat/app.py, on the harness's public API.

    locust -f examples/chat/locustfile.py --headless -u 20 -r 20 -t 15s \\
        --host http://127.0.0.1:5001 --results-dir results/chat/cell
"""
import os

from locust import task

from loadtests import FanOut, SocketIOUser, stamped

TOKEN = os.environ.get("CHAT_TOKEN", "let-me-in")


class ChatUser(SocketIOUser):
    """Joins a room of five, chats (paced by --emit-rate), reads the history now and then."""

    # Each chat_message should reach every member of its room as new_message.
    fanout = {"chat_message": FanOut("new_message", expected="roster")}

    def on_start(self) -> None:
        self.room = self.group_room("chat", size=5)

    def enter(self) -> bool:
        """Connect and join the room (again after a lost connection); back off after a failure."""
        if self.connected:
            return True
        if self.connect(auth={"token": TOKEN}) and self.call("join_room", {"room": self.room}) is not None:
            self.joined(self.room)
            return True
        self.pump(self.reconnect_backoff)  # a refused connect must not become a busy loop
        return False

    @task(10)
    def chat(self) -> None:
        if self.enter():
            self.pace()
            self.call("chat_message", stamped(room=self.room, text="hello"))

    @task(1)
    def history(self) -> None:
        if self.enter():
            self.call("get_history", {"room": self.room})
