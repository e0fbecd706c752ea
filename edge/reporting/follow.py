"""`shelfid events`: follow a device's MQTT topics and print them as a person would read them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.core.config import Config
from edge.core.errors import ShelfIDError
from edge.core.text import printable
from edge.reporting.mqtt import apply_credentials, guarded
from edge.reporting.topics import device_topics, zone_state_topic
from edge.reporting.zone_messages import ZONE_EVENT_TYPES


def describe(topic: str, payload: bytes) -> str:
    """One readable line for a message on a device topic, safe to print: whatever the payload holds (a product name
    with ESC sequences, CR/LF, bidi overrides) cannot move the cursor, forge a line or reorder the text."""
    return printable(_describe(topic, payload))


def _describe(topic: str, payload: bytes) -> str:
    kind = topic.rsplit("/", 1)[-1]
    text = payload.decode("utf-8", "replace")
    if kind == "state" and "/zones/" in topic:
        return _zone_state(topic, payload, text)
    if kind != "events":
        return f"{kind}: {text}"
    try:
        e = json.loads(payload)
        when = e["ts"][11:23]
        if e["type"] in ZONE_EVENT_TYPES:
            return _zone_event(e, when)
        thing = e["product"] or e.get("guess") or {}
        name = f"{thing.get('name', '?')} [{thing.get('sku', '?')}]" if e["type"] == "identified" else f"unknown (like {thing.get('name', '-')})"
        late = " (replayed)" if e.get("replayed") else ""
        s = e["scores"]
        return (f"{when} {e['camera']} track {e['track_id']}: {name} — inliers {s['inliers']}, similarity {s['similarity']:.2f}, "
                f"catalog v{e['catalog']['version']}, seq {e['seq']}{late}")
    except (ValueError, KeyError, TypeError):
        return f"events: unreadable payload {text[:120]!r}"


def _zone_event(e: dict, when: str) -> str:
    expected = f" of {e['expected']} expected" if e["expected"] else ""
    seen = f", last seen {e['last_seen'][11:19]}" if e["last_seen"] else ""
    late = " (replayed)" if e.get("replayed") else ""
    return (f"{when} {e['camera']} zone {e['zone']}: {e['type']} {e['product']['name']} [{e['product']['sku'] or '?'}] — "
            f"{e['facings']} facings{expected}{seen}, seq {e['seq']}{late}")


def _zone_state(topic: str, payload: bytes, text: str) -> str:
    zone = topic.rsplit("/", 2)[-2]
    if not payload:
        return f"zone {zone}: removed"
    try:
        s = json.loads(payload)
        products = ", ".join(f"{p['product']['name']} {p['facings']}" + (f"/{p['expected']}" if p["expected"] else "")
                             for p in s["products"]) or "nothing"
        alerts = ", ".join(f"{a['type']} {a['product']}" for a in s["alerts"])
        return f"zone {zone} at {s['ts'][11:19]}: {products}" + (f" — alerts: {alerts}" if alerts else "")
    except (ValueError, KeyError, TypeError):
        return f"zone {zone}: unreadable state {text[:120]!r}"


def _print(line: str) -> None:
    print(line, flush=True)


def follow(config: Config, out: Callable[[str], None] = _print, limit: int | None = None, stop: threading.Event | None = None,
           timeout_s: float | None = None) -> int:
    """Print messages until `limit` events arrived or `stop` is set; returns the events seen.

    Says at once where it connects, and each time the broker cannot be reached; a refused login (wrong
    username or password) and, with `timeout_s`, no connection or no event within that time are ShelfIDErrors.
    """
    stop = stop or threading.Event()
    m = config.mqtt
    names = device_topics(m.topic_prefix, config.device.id)
    where = f"{m.host}:{m.port}{' (TLS)' if m.tls else ''}"
    seen, refused, connected, warned = 0, [], threading.Event(), [False]

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            refused.append(str(reason_code))
            stop.set()
            return
        connected.set()
        zones = zone_state_topic(m.topic_prefix, config.device.id, "+")
        client.subscribe([(names[k], 1) for k in ("status", "events", "catalog")] + [(zones, 1)])

    def on_connect_fail(client, userdata):
        if not warned[0]:  # once: paho retries every second or so
            out(f"cannot connect to {where}: refused, unreachable or not an MQTT port — check mqtt.host, mqtt.port "
                f"and that the broker runs; retrying (Ctrl-C to stop)")
            warned[0] = True

    def on_message(client, userdata, message):
        nonlocal seen
        out(describe(message.topic, message.payload))
        if message.topic == names["events"]:
            seen += 1
            if limit is not None and seen >= limit:
                stop.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    apply_credentials(client, m)
    client.on_connect, client.on_connect_fail = guarded(on_connect), guarded(on_connect_fail)
    client.on_message = guarded(on_message)
    topics = f"{m.topic_prefix}/{config.device.id}/{{status,events,catalog,zones/+/state}}"
    client.on_subscribe = lambda c, u, mid, codes, p: out(f"following {where} {topics}")
    client.reconnect_delay_set(1, 5)
    out(f"connecting to {where} as {m.username or 'anonymous'} …")
    client.connect_async(m.host, m.port, m.keepalive_s)
    client.loop_start()
    try:
        stop.wait(timeout_s)
    finally:
        client.loop_stop()
        client.disconnect()
    if refused:
        raise ShelfIDError(f"broker {where} refused the login: {refused[0]} — check mqtt.username and mqtt.password_file "
                           "(and the broker's ACL)")
    if not stop.is_set() and not seen:  # the timeout ran out with nothing to show
        what = "could not connect to" if not connected.is_set() else "no event from"
        raise ShelfIDError(f"{what} {where} within {timeout_s:g} s (--timeout)")
    return seen
