"""Where events go: the durable outbox feeding MQTT, or JSON lines on disk when MQTT is off."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

from edge.reporting.events import encode
from edge.reporting.mqtt import MQTTReporter
from edge.reporting.outbox import Outbox

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def emit(self, event: dict) -> None: ...

    def next_seq(self) -> int: ...

    def publish_stats(self, stats: dict) -> None:
        """The live stats message (where there is a broker to send it to)."""

    def set_catalog(self, catalog_id: str, version: int) -> None:
        """The catalog in use, for the retained `<device>/catalog` topic (where there is one)."""

    def health(self) -> dict:
        """The reporting side's numbers for the stats and the page: broker connection and outbox, {} without a broker."""

    def set_zone_state(self, zone: str, state: dict | None) -> None:
        """A shelf zone's state, for its retained `<device>/zones/<zone>/state` topic (None: the zone is gone)."""

    def close(self) -> None: ...


class LocalSink:
    """The part of the seam a sink without a broker shares: no stats topic, no catalog topic, no health to add."""

    def publish_stats(self, stats: dict) -> None:
        pass

    def set_catalog(self, catalog_id: str, version: int) -> None:
        pass

    def health(self) -> dict:
        return {}

    def set_zone_state(self, zone: str, state: dict | None) -> None:
        pass


class OutboxSink:
    """Commit to the outbox (durably), then wake the MQTT sender."""

    def __init__(self, outbox: Outbox, reporter: MQTTReporter):
        self.outbox, self.reporter = outbox, reporter

    def next_seq(self) -> int:
        return self.outbox.next_seq()

    def emit(self, event: dict) -> None:
        self.outbox.add(event["event_id"], self.reporter.topics["events"], encode(event))
        self.reporter.wake()

    def publish_stats(self, stats: dict) -> None:
        self.reporter.publish_stats(stats)

    def set_catalog(self, catalog_id: str, version: int) -> None:
        self.reporter.set_catalog(catalog_id, version)

    def health(self) -> dict:
        return self.reporter.stats()

    def set_zone_state(self, zone: str, state: dict | None) -> None:
        self.reporter.set_zone_state(zone, None if state is None else encode(state))

    def close(self) -> None:
        self.reporter.stop()
        if self.outbox.size:
            log.warning("stopped with %d events in the outbox %s, not acknowledged by the broker %s:%d: they are sent at the "
                        "next start (nothing is lost)", self.outbox.size, self.outbox.path, self.reporter.config.host,
                        self.reporter.config.port)
        self.outbox.close()


class JSONLinesSink(LocalSink):
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")
        self.seq = sum(1 for _ in open(path, encoding="utf-8"))

    def next_seq(self) -> int:
        return self.seq + 1

    def emit(self, event: dict) -> None:
        self.file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.file.flush()
        self.seq = event["seq"]

    def close(self) -> None:
        self.file.close()


class MemorySink(LocalSink):
    """Keeps events in a list: benchmarks and tests."""

    def __init__(self):
        self.events: list[dict] = []

    def next_seq(self) -> int:
        return len(self.events) + 1

    def emit(self, event: dict) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass
