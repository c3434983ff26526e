"""Load test for examples/classic/app.py, on the harness's public API, with the app as it is written.

    python -m sioharness.bench --app examples/classic/app.py:socketio \\
        --locustfile examples/classic/locustfile.py

Each user logs in over HTTP (the session cookie then goes with its connect),
joins a room of five, and does what the app's own page does: ``my_event``
(answered by ``my_response`` to the sender), ``my_room_event`` (``my_response``
to the room; called, so the ack counts the deliveries it should cause),
``my_ping`` (answered by ``my_pong``).
"""
import itertools

from locust import task

from loadtests import FanOut, SocketIOUser, stamped

_markers = itertools.count()


def is_room_message(message):
    """The app sends everything as my_response: only room messages carry our stamp and kind."""
    data = message.get("data") if isinstance(message, dict) else None
    return isinstance(data, dict) and data.get("kind") == "room"


def is_rooms_list(message):
    """The answer to join: "In rooms: ..."."""
    data = message.get("data") if isinstance(message, dict) else None
    return isinstance(data, str) and data.startswith("In rooms")


class ClassicUser(SocketIOUser):
    """Logs in, connects with the session cookie, joins a room, then emits as the app's page does."""

    # my_room_event reaches every room member as my_response, with our data (and its t_ns) under "data".
    fanout = {"my_room_event": FanOut("my_response", expected="roster", stamp="data.t_ns", match=is_room_message)}
    # Rank the cells by my_event's p99, whichever event happens to be busiest in a run.
    primary = "my_event"

    def on_start(self):
        self.name = f"user-{self.user_id}"
        self.room = self.group_room("room", size=5)
        self.greetings = 0
        self.on("my_response", self.on_response)  # before connect: the app greets inside its connect handler
        self.http.post("/login", data={"name": self.name})

    def on_response(self, message):
        if isinstance(message, dict) and message.get("data") == "Connected":
            self.greetings += 1

    def enter(self):
        """Connect and join the room (again after a lost connection); back off after a failure."""
        if self.connected:
            return True
        if self.connect() and self.request("join", {"room": self.room}, reply="my_response",
                                           match=is_rooms_list) is not None:
            self.joined(self.room)
            return True
        self.pump(self.reconnect_backoff)  # a refused connect must not become a busy loop
        return False

    @task(10)
    def my_event(self):
        if self.enter():
            self.pace()
            marker = f"{self.name}-{next(_markers)}"
            self.request("my_event", {"data": marker}, reply="my_response",
                         match=lambda message: message.get("data") == marker)

    @task(2)
    def my_room_event(self):
        if self.enter():
            self.pace()
            # Flask-SocketIO acks any event that asks for one, once its handler has emitted to the room.
            self.call("my_room_event", {"room": self.room, "data": stamped(kind="room")})

    @task(1)
    def my_ping(self):
        if self.enter():
            self.request("my_ping", reply="my_pong")
