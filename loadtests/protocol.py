"""Engine.IO v4 and Socket.IO v5 packets, encoded and decoded without I/O.

Over a websocket, every Engine.IO packet is one websocket message: a text
message starts with the Engine.IO packet type digit (``"4"`` for a message
carrying a Socket.IO packet), and a binary message is a raw attachment of the
Socket.IO packet that announced it. A Socket.IO packet is::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]

where binary payloads are replaced in the JSON by
``{"_placeholder": true, "num": i}`` and sent as the following ``i``-th binary
message.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from loadtests.errors import ProtocolError

# Engine.IO v4 packet types (first character of a text message).
EIO_OPEN = "0"
EIO_CLOSE = "1"
EIO_PING = "2"
EIO_PONG = "3"
EIO_MESSAGE = "4"
EIO_UPGRADE = "5"
EIO_NOOP = "6"
EIO_VERSION = "4"

# Socket.IO v5 packet types.
CONNECT = 0
DISCONNECT = 1
EVENT = 2
ACK = 3
CONNECT_ERROR = 4
BINARY_EVENT = 5
BINARY_ACK = 6
PACKET_NAMES = ("CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK")

# Events the protocol reserves; a server never delivers them as user events.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting"})

# More would be a hostile or broken peer; python-socketio has the same bound.
MAX_ATTACHMENTS = 1000

_BINARY_TYPES = (bytes, bytearray, memoryview)
_decoder = json.JSONDecoder()


@dataclass(slots=True)
class Packet:
    """A decoded Socket.IO packet (attachments not yet filled in)."""

    type: int
    namespace: str = "/"
    data: Any = None
    ack_id: int | None = None
    #: binary messages that must follow before ``data`` is complete
    attachments: int = 0
    #: the binary messages received so far
    buffers: list[bytes] = field(default_factory=list)

    @property
    def name(self) -> str:
        return PACKET_NAMES[self.type]

    def add_attachment(self, buffer: bytes) -> bool:
        """Add one binary message; True when the packet is complete."""
        self.buffers.append(buffer)
        if len(self.buffers) < self.attachments:
            return False
        self.data = reconstruct(self.data, self.buffers)
        return True


# --- encoding -----------------------------------------------------------


class _HasBinary(Exception):
    """Raised by the fast encoder on the first binary value it meets."""


def _no_binary(obj: Any) -> Any:
    if isinstance(obj, _BINARY_TYPES):
        raise _HasBinary
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# One shared encoder for the common, binary-free case: it keeps no state, so
# greenlets and threads can share it.
_fast_encoder = json.JSONEncoder(separators=(",", ":"), default=_no_binary)


def _dumps_with_attachments(data: Any) -> tuple[str, list[bytes]]:
    attachments: list[bytes] = []

    def placeholder(obj: Any) -> Any:
        if isinstance(obj, _BINARY_TYPES):
            attachments.append(bytes(obj))
            return {"_placeholder": True, "num": len(attachments) - 1}
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    text = json.JSONEncoder(separators=(",", ":"), default=placeholder).encode(data)
    return text, attachments


def namespace_prefix(namespace: str) -> str:
    """The ``"/ns,"`` part of a packet; empty for the default namespace."""
    if namespace == "/":
        return ""
    if not namespace.startswith("/") or "," in namespace:
        raise ValueError(f"namespace must start with '/' and contain no ',', got {namespace!r}")
    return namespace + ","


def encode(
    packet_type: int, namespace: str = "/", data: Any = None, ack_id: int | None = None
) -> tuple[str, list[bytes]]:
    """Encode a Socket.IO packet as (Engine.IO text message, binary messages).

    EVENT and ACK packets whose data holds bytes become BINARY_EVENT and
    BINARY_ACK with placeholders; other packet types may not carry bytes.
    """
    body = ""
    attachments: list[bytes] = []
    if data is not None:
        try:
            body = _fast_encoder.encode(data)
        except _HasBinary:
            if packet_type not in (EVENT, ACK):
                raise ValueError(f"{PACKET_NAMES[packet_type]} packets cannot carry binary data") from None
            body, attachments = _dumps_with_attachments(data)
    head = EIO_MESSAGE
    if attachments:
        head += f"{packet_type + 3}{len(attachments)}-"
    else:
        head += str(packet_type)
    head += namespace_prefix(namespace)
    if ack_id is not None:
        head += str(ack_id)
    return head + body, attachments


def encode_event(
    event: str, args: tuple[Any, ...], namespace: str = "/", ack_id: int | None = None
) -> tuple[str, list[bytes]]:
    """Encode an event emit (``["event", *args]``) for the wire."""
    if not isinstance(event, str) or not event:
        raise ValueError(f"event name must be a non-empty str, got {event!r}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"event name {event!r} is reserved by Socket.IO")
    return encode(EVENT, namespace, [event, *args], ack_id)


def encode_connect(namespace: str = "/", auth: Any = None) -> str:
    """The CONNECT packet that opens ``namespace``, with an optional auth payload."""
    if auth is not None and not isinstance(auth, dict):
        raise ValueError(f"auth must be a dict or None, got {type(auth).__name__}")
    text, _ = encode(CONNECT, namespace, auth)
    return text


def encode_disconnect(namespace: str = "/") -> str:
    """The DISCONNECT packet that leaves ``namespace``."""
    return EIO_MESSAGE + str(DISCONNECT) + namespace_prefix(namespace)


# --- decoding -----------------------------------------------------------


def decode(text: str) -> Packet:
    """Decode the Socket.IO part of an Engine.IO message (after the ``"4"``).

    Raises :class:`ProtocolError` naming what is wrong and quoting the start
    of the packet.
    """
    if not text:
        raise ProtocolError("empty Socket.IO packet")
    first = text[0]
    if not "0" <= first <= "6":
        raise ProtocolError(f"unknown Socket.IO packet type {first!r} in {text[:80]!r}")
    packet_type = ord(first) - 48
    n = len(text)
    i = 1
    attachments = 0
    if packet_type in (BINARY_EVENT, BINARY_ACK):
        dash = text.find("-", 1, 12)
        count = text[1:dash]
        if dash < 0 or not count.isdecimal():
            raise ProtocolError(f"binary packet without an attachment count: {text[:80]!r}")
        attachments = int(count)
        if not 0 < attachments <= MAX_ATTACHMENTS:
            raise ProtocolError(f"binary packet announces {attachments} attachments: {text[:80]!r}")
        i = dash + 1
    namespace = "/"
    if i < n and text[i] == "/":
        comma = text.find(",", i)
        end = n if comma < 0 else comma
        namespace = text[i:end].partition("?")[0]
        i = end + 1 if comma >= 0 else n
    ack_id = None
    j = i
    while j < n and "0" <= text[j] <= "9":
        j += 1
    if j > i:
        if j - i > 18:
            raise ProtocolError(f"ack id too long in {text[:80]!r}")
        ack_id = int(text[i:j])
        i = j
    data = None
    if i < n:
        try:
            data, end = _decoder.raw_decode(text, i)
        except ValueError as exc:
            raise ProtocolError(f"bad JSON in {PACKET_NAMES[packet_type]} packet {text[:80]!r}: {exc}") from None
        if end != n:
            raise ProtocolError(f"trailing data after JSON in {text[:80]!r}")
    _check_shape(packet_type, data, text)
    return Packet(packet_type, namespace, data, ack_id, attachments)


def _check_shape(packet_type: int, data: Any, text: str) -> None:
    if packet_type in (EVENT, BINARY_EVENT):
        if not (isinstance(data, list) and data and isinstance(data[0], str)):
            raise ProtocolError(f"EVENT data must be a list starting with the event name: {text[:80]!r}")
    elif packet_type in (ACK, BINARY_ACK):
        if not isinstance(data, list):
            raise ProtocolError(f"ACK data must be a list of arguments: {text[:80]!r}")
    elif packet_type == CONNECT and data is not None and not isinstance(data, dict):
        raise ProtocolError(f"CONNECT data must be an object: {text[:80]!r}")


def reconstruct(data: Any, buffers: list[bytes]) -> Any:
    """Replace ``{"_placeholder": true, "num": i}`` in ``data`` by ``buffers[i]``."""
    if isinstance(data, list):
        return [reconstruct(item, buffers) for item in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True and "num" in data:
            num = data["num"]
            if not isinstance(num, int) or not 0 <= num < len(buffers):
                raise ProtocolError(f"placeholder refers to attachment {num!r} of {len(buffers)}")
            return buffers[num]
        return {key: reconstruct(value, buffers) for key, value in data.items()}
    return data


def decode_open(text: str) -> dict[str, Any]:
    """Decode the Engine.IO OPEN payload (after the ``"0"``) and check its fields."""
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"bad JSON in Engine.IO OPEN packet {text[:80]!r}: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("sid"), str):
        raise ProtocolError(f"Engine.IO OPEN packet without a sid: {text[:80]!r}")
    # Zero is allowed: python-engineio truncates sub-second intervals to 0.
    for key in ("pingInterval", "pingTimeout"):
        value = info.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ProtocolError(f"Engine.IO OPEN packet has bad {key} {value!r}")
    return info
