"""RFC 6455 websocket framing for a client, without I/O.

Just what a Socket.IO client needs: the opening handshake, masked frames out,
and an incremental parser for the server's frames that enforces the rules a
client must (no masking from the server, no extensions, bounded control
frames, valid UTF-8 text, a message size limit).
"""
from __future__ import annotations

import base64
import hashlib
import os
import random
import struct
from typing import Union

from loadtests.wire.errors import ConnectError, ProtocolError

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_KNOWN_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002

_getrandbits = random.Random().getrandbits  # seeded from os.urandom
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 16384

#: a parsed message: (opcode, payload); text payloads are str, others bytes
Message = tuple[int, Union[str, bytes]]


# --- handshake ----------------------------------------------------------


def make_key() -> str:
    """A fresh Sec-WebSocket-Key."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def handshake_request(host: str, target: str, key: str, headers: dict[str, str] | None = None) -> bytes:
    """The HTTP/1.1 upgrade request for ``target`` (path and query) on ``host``."""
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    for name, value in (headers or {}).items():
        if not name or any(c in f"{name}{value}" for c in "\r\n\0") or ":" in name:
            raise ValueError(f"header {name!r} cannot go into the upgrade request as it is")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def split_response_head(buffer: bytes) -> tuple[bytes, bytes] | None:
    """(head, rest) once ``buffer`` holds the whole response head, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEAD:
            raise ProtocolError(f"handshake response head longer than {_MAX_HEAD} bytes")
        return None
    return buffer[:end], buffer[end + 4 :]


def check_handshake_response(head: bytes, key: str, url: str, body: bytes = b"") -> None:
    """Raise unless ``head`` is a ``101`` upgrade answering ``key``.

    A refusal's message carries the first line of the body that came with the
    head: the reference target names its limit there ("connection limit").
    """
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/"):
        raise ProtocolError(f"websocket handshake to {url}: not an HTTP response: {lines[0][:80]!r}")
    if status[1] != "101":
        said = body.decode("utf-8", "replace").strip().splitlines()[:1]
        detail = f": {said[0][:120]}" if said else ""
        raise ConnectError(f"websocket handshake to {url} failed: {' '.join(status[1:])[:120]}{detail}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    if fields.get("upgrade", "").lower() != "websocket":
        raise ProtocolError(f"websocket handshake to {url}: missing 'Upgrade: websocket'")
    if fields.get("sec-websocket-accept") != accept_for(key):
        raise ProtocolError(f"websocket handshake to {url}: wrong Sec-WebSocket-Accept")
    if fields.get("sec-websocket-extensions"):
        raise ProtocolError(f"websocket handshake to {url}: server chose extensions we did not offer")


# --- frames out ---------------------------------------------------------


def mask(key: bytes, payload: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (RFC 6455 5.3)."""
    n = len(payload)
    if not n:
        return b""
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(n, "little")


# For payloads of up to 125 bytes (one-byte length): n -> (an int with a 1 in
# every 4-byte word, the low n bytes set). ``key * repeat`` is the key
# repeated, so masking is one multiplication and one XOR of ints.
_SHORT_MASKS = [
    (int.from_bytes(b"\x01\x00\x00\x00" * (n // 4 + 1), "little"), (1 << (8 * n)) - 1) for n in range(126)
]


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    first = 0x80 | opcode
    # Masking keys only have to be unpredictable to scripts in a browser;
    # the Mersenne Twister (seeded from os.urandom) saves a getrandom(2)
    # system call per frame.
    k = _getrandbits(32)
    key = k.to_bytes(4, "little")
    if n < 126:
        repeat, low = _SHORT_MASKS[n]
        masked = (int.from_bytes(payload, "little") ^ (k * repeat & low)).to_bytes(n, "little")
        return bytes((first, 0x80 | n)) + key + masked
    head = struct.pack("!BBH", first, 0xFE, n) if n < 65536 else struct.pack("!BBQ", first, 0xFF, n)
    return head + key + mask(key, payload)


def encode_close(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """(code, reason) of a close frame's payload."""
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise ProtocolError("close frame with a 1-byte payload")
    code = struct.unpack("!H", payload[:2])[0]
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError("close frame reason is not valid UTF-8") from None
    return code, reason


# --- frames in ----------------------------------------------------------


class FrameParser:
    """Turns the bytes a server sends into whole messages.

    ``feed()`` returns the complete messages so far, in order; control
    frames (close, ping, pong) come out as their own messages, even between
    the fragments of a data message.
    """

    __slots__ = ("max_message_bytes", "_buf", "_need", "_frag_opcode", "_frag_parts", "_frag_size")

    def __init__(self, max_message_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self._need = 2  # bytes the next frame needs before parsing is worth it
        self._frag_opcode: int | None = None
        self._frag_parts: list[bytes] = []
        self._frag_size = 0

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf
        if not buf and self._frag_opcode is None and len(data) >= 2:
            # The common case first: ``data`` is one whole, final, unmasked
            # text frame of at most 125 bytes (b1 < 126: no mask bit, short length).
            b1 = data[1]
            if data[0] == 0x81 and b1 < 126 and len(data) == b1 + 2 and b1 <= self.max_message_bytes:
                try:
                    return [(OP_TEXT, data[2:].decode())]
                except UnicodeDecodeError:
                    raise ProtocolError("websocket text message is not valid UTF-8") from None
        buf += data
        if len(buf) < self._need:
            return []
        out: list[Message] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            if b0 & 0x70:
                raise ProtocolError(f"websocket frame with reserved bits set (0x{b0:02x}); no extension was negotiated")
            opcode = b0 & 0x0F
            if opcode not in _KNOWN_OPCODES:
                raise ProtocolError(f"websocket frame with unknown opcode 0x{opcode:x}")
            if b1 & 0x80:
                raise ProtocolError("websocket frame from the server is masked")
            length = b1 & 0x7F
            head = 2
            if length == 126:
                head = 4
                if end - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif length == 127:
                head = 10
                if end - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if opcode >= OP_CLOSE and (length > 125 or not b0 & 0x80):
                raise ProtocolError("websocket control frame fragmented or longer than 125 bytes")
            if length > self.max_message_bytes:
                raise ProtocolError(f"websocket frame of {length} bytes exceeds the {self.max_message_bytes} limit")
            if end - pos < head + length:
                self._need = head + length
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            message = self._assemble(b0 & 0x80, opcode, payload)
            if message is not None:
                out.append(message)
        else:
            self._need = 2
        if pos:
            del buf[:pos]
        return out

    def _assemble(self, fin: int, opcode: int, payload: bytes) -> Message | None:
        if opcode >= OP_CLOSE:
            return opcode, payload
        if opcode == OP_CONTINUATION:
            if self._frag_opcode is None:
                raise ProtocolError("websocket continuation frame without a message to continue")
            self._frag_parts.append(payload)
            self._frag_size += len(payload)
            if self._frag_size > self.max_message_bytes:
                raise ProtocolError(f"websocket message exceeds the {self.max_message_bytes} byte limit")
            if not fin:
                return None
            opcode = self._frag_opcode
            payload = b"".join(self._frag_parts)
            self._frag_opcode = None
            self._frag_parts = []
            self._frag_size = 0
        elif self._frag_opcode is not None:
            raise ProtocolError("websocket data frame inside an unfinished fragmented message")
        elif not fin:
            self._frag_opcode = opcode
            self._frag_parts = [payload]
            self._frag_size = len(payload)
            return None
        if opcode == OP_TEXT:
            try:
                return OP_TEXT, payload.decode()
            except UnicodeDecodeError:
                raise ProtocolError("websocket text message is not valid UTF-8") from None
        return opcode, payload
