"""A Flask-SocketIO app written the common way, the way Flask-SocketIO's own example is.

Handlers answer with ``emit("my_response", ...)``, not with acks; the connect
handler greets; payloads nest under ``data``; users log in over HTTP
(Flask-Login, a cookie session) and the Socket.IO handlers read that
session; the port and ``async_mode = None`` are in the code, and so is the
logging. It is loaded as it is, with no edit::

    python -m sioharness.bench --app examples/classic/app.py:socketio \\
        --locustfile examples/classic/locustfile.py

Run alone: ``python examples/classic/app.py`` (port 5002).
"""
from flask import Flask, request, session
from flask_login import LoginManager, UserMixin, current_user, login_user
from flask_socketio import SocketIO, emit, join_room, leave_room, rooms

# None lets Flask-SocketIO pick the best mode installed (the harness forces each mode in turn).
async_mode = None

app = Flask(__name__)
app.config["SECRET_KEY"] = "secret!"
socketio = SocketIO(app, async_mode=async_mode, logger=True, engineio_logger=True)
login_manager = LoginManager(app)


class User(UserMixin):
    def __init__(self, name):
        self.id = name


@login_manager.user_loader
def load_user(name):
    return User(name)


@app.route("/")
def index():
    return "classic example: connect with Socket.IO"


@app.route("/login", methods=["POST"])
def login():
    name = request.form.get("name", "").strip()
    if not name:
        return "a name is required", 400
    login_user(User(name))
    return "logged in as " + name


def count():
    session["receive_count"] = session.get("receive_count", 0) + 1
    return session["receive_count"]


@socketio.event
def my_event(message):
    emit("my_response", {"data": message["data"], "count": count()})


@socketio.event
def my_broadcast_event(message):
    emit("my_response", {"data": message["data"], "count": count()}, broadcast=True)


@socketio.event
def join(message):
    join_room(message["room"])
    emit("my_response", {"data": "In rooms: " + ", ".join(rooms()), "count": count()})


@socketio.event
def leave(message):
    leave_room(message["room"])
    emit("my_response", {"data": "In rooms: " + ", ".join(rooms()), "count": count()})


@socketio.event
def my_room_event(message):
    emit("my_response", {"data": message["data"], "count": count()}, to=message["room"])


@socketio.event
def whoami():
    name = current_user.id if current_user.is_authenticated else None
    emit("my_response", {"data": {"user": name}, "count": count()})


@socketio.event
def my_ping():
    emit("my_pong")


@socketio.event
def connect():
    emit("my_response", {"data": "Connected", "count": 0})


@socketio.on("disconnect")
def test_disconnect(reason):
    print("Client disconnected", request.sid, reason)


if __name__ == "__main__":
    socketio.run(app, port=5002)
