"""A stand-in for the daemon's reporting side, run as a process tests can SIGKILL: events → outbox → MQTT.

    python -m tools.mqtt_producer OUTBOX PORT START COUNT [DELAY_S]

Prints `committed <event_id>` once each event is durably in the outbox, and
`drained` when the outbox is empty at the end.
"""

from __future__ import annotations

import sys
import time

from edge.core.catalog import Product
from edge.core.config import MQTTConfig
from edge.reporting.events import encode, make_event
from edge.reporting.mqtt import MQTTReporter
from edge.reporting.outbox import Outbox


def main() -> int:
    outbox_path, port, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    outbox = Outbox(outbox_path, max_events=1_000_000)
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=port, client_id="shelfid-test-dev"), "test-dev", outbox, "shelf")
    reporter.set_catalog("shelf", 3)
    reporter.start()
    reporter.connected.wait(10)  # as the daemon: events start once it is up (they would queue otherwise)
    product = Product("cha-mate-limao", "7891234000011", "Chá Mate Limão")
    for i in range(start, start + count):
        now = time.time()
        event = make_event(kind="identified", seq=outbox.next_seq(), device="test-dev", camera="cam0", ts=now, first_seen=now - 0.5,
                           track_id=i, product=product, guess=None, similarity=0.9, inliers=120, inlier_ratio=0.8,
                           confidence=0.99, bbox_norm=(0.1, 0.2, 0.3, 0.9), catalog_id="shelf", catalog_version=3)
        outbox.add(event["event_id"], reporter.topics["events"], encode(event))
        print(f"committed {event['event_id']}", flush=True)
        reporter.wake()
        if delay:
            time.sleep(delay)
    while outbox.size:
        time.sleep(0.05)
    print("drained", flush=True)
    reporter.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
