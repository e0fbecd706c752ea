"""MQTT reporting over the topic contract, fed from the durable outbox.

Topics (prefix configurable, default `shelfid`):
  <prefix>/<device>/status    retained, QoS 1: online / offline (the last will)
  <prefix>/<device>/events    QoS 1: one JSON event per identification
  <prefix>/<device>/stats     QoS 0: pipeline and outbox numbers
  <prefix>/<device>/catalog   retained, QoS 1: active catalog id + version (again after every reconnect)
  <prefix>/<device>/zones/<zone>/state   retained, QoS 1: a shelf zone's state now (again after every reconnect)
  <prefix>/catalogs/<catalog>/latest   subscribed: the catalog server's announcement

Events are written to the outbox first; a sender thread publishes pending ones
in seq order while connected and deletes each when its PUBACK arrives. Session:
clean_session=True on purpose: the outbox, not the broker, is the source of
truth for what is unsent, so a device never depends on broker-side session
state surviving; after a reconnect everything unacknowledged is sent again
(at-least-once; consumers dedup on event_id). Reconnects back off from about
1 s to 60 s; the first delay is jittered per process so a fleet does not
reconnect in lockstep after a broker restart.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.core.config import MQTTConfig
from edge.reporting.announcements import parse_announcement
from edge.reporting.events import mark_replayed
from edge.reporting.outbox import Outbox
from edge.reporting.topics import announcement_topic, device_topics, zone_state_topic

log = logging.getLogger(__name__)
WINDOW = 200  # most events in flight (published, not yet acknowledged)


def guarded(callback: Callable) -> Callable:
    """A paho callback that cannot raise: an exception escaping into paho's network thread ends it,
    and with it every publish and reconnect, while nothing else notices."""

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except Exception:
            log.exception("mqtt callback %s failed; ignored", getattr(callback, "__name__", callback))
        return None

    return wrapper


def network_alive(client: mqtt.Client) -> bool:
    """Whether paho's network thread (loop_start) still runs. paho has no public accessor:
    its `_thread` is set by loop_start and cleared when loop_forever ends, also by an exception."""
    thread = getattr(client, "_thread", None)
    return thread is not None and thread.is_alive()


def apply_credentials(client: mqtt.Client, config: MQTTConfig) -> None:
    """Username + password (from its file, credential or environment) and TLS, as the config says."""
    if config.username:
        client.username_pw_set(config.username, config.password())
    if config.tls is not None:
        t = config.tls
        client.tls_set(ca_certs=str(t.ca_file) if t.ca_file else None, certfile=str(t.cert_file) if t.cert_file else None,
                       keyfile=str(t.key_file) if t.key_file else None, cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(t.insecure)


class MQTTReporter:
    def __init__(self, config: MQTTConfig, device: str, outbox: Outbox, catalog_id: str | None = None,
                 on_announcement: Callable[[int], None] | None = None):
        self.config, self.device, self.outbox = config, device, outbox
        self.topics = device_topics(config.topic_prefix, device)
        self.announcement_topic = announcement_topic(config.topic_prefix, catalog_id) if catalog_id else None
        self.on_announcement = on_announcement
        self._catalog_payload: bytes | None = None
        self._zone_states: dict[str, bytes] = {}  # topic -> the latest state: only the newest matters, so no outbox
        self._zone_lock = threading.Lock()  # a state set during a reconnect is published by one side or the other
        self._cond = threading.Condition()
        self._inflight: dict[int, int] = {}  # mid -> seq
        self._early_acks: set[int] = set()  # PUBACKs that beat the sender's bookkeeping
        self._sent_upto = 0  # highest seq handed to paho on this connection
        self._connected_since: float | None = None
        self._stop = False
        self._refused = False  # the broker turned the last login down
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker acknowledged the announcement subscription
        self.client = self._make_client()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)

    def _make_client(self) -> mqtt.Client:
        c = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=c.client_id or f"shelfid-{self.device}",
                             clean_session=True, protocol=mqtt.MQTTv311)
        client.will_set(self.topics["status"], b"offline", qos=1, retain=True)
        apply_credentials(client, c)
        client.reconnect_delay_set(min_delay=max(1, round(random.uniform(0.5, 2.0))), max_delay=60)
        client.max_inflight_messages_set(WINDOW)
        client.on_connect, client.on_disconnect = guarded(self._on_connect), guarded(self._on_disconnect)
        client.on_connect_fail = guarded(self._on_connect_fail)
        client.on_publish, client.on_message = guarded(self._on_publish), guarded(self._on_message)
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.suppress_exceptions = True  # a second net under guarded(): paho logs instead of ending its thread
        return client

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self.client.loop_start()
        self._sender.start()

    def stop(self, timeout: float = 5.0) -> None:
        """While connected, send what the outbox holds (stored rows too, not only those in flight) until it is empty
        or `timeout` s pass; then publish `offline` and disconnect. What is left waits for the next start."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()  # the sender reads what was stored since it last looked
            while self.connected.is_set() and (self._inflight or self.outbox.size) and time.monotonic() < deadline:
                self._cond.wait(0.1)  # each PUBACK notifies
            self._stop = True
            self._cond.notify_all()
        if self.connected.is_set():
            self.client.publish(self.topics["status"], b"offline", qos=1, retain=True).wait_for_publish(1.0)
        self.client.disconnect()
        self.client.loop_stop()

    # --- what the pipeline calls -----------------------------------------------------------
    def wake(self) -> None:
        """New events are in the outbox."""
        with self._cond:
            self._cond.notify_all()

    def set_catalog(self, catalog_id: str, version: int) -> None:
        self._catalog_payload = json.dumps({"id": catalog_id, "version": version}).encode()
        if self.connected.is_set():
            self.client.publish(self.topics["catalog"], self._catalog_payload, qos=1, retain=True)

    def set_zone_state(self, zone: str, payload: bytes | None) -> None:
        """Retain a zone's latest state; None clears it (an empty retained message: the zone was removed), also when
        that can only be sent after the next connect."""
        topic = zone_state_topic(self.config.topic_prefix, self.device, zone)
        with self._zone_lock:
            self._zone_states[topic] = payload or b""
            if self.connected.is_set():
                self.client.publish(topic, payload or b"", qos=1, retain=True)

    @property
    def is_connected(self) -> bool:
        """Connected, and the network thread that delivers events still runs."""
        return self.connected.is_set() and network_alive(self.client)

    def stats(self) -> dict:
        """The reporting side's numbers, merged into every stats message."""
        return {"mqtt_connected": self.is_connected, "outbox_size": self.outbox.size, "outbox_dropped": self.outbox.dropped}

    def publish_stats(self, stats: dict) -> None:
        """QoS 0, only while connected: stats are a live view, not a record."""
        if self.connected.is_set():
            self.client.publish(self.topics["stats"], json.dumps({**stats, **self.stats()}).encode(), qos=0)

    # --- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("mqtt connect refused by %s:%d: %s (check username, password file and ACL); retrying",
                      self.config.host, self.config.port, reason_code)
            self._refused = True  # the disconnect that follows says nothing new
            return
        self._refused = False
        log.info("mqtt connected to %s:%d; %d events pending in the outbox", self.config.host, self.config.port, self.outbox.size)
        client.publish(self.topics["status"], b"online", qos=1, retain=True)
        if self._catalog_payload is not None:
            client.publish(self.topics["catalog"], self._catalog_payload, qos=1, retain=True)
        if self.announcement_topic:
            client.subscribe(self.announcement_topic, qos=1)
        with self._cond:
            # paho re-sends what was in flight at the disconnect (same mids), so those stay mapped;
            # everything else unacknowledged is read from the outbox again
            self._sent_upto = 0
            self._connected_since = time.time()
            self.connected.set()
            self._cond.notify_all()
        with self._zone_lock:  # after connected.set(): a state set from now on is published by set_zone_state itself
            for topic, payload in self._zone_states.items():
                client.publish(topic, payload, qos=1, retain=True)

    def _on_connect_fail(self, client, userdata) -> None:
        tls = " (TLS: check mqtt.tls.ca_file and that the broker's port speaks TLS)" if self.config.tls else ""
        log.warning("mqtt cannot connect to %s:%d: connection refused, unreachable or handshake failed%s; retrying",
                    self.config.host, self.config.port, tls)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._cond:
            self.connected.clear()
        if not self._stop and not self._refused:
            log.warning("mqtt disconnected from %s:%d (%s); events stay in the outbox, reconnecting",
                        self.config.host, self.config.port, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            seq = self._inflight.pop(mid, None)
            if seq is None:
                self._early_acks.add(mid)
            self._cond.notify_all()
        if seq is not None:
            self.outbox.ack(seq)

    def _on_message(self, client, userdata, message) -> None:
        try:
            version = parse_announcement(message.payload)
        except ValueError as exc:
            log.warning("ignored malformed message on %s: %s (%d bytes)", message.topic, exc, len(message.payload))
            return
        log.info("catalog announcement on %s: version %d", message.topic, version)
        if self.on_announcement is not None:
            self.on_announcement(version)

    # --- sender thread ---------------------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self.connected.is_set() or len(self._inflight) >= WINDOW):
                    self._cond.wait(1.0)
                if self._stop:
                    return
                after, since, room = self._sent_upto, self._connected_since, WINDOW - len(self._inflight)
            with self._cond:
                owned_by_paho = set(self._inflight.values())
            batch = [e for e in self.outbox.pending(after_seq=after, limit=room + len(owned_by_paho)) if e.seq not in owned_by_paho]
            if not batch:
                with self._cond:
                    self._cond.wait(1.0)
                continue
            for event in batch:
                payload = mark_replayed(event.payload) if since is not None and event.created < since else event.payload
                # paho is called without our lock held: its network thread holds paho's locks while in on_publish
                info = self.client.publish(event.topic, payload, qos=1)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    break
                with self._cond:
                    if info.mid in self._early_acks:
                        self._early_acks.discard(info.mid)
                        acked = True
                    else:
                        self._inflight[info.mid] = event.seq
                        acked = False
                    self._sent_upto = max(self._sent_upto, event.seq)
                if acked:
                    self.outbox.ack(event.seq)
                if info.rc == mqtt.MQTT_ERR_NO_CONN:
                    break  # paho holds this one and sends it after the reconnect; the rest waits in the outbox
