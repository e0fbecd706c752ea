#!/usr/bin/env python3
"""Reporting under faults, at scale: a real mosquitto restarted and the reporting process SIGKILLed mid-stream.

    python -m tools.fault_mqtt --events 10000 --broker-restarts 5 --daemon-kills 3

Ends with one line `sent=… received=… lost=… duplicated=…` (sent: events the
device committed to its outbox; received: distinct event_ids the subscriber
got). Exit 0 only when lost=0.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tqdm import tqdm

from tools.mqtt_harness import Broker, Producer, Recorder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events to commit in all")
    parser.add_argument("--broker-restarts", type=int, default=5, help="broker stops and restarts during the stream")
    parser.add_argument("--daemon-kills", type=int, default=3, help="SIGKILLs of the reporting process during the stream")
    parser.add_argument("--delay", type=float, default=0.001, help="seconds between events")
    parser.add_argument("--outage-events", type=int, default=200, help="events committed while the broker is down")
    args = parser.parse_args()

    # each kind spread evenly over the stream, the two kinds interleaved
    spread = [((i + 0.5) / args.broker_restarts, "restart") for i in range(args.broker_restarts)]
    spread += [((i + 0.5) / args.daemon_kills, "kill") for i in range(args.daemon_kills)]
    faults = [kind for _, kind in sorted(spread)]
    at = [round(args.events * (i + 1) / (len(faults) + 1)) for i in range(len(faults))]
    committed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker").start()
        recorder = Recorder(broker.port)
        outbox = Path(tmp) / "outbox.sqlite"
        bar = tqdm(total=args.events, desc="events committed", unit="ev")
        producer = Producer(outbox, broker.port, 0, args.events, args.delay)
        for fault, point in zip(faults, at):
            producer.read(until_committed=point - len(committed))
            if fault == "kill":
                producer.kill()
                committed += producer.committed
                bar.update(len(producer.committed))
                producer = Producer(outbox, broker.port, len(committed), args.events - len(committed), args.delay)
            else:
                broker.stop()
                producer.read(until_committed=point - len(committed) + args.outage_events)
                broker.start()
            tqdm.write(f"{fault} after {len(committed) + len(producer.committed)} committed events")
        producer.finish()
        committed += producer.committed
        bar.update(len(producer.committed))
        bar.close()
        wanted = set(committed)
        recorder.wait_for(lambda r: wanted <= {e["event_id"] for e in r.events()}, timeout=120)
        ids = [e["event_id"] for e in recorder.events()]
        recorder.close()
        broker.kill()
    lost = len(wanted - set(ids))
    print(f"sent={len(committed)} received={len(set(ids))} lost={lost} duplicated={len(ids) - len(set(ids))}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
