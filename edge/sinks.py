"""Where events go: the durable outbox feeding MQTT, or JSON lines on disk when MQTT is off."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

from edge.events import encode
from edge.outbox import Outbox
from edge.reporter import MQTTReporter

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def emit(self, event: dict) -> None: ...

    def next_seq(self) -> int: ...

    def close(self) -> None: ...


class OutboxSink:
    """Commit to the outbox (durably), then wake the MQTT sender."""

    def __init__(self, outbox: Outbox, reporter: MQTTReporter):
        self.outbox, self.reporter = outbox, reporter

    def next_seq(self) -> int:
        return self.outbox.next_seq()

    def emit(self, event: dict) -> None:
        self.outbox.add(event["event_id"], self.reporter.topics["events"], encode(event))
        self.reporter.wake()

    def close(self) -> None:
        self.reporter.stop()
        if self.outbox.size:
            log.warning("stopped with %d events in the outbox %s, not acknowledged by the broker %s:%d: they are sent at the "
                        "next start (nothing is lost)", self.outbox.size, self.outbox.path, self.reporter.config.host,
                        self.reporter.config.port)
        self.outbox.close()


class JSONLinesSink:
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


class MemorySink:
    """Keeps events in a list: benchmarks and tests."""

    def __init__(self):
        self.events: list[dict] = []

    def next_seq(self) -> int:
        return len(self.events) + 1

    def emit(self, event: dict) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass
