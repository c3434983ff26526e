"""The websocket inbox holds a bounded number of bytes: a full inbox makes its reader wait."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from target_app.inbox_bound import BoundedInbox


def owner() -> SimpleNamespace:
    return SimpleNamespace(event=threading.Event(), connected=True)


def test_a_full_inbox_makes_the_reader_wait_until_the_consumer_takes_one() -> None:
    ws = owner()
    inbox = BoundedInbox(10, ws)
    inbox.append(b"123456")
    appended = threading.Event()
    reader = threading.Thread(target=lambda: (inbox.append(b"abcdef"), appended.set()), daemon=True)
    reader.start()
    assert not appended.wait(0.3), "the reader should wait: 12 bytes would pass the 10-byte bound"
    assert ws.event.is_set(), "a waiting reader wakes the consumer"
    assert inbox.pop(0) == b"123456"
    assert appended.wait(2), "taking a message makes room"
    assert list(inbox) == [b"abcdef"] and inbox.bytes == 6


def test_one_message_larger_than_the_bound_still_passes_alone() -> None:
    inbox = BoundedInbox(4, owner())
    inbox.append("x" * 100)  # the server's own size limit judges it, not the inbox
    assert inbox.bytes == 100


def test_a_reader_waiting_on_a_closed_connection_drops_the_message_and_returns() -> None:
    ws = owner()
    inbox = BoundedInbox(4, ws)
    inbox.append(b"abcd")
    ws.connected = False
    started = time.monotonic()
    inbox.append(b"efgh")
    assert time.monotonic() - started < 0.5
    assert list(inbox) == [b"abcd"]
