"""Socket.IO packets with a bound on binary attachments.

A binary packet announces how many attachments follow, and the server keeps
every attachment in memory until the count is reached. python-socketio
accepts counts up to ten digits, so one client announcing a billion
attachments could make the server hold every binary frame it sends, for as
long as it stays connected (measured: +350 MB from one client). The target
refuses a packet announcing more than :data:`MAX_ATTACHMENTS`; what one
client can hold back is then at most that many frames of
``--max-http-buffer-size`` bytes.
"""
from __future__ import annotations

from typing import Any

from socketio import packet

#: binary attachments one packet may announce (the contract's events need at most a handful)
MAX_ATTACHMENTS = 10


class BoundedPacket(packet.Packet):
    """python-socketio's packet, refusing an attachment count above :data:`MAX_ATTACHMENTS`."""

    def decode(self, encoded_packet: Any) -> int:
        count = super().decode(encoded_packet) or 0
        if count > MAX_ATTACHMENTS:
            raise ValueError(f"a packet announcing {count} binary attachments (at most {MAX_ATTACHMENTS})")
        return count
