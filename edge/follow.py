"""`shelfid events`: follow a device's MQTT topics and print them as a person would read them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.config import Config
from edge.reporter import apply_credentials, topics


def describe(topic: str, payload: bytes) -> str:
    """One readable line for a message on a device topic."""
    kind = topic.rsplit("/", 1)[-1]
    text = payload.decode("utf-8", "replace")
    if kind != "events":
        return f"{kind}: {text}"
    try:
        e = json.loads(payload)
        when = e["ts"][11:23]
        thing = e["product"] or e.get("guess") or {}
        name = f"{thing.get('name', '?')} [{thing.get('sku', '?')}]" if e["type"] == "identified" else f"unknown (like {thing.get('name', '-')})"
        late = " (replayed)" if e.get("replayed") else ""
        s = e["scores"]
        return (f"{when} {e['camera']} track {e['track_id']}: {name} — inliers {s['inliers']}, similarity {s['similarity']:.2f}, "
                f"catalog v{e['catalog']['version']}, seq {e['seq']}{late}")
    except (ValueError, KeyError, TypeError):
        return f"events: unreadable payload {text[:120]!r}"


def _print(line: str) -> None:
    print(line, flush=True)


def follow(config: Config, out: Callable[[str], None] = _print, limit: int | None = None, stop: threading.Event | None = None) -> int:
    """Print messages until `limit` events arrived or `stop` is set; returns the events seen."""
    stop = stop or threading.Event()
    names = topics(config.mqtt.topic_prefix, config.device.id)
    seen = 0

    def on_message(client, userdata, message):
        nonlocal seen
        out(describe(message.topic, message.payload))
        if message.topic == names["events"]:
            seen += 1
            if limit is not None and seen >= limit:
                stop.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    apply_credentials(client, config.mqtt)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([(names[k], 1) for k in ("status", "events", "catalog")])
    client.on_message = on_message
    client.on_subscribe = lambda c, u, mid, codes, p: out(f"following {config.mqtt.host}:{config.mqtt.port} "
                                                           f"{config.mqtt.topic_prefix}/{config.device.id}/{{status,events,catalog}}")
    client.connect_async(config.mqtt.host, config.mqtt.port, config.mqtt.keepalive_s)
    client.loop_start()
    try:
        stop.wait()
    finally:
        client.loop_stop()
        client.disconnect()
    return seen
