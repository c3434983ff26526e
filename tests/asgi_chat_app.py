"""An ASGI python-socketio app written the usual way, served by the --app launcher in the tests.

A greeting in connect, a reply by emit, rooms joined and talked to; its packet
logging on (the tests count the server's own "received event" lines).
"""
import socketio

sio = socketio.AsyncServer(async_mode="asgi", logger=True)
app = socketio.ASGIApp(sio)


@sio.event
async def connect(sid, environ, auth=None):
    await sio.emit("welcome", {"data": "hello"}, to=sid)


@sio.event
async def join(sid, message):
    await sio.enter_room(sid, message["room"])


@sio.event
async def say(sid, message):
    await sio.emit("said", {"text": message["text"]}, to=message["room"])


@sio.event
async def my_event(sid, message):
    await sio.emit("my_response", {"data": message["data"]}, to=sid)


if __name__ == "__main__":
    raise SystemExit("the launcher imports this module; this block must not run")
