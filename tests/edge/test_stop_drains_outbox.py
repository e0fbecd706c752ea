"""`shelfid run` stopped (SIGTERM) while the broker is healthy sends what it stored before it disconnects."""

from __future__ import annotations

import pytest

from edge.core.config import MQTTConfig
from edge.reporting.events import make_event
from edge.reporting.mqtt import MQTTReporter
from edge.reporting.outbox import Outbox
from edge.reporting.sinks import OutboxSink
from tools.mqtt_harness import Broker, Recorder


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    yield broker
    broker.kill()


def emit(sink: OutboxSink, count: int) -> list[str]:
    """Events emitted as the pipeline's last ones are (pipeline.finish), just before the daemon closes its sink."""
    events = [make_event(kind="unknown", seq=sink.next_seq() + i, device="dev1", camera="cam0", ts=1000.0 + i, first_seen=1000.0,
                         track_id=i, product=None, guess=None, similarity=0.1, inliers=0, inlier_ratio=0.0, confidence=0.0,
                         bbox_norm=(0, 0, 1, 1), catalog_id="shelf", catalog_version=1) for i in range(count)]
    for event in events:
        sink.emit(event)
    return [e["event_id"] for e in events]


def test_stop_with_a_healthy_broker_sends_every_stored_event_first(broker, tmp_path, monkeypatch):
    recorder = Recorder(broker.port)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=broker.port), "dev1", outbox)
    reporter.start()
    assert reporter.connected.wait(10)
    sink = OutboxSink(outbox, reporter)
    # the sender does not get to the last events before the stop begins (the order a busy machine gives): it is not woken
    monkeypatch.setattr(reporter, "wake", lambda: None)
    ids = emit(sink, 3)
    sink.close()  # at once, as the daemon's shutdown does after pipeline.finish()
    try:
        assert Outbox(tmp_path / "outbox.sqlite").size == 0
        assert recorder.wait_for(lambda r: {e["event_id"] for e in r.events()} >= set(ids))
        assert recorder.wait_for(lambda r: r.payloads("/status")[-1:] == [b"offline"])  # and then said offline
    finally:
        recorder.close()
