"""Catalog announcements heard on MQTT: parsed defensively and let through sparingly.

Anyone who may publish on `<prefix>/catalogs/<id>/latest` reaches every device
that follows the catalog, so a payload is hostile until shown otherwise: its
size is capped before it is parsed (200,000 `[` once made `json.loads` raise
RecursionError inside paho's network thread and silenced the device), and an
announcement only wakes a sync when it names a version above the active one,
at most `burst` at once and one per `interval_s` after that.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

MAX_ANNOUNCEMENT_BYTES = 1024  # the server's announcement is ~40 bytes
MAX_CATALOG_VERSION = 2 ** 31 - 1  # the manifest schema's bound too


def announcement_payload(catalog_id: str, version: int) -> bytes:
    """What the catalog server publishes (retained) when it publishes `version`; parse_announcement reads it."""
    if type(version) is not int or not 1 <= version <= MAX_CATALOG_VERSION:
        raise ValueError(f"catalog version {version!r} is outside 1..{MAX_CATALOG_VERSION}")
    return json.dumps({"catalog": catalog_id, "version": version}).encode()


def parse_announcement(payload: bytes) -> int:
    """The version an announcement names; ValueError says why anything else is not one."""
    if len(payload) > MAX_ANNOUNCEMENT_BYTES:
        raise ValueError(f"{len(payload)} bytes, over the {MAX_ANNOUNCEMENT_BYTES} byte cap")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested arrays
        raise ValueError(f"not JSON ({type(exc).__name__})") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if type(version) is not int or not 1 <= version <= MAX_CATALOG_VERSION:  # type(): a bool is not a version
        raise ValueError(f"expected an object with an integer version in 1..{MAX_CATALOG_VERSION}")
    return version


class AnnouncementGate:
    """Admits an announced version when it is above `active()` and the rate allows (a token bucket)."""

    def __init__(self, active: Callable[[], int], burst: int = 3, interval_s: float = 20.0,
                 clock: Callable[[], float] = time.monotonic):
        self.active, self.burst, self.interval_s, self.clock = active, burst, interval_s, clock
        self._tokens, self._refilled = float(burst), clock()
        self._lock = threading.Lock()
        self.ignored = 0  # not newer, or over the rate: for logs and tests

    def admit(self, version: int) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) / self.interval_s)
            self._refilled = now
            if version <= self.active() or self._tokens < 1:
                self.ignored += 1
                return False
            self._tokens -= 1
            return True
