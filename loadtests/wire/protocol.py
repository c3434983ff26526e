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
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from loadtests.wire.errors import ProtocolError

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
#: the JSON scanner behind ``raw_decode``, called directly: ``(value, end)`` or StopIteration
_scan_once = _decoder.scan_once  # type: ignore[attr-defined]
#: "4" + packet type: the head of a Socket.IO packet without attachments
_HEADS = tuple(EIO_MESSAGE + str(n) for n in range(len(PACKET_NAMES)))


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
# The C encoder that JSONEncoder.encode builds on every call, built once. It
# keeps no circular-reference markers (they would be state shared between
# callers): a cycle ends in RecursionError, and the checking encoder above
# then names it, as before.
_encode_chunks = (
    c_make_encoder(None, _no_binary, encode_basestring_ascii, None, ":", ",", False, False, True)
    if c_make_encoder is not None else None
)


def _dumps(data: Any) -> str:
    """Compact JSON of ``data``; raises :class:`_HasBinary` on the first binary value."""
    if _encode_chunks is not None:
        try:
            return "".join(_encode_chunks(data, 0))
        except RecursionError:
            pass  # a cycle, or data nested too deep: the checking encoder says which
    return _fast_encoder.encode(data)


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
            body = _dumps(data)
        except _HasBinary:
            if packet_type not in (EVENT, ACK):
                raise ValueError(f"{PACKET_NAMES[packet_type]} packets cannot carry binary data") from None
            body, attachments = _dumps_with_attachments(data)
    head = f"{EIO_MESSAGE}{packet_type + 3}{len(attachments)}-" if attachments else _HEADS[packet_type]
    if namespace != "/":
        head += namespace_prefix(namespace)
    if ack_id is not None:
        return f"{head}{ack_id}{body}", attachments
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
    packet_type = ord(text[0]) - 48
    if not 0 <= packet_type <= 6:
        raise ProtocolError(f"unknown Socket.IO packet type {text[0]!r} in {text[:80]!r}")
    n = len(text)
    i = 1
    attachments = 0
    if packet_type >= BINARY_EVENT:
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
            data, end = _scan_once(text, i)
        except StopIteration as stop:  # what raw_decode turns into "Expecting value"
            error = json.JSONDecodeError("Expecting value", text, stop.value)
            raise ProtocolError(f"bad JSON in {PACKET_NAMES[packet_type]} packet {text[:80]!r}: {error}") from None
        except ValueError as exc:
            raise ProtocolError(f"bad JSON in {PACKET_NAMES[packet_type]} packet {text[:80]!r}: {exc}") from None
        if end != n:
            raise ProtocolError(f"trailing data after JSON in {text[:80]!r}")
    if packet_type != ACK or data.__class__ is not list:  # an ACK's list is the common case: nothing to check
        _check_shape(packet_type, data, text)
    return Packet(packet_type, namespace, data, ack_id, attachments)


def ack_head(namespace: str = "/") -> str:
    """What a plain ACK message for ``namespace`` starts with: ``"43"`` and the namespace prefix."""
    return EIO_MESSAGE + str(ACK) + namespace_prefix(namespace)


def decode_ack(message: str, head: str) -> tuple[int, list[Any]] | None:
    """``(ack id, arguments)`` of a plain ACK message starting with ``head`` (see :func:`ack_head`).

    The common message of a load test, read without building a
    :class:`Packet`: ``message`` is the whole Engine.IO text message. None
    for anything else, malformed ACKs included: :func:`decode` the packet
    then (it names what is wrong).
    """
    if not message.startswith(head):
        return None
    i = len(head)
    j = message.find("[", i, i + 19)  # an ack id of 1 to 18 digits, then the argument list
    if j <= i:
        return None
    digits = message[i:j]
    if not (digits.isdigit() and digits.isascii()):
        return None
    try:
        data, end = _scan_once(message, j)
    except (StopIteration, ValueError):
        return None
    if end != len(message):
        return None
    return int(digits), data


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
