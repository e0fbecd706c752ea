"""systemd's notify protocol (READY=1, WATCHDOG=1, STATUS=...) without a dependency: one datagram per message."""

from __future__ import annotations

import os
import socket

# systemd reads its notify socket at once; one nobody reads (a hung manager, a test) fills after a few datagrams, and a
# blocking send would then stop the frame loop with it (seen: a daemon's STOPPING=1 waited two minutes)
SEND_TIMEOUT_S = 0.1


def notify(message: str) -> bool:
    """Send to $NOTIFY_SOCKET; False when not run under systemd, the socket is gone, or nobody reads it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.sendto(message.encode(), address)
        return True
    except OSError:
        return False
