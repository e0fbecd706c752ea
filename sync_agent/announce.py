"""The MQTT side of catalog sync: the server announces a version (retained), devices wake their agent on it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.core.config import MQTTConfig
from edge.core.errors import ShelfIDError
from edge.reporting.announcements import AnnouncementGate, announcement_payload, parse_announcement
from edge.reporting.mqtt import apply_credentials, guarded
from edge.reporting.topics import announcement_topic

log = logging.getLogger(__name__)


NO_BROKER_HINT = ("set mqtt.host/mqtt.port (and mqtt.username, mqtt.password_file) in the config passed to "
                  "`shelfid catalog serve --config`, or start it with --no-announce; devices still find new versions "
                  "at their next poll")


def publish_announcement(config: MQTTConfig, catalog_id: str, version: int, timeout_s: float = 10.0) -> None:
    """Retained `<prefix>/catalogs/<id>/latest`; ShelfIDError (saying what to set) when the broker cannot be reached."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"shelfid-catalog-{catalog_id}"[:64])
    apply_credentials(client, config)
    try:
        client.connect(config.host, config.port, config.keepalive_s)
    except OSError as exc:
        raise ShelfIDError(f"cannot reach the MQTT broker at {config.host}:{config.port} ({exc.strerror or exc}): "
                           f"{NO_BROKER_HINT}") from None
    client.loop_start()
    try:
        payload = announcement_payload(catalog_id, version)
        info = client.publish(announcement_topic(config.topic_prefix, catalog_id), payload, qos=1, retain=True)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise ShelfIDError(f"broker {config.host}:{config.port} did not acknowledge the announcement within {timeout_s} s "
                               f"(a refused login or ACL?): {NO_BROKER_HINT}")
    finally:
        client.disconnect()
        client.loop_stop()


def follow_announcements(config: MQTTConfig, catalog_id: str, device_id: str, wake: threading.Event,
                         active: Callable[[], int] = lambda: 0) -> mqtt.Client:
    """Sets `wake` on a well-formed announcement of a version above `active()` (rate-limited: see AnnouncementGate);
    reconnects by itself. Call loop_stop() to end."""
    topic = announcement_topic(config.topic_prefix, catalog_id)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"shelfid-sync-{device_id}"[:64])
    apply_credentials(client, config)
    gate = AnnouncementGate(active)

    def on_message(c, userdata, message) -> None:
        try:
            version = parse_announcement(message.payload)
        except ValueError as exc:
            log.warning("ignored malformed announcement on %s: %s (%d bytes)", message.topic, exc, len(message.payload))
            return
        if gate.admit(version):
            log.info("catalog %s v%d announced; syncing now", catalog_id, version)
            wake.set()
        else:
            log.debug("catalog %s v%d announced; not acted on (not newer, or over the rate)", catalog_id, version)

    client.on_connect = guarded(lambda c, u, f, rc, p: c.subscribe(topic, qos=1))
    client.on_message = guarded(on_message)
    client.suppress_exceptions = True
    client.reconnect_delay_set(1, 60)
    client.connect_async(config.host, config.port, config.keepalive_s)
    client.loop_start()
    return client
