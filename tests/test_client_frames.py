"""Websocket framing for the lean client, without a network."""
from __future__ import annotations

import struct

import pytest

from loadtests.wire import frames
from loadtests.wire.errors import ConnectError, ProtocolError


def server_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked frame as a server sends it."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def unmask_client_frame(data: bytes) -> tuple[int, bytes]:
    """Decode one masked client frame (what a server would do)."""
    assert data[0] & 0x80, "client frames are final"
    assert data[1] & 0x80, "client frames must be masked"
    n = data[1] & 0x7F
    pos = 2
    if n == 126:
        n, pos = struct.unpack("!H", data[2:4])[0], 4
    elif n == 127:
        n, pos = struct.unpack("!Q", data[2:10])[0], 10
    key, body = data[pos : pos + 4], data[pos + 4 : pos + 4 + n]
    assert len(body) == n
    return data[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(body))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_client_frames_are_masked_and_length_encoded(size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    opcode, body = unmask_client_frame(frames.encode_frame(frames.OP_BINARY, payload))
    assert opcode == frames.OP_BINARY
    assert body == payload


def test_two_frames_of_the_same_payload_use_different_masks():
    assert frames.encode_frame(frames.OP_TEXT, b"same") != frames.encode_frame(frames.OP_TEXT, b"same")


def test_parser_yields_messages_split_across_reads_byte_by_byte():
    stream = server_frame(frames.OP_TEXT, "4héllo".encode()) + server_frame(frames.OP_BINARY, b"\x00" * 300)
    parser = frames.FrameParser()
    out = []
    for i in range(len(stream)):
        out.extend(parser.feed(stream[i : i + 1]))
    assert out == [(frames.OP_TEXT, "4héllo"), (frames.OP_BINARY, b"\x00" * 300)]


def test_parser_reassembles_fragments_with_a_ping_between_them():
    stream = (
        server_frame(frames.OP_TEXT, b"42[", fin=False)
        + server_frame(frames.OP_PING, b"p")
        + server_frame(frames.OP_CONTINUATION, b'"a"', fin=False)
        + server_frame(frames.OP_CONTINUATION, b"]")
    )
    assert frames.FrameParser().feed(stream) == [(frames.OP_PING, b"p"), (frames.OP_TEXT, '42["a"]')]


@pytest.mark.parametrize(
    "stream, fragment",
    [
        (server_frame(frames.OP_TEXT, b"x", rsv=0x40), "reserved bits"),
        (server_frame(0x3, b"x"), "unknown opcode"),
        (bytes((0x81, 0x81)) + b"abcd" + b"x", "masked"),
        (server_frame(frames.OP_PING, b"x" * 126), "control frame"),
        (server_frame(frames.OP_CLOSE, b"", fin=False), "control frame"),
        (server_frame(frames.OP_CONTINUATION, b"x"), "continuation frame without"),
        (server_frame(frames.OP_TEXT, b"a", fin=False) + server_frame(frames.OP_TEXT, b"b"), "unfinished"),
        (server_frame(frames.OP_TEXT, b"\xff\xfe"), "UTF-8"),
    ],
)
def test_parser_rejects_what_a_client_must_reject(stream, fragment):
    with pytest.raises(ProtocolError, match=fragment):
        frames.FrameParser().feed(stream)


def test_parser_enforces_the_message_size_limit_before_buffering():
    parser = frames.FrameParser(max_message_bytes=1000)
    with pytest.raises(ProtocolError, match="exceeds the 1000"):
        parser.feed(server_frame(frames.OP_BINARY, b"x" * 1001)[:10])
    parser = frames.FrameParser(max_message_bytes=1000)
    with pytest.raises(ProtocolError, match="exceeds the 1000"):
        parser.feed(server_frame(frames.OP_TEXT, b"x" * 600, fin=False)
                    + server_frame(frames.OP_CONTINUATION, b"x" * 600))


def test_close_payload_round_trip_and_errors():
    opcode, body = unmask_client_frame(frames.encode_close(1000, "bye"))
    assert opcode == frames.OP_CLOSE
    assert frames.parse_close(body) == (1000, "bye")
    assert frames.parse_close(b"") == (None, "")
    with pytest.raises(ProtocolError, match="1-byte"):
        frames.parse_close(b"\x03")


def test_handshake_accept_matches_rfc_example():
    # RFC 6455 section 1.3
    assert frames.accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_response_checks():
    key = frames.make_key()
    good = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {frames.accept_for(key)}").encode()
    frames.check_handshake_response(good, key, "http://x")
    with pytest.raises(ConnectError, match="failed: 400 Bad Request"):
        frames.check_handshake_response(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0", key, "http://x")
    with pytest.raises(ProtocolError, match="wrong Sec-WebSocket-Accept"):
        frames.check_handshake_response(good.replace(frames.accept_for(key).encode(), b"bogus"), key, "http://x")
    with pytest.raises(ProtocolError, match="not an HTTP response"):
        frames.check_handshake_response(b"SSH-2.0-OpenSSH", key, "http://x")


def test_split_response_head_waits_for_the_blank_line_and_bounds_it():
    assert frames.split_response_head(b"HTTP/1.1 101 OK\r\n") is None
    assert frames.split_response_head(b"HTTP/1.1 101 OK\r\n\r\n\x81\x01a") == (b"HTTP/1.1 101 OK", b"\x81\x01a")
    with pytest.raises(ProtocolError, match="longer than"):
        frames.split_response_head(b"x" * 20000)
