"""Durable outbox of events: SQLite in WAL mode, one writer, fsync on every commit.

An event is committed here before it is published and deleted only when the
broker acknowledges it, so a broker outage, a network cut, kill -9 or a power
loss loses nothing. Bounded by count and age: past either bound the oldest
events are dropped, and the drops are counted (persistently) for the stats.

A full disk is one more bound: add() then stores nothing, returns None and
counts the event as dropped (one warning per episode, not one per event), so
the daemon keeps identifying; the count joins the persistent one with the first
event stored after space returns. Dropped, not held in memory for later: a
full disk lasts hours, memory is not durable, and an event that add() did not
return a seq for was never reported as stored. An acknowledgement that cannot
be written leaves its event in the outbox, to be sent again (at-least-once).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from models.safe_write import make_dirs

log = logging.getLogger(__name__)
SQLITE_FULL = 13

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


def is_disk_full(exc: sqlite3.Error) -> bool:
    """SQLite's 'database or disk is full' (the error code attribute is Python 3.11+; 3.10 has the text)."""
    return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "database or disk is full" in str(exc)


class Outbox:
    """Thread-safe: the pipeline adds, the MQTT network thread acknowledges."""

    def __init__(self, path: Path | str, max_events: int = 100_000, max_age_s: float = 7 * 86400):
        self.path, self.max_events, self.max_age_s = Path(path), max_events, max_age_s
        make_dirs(self.path.parent)  # durable: a folder whose name was never fsynced is lost at a power cut, outbox and all
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # WAL + NORMAL can lose the last commits on power loss
        # the WAL file is reused, not shrunk, after each checkpoint: cut it back to 1 MB so a burst does not keep its size
        self._db.execute("PRAGMA journal_size_limit=1048576")
        self._db.executescript(SCHEMA)
        self._unrecorded_drops = 0  # dropped while the disk was full, not yet in the counters table
        self.disk_full = False  # the last add() found no space (cleared by the next one that stores)

    def next_seq(self) -> int:
        """The seq the next added event will get (AUTOINCREMENT never reuses one, even after deletes)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return (row[0] if row else 0) + 1

    def add(self, event_id: str, topic: str, payload: bytes, now: float | None = None) -> int | None:
        """Commit one event (durably) and apply the bounds; returns its seq, or None when the disk is full
        (the event is dropped and counted)."""
        now = time.time() if now is None else now
        with self._lock:
            try:
                seq = self._commit(event_id, topic, payload, now)
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc):
                    raise
                self._dropped_for_space()
                return None
            if self.disk_full:
                log.info("outbox %s: space is back, events are stored again (%d dropped while the disk was full)",
                         self.path, self._unrecorded_drops)
            self.disk_full, self._unrecorded_drops = False, 0
        return seq

    def _commit(self, event_id: str, topic: str, payload: bytes, now: float) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            seq = self._db.execute("INSERT INTO events (event_id, topic, payload, created) VALUES (?, ?, ?, ?)",
                                   (event_id, topic, payload, now)).lastrowid
            self._enforce_bounds(now, self._unrecorded_drops)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite rolls back by itself after some errors, a full disk among them
                self._db.execute("ROLLBACK")
            raise
        return seq

    def _dropped_for_space(self) -> None:
        if not self.disk_full:
            log.warning("outbox %s: no space left on its filesystem: new events are dropped (counted in outbox_dropped) "
                        "until space returns; %d events still wait to be sent", self.path, self._size())
        self.disk_full = True
        self._unrecorded_drops += 1

    def _enforce_bounds(self, now: float, dropped: int = 0) -> None:
        dropped += self._db.execute("DELETE FROM events WHERE created < ?", (now - self.max_age_s,)).rowcount
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
        """The broker has the event: forget it (on a full disk it stays, and is sent again after a reconnect)."""
        with self._lock:
            try:
                self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc):
                    raise
                log.debug("outbox %s: acknowledgement of seq %d not recorded (disk full); it will be sent again", self.path, seq)

    @property
    def size(self) -> int:
        with self._lock:
            return self._size()

    def _size(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    @property
    def dropped(self) -> int:
        """Events dropped by the bounds, and by a full disk (those counted in memory until they can be written)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
            return (row[0] if row else 0) + self._unrecorded_drops

    def close(self) -> None:
        with self._lock:
            self._db.close()
