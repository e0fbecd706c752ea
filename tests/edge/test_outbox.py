"""The durable outbox on real SQLite files: order, bounds, and surviving kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

from edge.reporting.outbox import Outbox
from tests.conftest import REPO


def test_events_come_back_in_order_until_acknowledged(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    seqs = [box.add(f"id-{i}", "shelfid/dev/events", f"payload {i}".encode()) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    box.ack(seqs[1])
    assert [p.event_id for p in box.pending()] == ["id-0", "id-2", "id-3", "id-4"]
    assert [p.event_id for p in box.pending(after_seq=seqs[2])] == ["id-3", "id-4"]
    assert box.pending()[0].payload == b"payload 0" and box.size == 4


def test_seq_is_never_reused_even_after_the_newest_is_acknowledged(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    last = box.add("a", "t", b"")
    box.ack(last)
    box.close()
    reopened = Outbox(tmp_path / "outbox.sqlite")
    assert reopened.next_seq() == last + 1 and reopened.add("b", "t", b"") == last + 1


def test_count_bound_drops_the_oldest_and_counts_them_persistently(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite", max_events=10)
    for i in range(25):
        box.add(f"id-{i}", "t", b"x")
    assert box.size == 10 and box.dropped == 15
    assert [p.event_id for p in box.pending()][:2] == ["id-15", "id-16"]
    box.close()
    assert Outbox(tmp_path / "outbox.sqlite", max_events=10).dropped == 15


def test_age_bound_drops_events_older_than_the_limit(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite", max_age_s=60)
    box.add("old", "t", b"", now=1000.0)
    box.add("new", "t", b"", now=1100.0)
    assert [p.event_id for p in box.pending()] == ["new"] and box.dropped == 1


def test_duplicate_event_id_is_refused_and_nothing_half_written(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite")
    box.add("same", "t", b"1")
    try:
        box.add("same", "t", b"2")
    except sqlite3.IntegrityError:
        pass
    else:
        raise AssertionError("a duplicate event_id was accepted")
    assert [p.payload for p in box.pending()] == [b"1"]


WRITER = """
import sys
from edge.reporting.outbox import Outbox
box = Outbox(sys.argv[1])
i = 0
while True:
    seq = box.add(f"id-{i}", "t", b"x" * 200)
    print(seq, flush=True)  # printed only after the commit returned
    i += 1
"""


def test_committed_events_survive_kill_9(tmp_path):
    path = tmp_path / "outbox.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    confirmed = [int(writer.stdout.readline()) for _ in range(300)]
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    box = Outbox(path)
    present = {p.seq for p in box.pending(limit=100_000)}
    assert set(confirmed) <= present
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert box.add("after-restart", "t", b"") > max(present)
