"""The retained zone states on a real mosquitto: set while offline, published at the connect; replaced; cleared."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt

from edge.core.config import MQTTConfig
from edge.reporting.follow import describe
from edge.reporting.mqtt import MQTTReporter
from edge.reporting.outbox import Outbox
from tools.mqtt_harness import Broker, Recorder

TOPIC = "shelfid/aisle-7/zones/top/state"
STATE = {"schema": 1, "device": "aisle-7", "camera": "cam0", "zone": "top", "ts": "2026-12-06T15:40:02.118Z",
         "products": [{"product": {"id": "limao", "sku": "111", "name": "Chá Mate Limão"}, "facings": 0, "expected": 2,
                       "last_seen": None}],
         "alerts": [{"type": "gone", "product": "limao", "since": "2026-12-06T15:40:02.118Z"}], "catalog": {"id": "shelf", "version": 1}}


def retained(port: int) -> bytes | None:
    """The retained payload a new subscriber gets (None: nothing retained). The broker sends retained messages right
    after the SUBACK, so a probe published after it comes back after them: then there is nothing more to wait for."""
    got, done = [], threading.Event()

    def on_message(client, userdata, message):
        if message.topic == "probe/done":
            done.set()
        elif message.retain:
            got.append(message.payload)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([(TOPIC, 1), ("probe/done", 1)])
    client.on_subscribe = lambda c, u, mid, rcs, p: c.publish("probe/done", b"x", qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "the probe did not come back"
    finally:
        client.loop_stop()
        client.disconnect()
    return got[-1] if got else None


def test_a_state_set_before_the_broker_is_there_is_retained_when_it_is_and_can_be_cleared(tmp_path):
    broker = Broker(tmp_path / "broker")
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=broker.port), "aisle-7", Outbox(tmp_path / "outbox.sqlite"))
    reporter.set_zone_state("top", json.dumps(STATE).encode())  # no broker yet: kept for the connect
    broker.start()
    recorder = Recorder(broker.port)
    try:
        reporter.start()
        assert reporter.connected.wait(20)
        assert recorder.wait_for(lambda r: r.payloads(TOPIC))
        assert json.loads(retained(broker.port)) == STATE
        newer = {**STATE, "products": [{**STATE["products"][0], "facings": 2, "last_seen": STATE["ts"]}], "alerts": []}
        reporter.set_zone_state("top", json.dumps(newer).encode())
        assert recorder.wait_for(lambda r: len(r.payloads(TOPIC)) == 2)
        assert json.loads(retained(broker.port)) == newer
        reporter.set_zone_state("top", None)  # the zone was removed
        assert recorder.wait_for(lambda r: r.payloads(TOPIC)[-1:] == [b""])
        assert retained(broker.port) is None
    finally:
        recorder.close()
        reporter.stop()
        broker.kill()


def test_shelfid_events_prints_a_zone_state_on_one_line():
    line = describe(TOPIC, json.dumps(STATE).encode())
    assert line == "zone top at 15:40:02: Chá Mate Limão 0/2 — alerts: gone limao"
    assert describe(TOPIC, b"") == "zone top: removed"
    assert describe(TOPIC, b"{\x1b[2J").startswith("zone top: unreadable state")
