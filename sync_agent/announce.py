"""The MQTT side of catalog sync: the server announces a version (retained), devices wake their agent on it."""

from __future__ import annotations

import json
import logging
import threading

import paho.mqtt.client as mqtt

from edge.config import MQTTConfig
from edge.errors import ShelfIDError
from edge.reporter import apply_credentials

log = logging.getLogger(__name__)


def announcement_topic(prefix: str, catalog_id: str) -> str:
    return f"{prefix}/catalogs/{catalog_id}/latest"


def publish_announcement(config: MQTTConfig, catalog_id: str, version: int, timeout_s: float = 10.0) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"shelfid-catalog-{catalog_id}"[:64])
    apply_credentials(client, config)
    client.connect(config.host, config.port, config.keepalive_s)
    client.loop_start()
    try:
        payload = json.dumps({"catalog": catalog_id, "version": version}).encode()
        info = client.publish(announcement_topic(config.topic_prefix, catalog_id), payload, qos=1, retain=True)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise ShelfIDError(f"broker {config.host}:{config.port} did not acknowledge the announcement within {timeout_s} s")
    finally:
        client.disconnect()
        client.loop_stop()


def follow_announcements(config: MQTTConfig, catalog_id: str, device_id: str, wake: threading.Event) -> mqtt.Client:
    """Sets `wake` on each well-formed announcement for this catalog; reconnects by itself. Call loop_stop() to end."""
    topic = announcement_topic(config.topic_prefix, catalog_id)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"shelfid-sync-{device_id}"[:64])
    apply_credentials(client, config)

    def on_message(c, userdata, message) -> None:
        try:
            version = json.loads(message.payload)["version"]
            if not isinstance(version, int):
                raise TypeError(version)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored malformed announcement on %s: %r", message.topic, message.payload[:200])
            return
        log.info("catalog %s v%d announced; syncing now", catalog_id, version)
        wake.set()

    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_message = on_message
    client.reconnect_delay_set(1, 60)
    client.connect_async(config.host, config.port, config.keepalive_s)
    client.loop_start()
    return client
