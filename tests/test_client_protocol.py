"""Engine.IO / Socket.IO packet encoding and decoding, without a network."""
from __future__ import annotations

import pytest

from loadtests.wire import protocol
from loadtests.wire.errors import ProtocolError


def test_event_with_ack_id_on_default_namespace():
    text, attachments = protocol.encode_event("echo", ({"a": 1},), "/", 7)
    assert text == '427["echo",{"a":1}]'
    assert attachments == []


def test_event_on_a_namespace_without_ack():
    text, _ = protocol.encode_event("join", ({"room": "r"},), "/bench")
    assert text == '42/bench,["join",{"room":"r"}]'


def test_binary_event_gets_placeholders_in_order():
    text, attachments = protocol.encode_event("echo", ({"x": [b"ab", bytearray(b"cd")]}, b"ef"), "/bench", 3)
    assert text == (
        '453-/bench,3["echo",{"x":[{"_placeholder":true,"num":0},'
        '{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":2}]'
    )
    assert attachments == [b"ab", b"cd", b"ef"]


def test_binary_round_trip_through_decode_and_attachments():
    text, attachments = protocol.encode(protocol.ACK, "/", [{"blob": b"\x00\xff"}, 5], 12)
    assert text.startswith("461-12")
    packet = protocol.decode(text[1:])
    assert (packet.type, packet.ack_id, packet.attachments) == (protocol.BINARY_ACK, 12, 1)
    assert packet.add_attachment(attachments[0]) is True
    assert packet.data == [{"blob": b"\x00\xff"}, 5]


def test_connect_and_disconnect_packets():
    assert protocol.encode_connect("/") == "40"
    assert protocol.encode_connect("/bench", {"token": "t"}) == '40/bench,{"token":"t"}'
    assert protocol.encode_disconnect("/bench") == "41/bench,"
    assert protocol.encode_disconnect("/") == "41"


def test_decode_connect_reply_and_error():
    ok = protocol.decode('0/bench,{"sid":"abc"}')
    assert (ok.type, ok.namespace, ok.data) == (protocol.CONNECT, "/bench", {"sid": "abc"})
    err = protocol.decode('4{"message":"unauthorized"}')
    assert (err.type, err.namespace, err.data) == (protocol.CONNECT_ERROR, "/", {"message": "unauthorized"})


def test_decode_namespace_disconnect_without_comma():
    packet = protocol.decode("1/bench")
    assert (packet.type, packet.namespace, packet.data) == (protocol.DISCONNECT, "/bench", None)


def test_decode_event_with_ack_id_and_namespace():
    packet = protocol.decode('2/bench,42["tick",{"seq":1}]')
    assert (packet.type, packet.namespace, packet.ack_id, packet.data) == (
        protocol.EVENT, "/bench", 42, ["tick", {"seq": 1}])


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("9[]", "unknown Socket.IO packet type"),
        ('2["echo",', "bad JSON"),
        ('2["echo"]xyz', "trailing data"),
        ("2{}", "EVENT data must be a list"),
        ('2[1,2]', "EVENT data must be a list"),
        ("3{}", "ACK data must be a list"),
        ("5-[]", "attachment count"),
        ('50-["a"]', "announces 0 attachments"),
        ('0"sid"', "CONNECT data must be an object"),
        ("2" + "9" * 30 + '["a"]', "ack id too long"),
    ],
)
def test_decode_rejects_malformed_packets_with_a_clear_message(text, fragment):
    with pytest.raises(ProtocolError, match=fragment):
        protocol.decode(text)


def test_placeholder_out_of_range_is_a_protocol_error():
    packet = protocol.decode('51-["echo",{"_placeholder":true,"num":3}]')
    with pytest.raises(ProtocolError, match="attachment 3 of 1"):
        packet.add_attachment(b"x")


def test_bad_inputs_to_encoders_name_the_problem():
    with pytest.raises(ValueError, match="reserved"):
        protocol.encode_event("connect", ())
    with pytest.raises(ValueError, match="non-empty str"):
        protocol.encode_event("", ())
    with pytest.raises(ValueError, match="namespace must start with '/'"):
        protocol.encode_event("echo", (), "bench")
    with pytest.raises(ValueError, match="auth must be a dict"):
        protocol.encode_connect("/", "token")
    with pytest.raises(TypeError, match="not JSON serializable"):
        protocol.encode_event("echo", (object(),))


def test_decode_open_checks_fields():
    info = protocol.decode_open('{"sid":"s","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000}')
    assert info["pingInterval"] == 300
    with pytest.raises(ProtocolError, match="without a sid"):
        protocol.decode_open('{"pingInterval":1,"pingTimeout":1}')
    with pytest.raises(ProtocolError, match="bad pingTimeout"):
        protocol.decode_open('{"sid":"s","pingInterval":1,"pingTimeout":-5}')
    with pytest.raises(ProtocolError, match="bad pingInterval"):
        protocol.decode_open('{"sid":"s","pingInterval":"soon","pingTimeout":1}')
    with pytest.raises(ProtocolError, match="bad JSON"):
        protocol.decode_open("{nope")


@pytest.mark.parametrize(
    "namespace, data, ack_id",
    [("/", ["echo", {"a": [1, 2.5, None, "é"]}], 9), ("/bench", ["broadcast", {"room": None}], None)],
)
def test_python_socketio_decodes_what_we_encode(namespace, data, ack_id):
    from socketio.packet import Packet

    text, _ = protocol.encode(protocol.EVENT, namespace, data, ack_id)
    theirs = Packet(encoded_packet=text[1:])
    assert (theirs.packet_type, theirs.namespace or "/", theirs.data, theirs.id) == (
        protocol.EVENT, namespace, data, ack_id)


def test_we_decode_what_python_socketio_encodes():
    from socketio.packet import Packet

    theirs = Packet(protocol.ACK, data=[{"recipients": 3}], namespace="/bench", id=44).encode()
    packet = protocol.decode(theirs)
    assert (packet.type, packet.namespace, packet.ack_id, packet.data) == (
        protocol.ACK, "/bench", 44, [{"recipients": 3}])


@pytest.mark.parametrize("namespace", ["/", "/bench"])
def test_a_plain_ack_reads_the_same_on_the_short_path(namespace):
    head = protocol.ack_head(namespace)
    for ack_id, args in [(1, []), (12345, ["x" * 64]), (10**17, [{"a": [1, 2]}, None, "é"])]:
        text, _ = protocol.encode(protocol.ACK, namespace, args, ack_id)
        packet = protocol.decode(text[1:])
        assert protocol.decode_ack(text, head) == (packet.ack_id, packet.data) == (ack_id, args)


@pytest.mark.parametrize("message", [
    '42["echo",1]',              # an event, not an ack
    '43/bench,5["x"]',           # another namespace than "/"
    '43["no id"]',               # no ack id: decode() names the error
    '435{"not":"a list"}',       # arguments that are not a list
    '435["cut',                  # bad JSON
    '435["x"]trailing',          # trailing data
    '43' + '9' * 19 + '["x"]',   # ack id too long
    '43٣["x"]',                  # a non-ASCII digit
    '463-5[{"_placeholder":true,"num":0}]',  # a binary ack
])
def test_anything_but_a_plain_ack_is_left_to_decode(message):
    assert protocol.decode_ack(message, protocol.ack_head("/")) is None
