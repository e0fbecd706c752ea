"""Durable outbox of events: SQLite in WAL mode, one writer, fsync on every commit.

An event is committed here before it is published and deleted only when the
broker acknowledges it, so a broker outage, a network cut, kill -9 or a power
loss loses nothing. Bounded by count and age: past either bound the oldest
events are dropped, and the drops are counted (persistently) for the stats.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- per-device, monotonically increasing, never reused
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Pending:
    seq: int
    event_id: str
    topic: str
    payload: bytes
    created: float


class Outbox:
    """Thread-safe: the pipeline adds, the MQTT network thread acknowledges."""

    def __init__(self, path: Path | str, max_events: int = 100_000, max_age_s: float = 7 * 86400):
        self.path, self.max_events, self.max_age_s = Path(path), max_events, max_age_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # WAL + NORMAL can lose the last commits on power loss
        self._db.executescript(SCHEMA)

    def next_seq(self) -> int:
        """The seq the next added event will get (AUTOINCREMENT never reuses one, even after deletes)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return (row[0] if row else 0) + 1

    def add(self, event_id: str, topic: str, payload: bytes, now: float | None = None) -> int:
        """Commit one event (durably) and apply the bounds; returns its seq."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._db.execute("INSERT INTO events (event_id, topic, payload, created) VALUES (?, ?, ?, ?)",
                                       (event_id, topic, payload, now)).lastrowid
                self._enforce_bounds(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seq

    def _enforce_bounds(self, now: float) -> None:
        dropped = self._db.execute("DELETE FROM events WHERE created < ?", (now - self.max_age_s,)).rowcount
        excess = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0] - self.max_events
        if excess > 0:
            dropped += self._db.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
                                        (excess,)).rowcount
        if dropped:
            self._db.execute("INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (dropped,))

    def pending(self, after_seq: int = 0, limit: int = 500) -> list[Pending]:
        """Unacknowledged events in seq order."""
        with self._lock:
            rows = self._db.execute("SELECT seq, event_id, topic, payload, created FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (after_seq, limit)).fetchall()
        return [Pending(seq, eid, topic, bytes(payload), created) for seq, eid, topic, payload, created in rows]

    def ack(self, seq: int) -> None:
        """The broker has the event: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))

    @property
    def size(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    @property
    def dropped(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return row[0] if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
