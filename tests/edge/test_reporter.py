"""MQTT reporting against a real mosquitto: contract, broker outage, daemon kill -9, bad messages."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading

import jsonschema
import paho.mqtt.client as mqtt
import pytest

from edge.core.config import MQTTConfig
from edge.reporting.mqtt import MQTTReporter
from edge.reporting.outbox import Outbox
from tests.conftest import REPO
from tools.mqtt_harness import Broker, Producer, Recorder

SCHEMA = json.loads((REPO / "schemas" / "event.schema.json").read_text())


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    yield broker
    broker.kill()


@pytest.fixture
def recorder(broker):
    recorder = Recorder(broker.port)
    yield recorder
    recorder.close()


class LogWatch(logging.Handler):
    """Set when the reporter logs a line containing `text`: tests await it instead of sleeping."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.seen, self.lines = text, threading.Event(), []
        logging.getLogger("edge.reporting.mqtt").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.lines.append(record.getMessage())
            self.seen.set()

    def wait(self, timeout: float) -> bool:
        found = self.seen.wait(timeout)
        logging.getLogger("edge.reporting.mqtt").removeHandler(self)
        return found


def received_ids(recorder: Recorder) -> list[str]:
    return [e["event_id"] for e in recorder.events()]


def test_events_arrive_once_in_order_with_the_contract_fields(broker, recorder, tmp_path):
    producer = Producer(tmp_path / "outbox.sqlite", broker.port, 0, 50)
    producer.finish()
    assert recorder.wait_for(lambda r: len(r.events()) >= 50)
    events = recorder.events()
    assert [e["event_id"] for e in events] == producer.committed
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    for event in events:
        jsonschema.validate(event, SCHEMA)
    assert not any(e["replayed"] for e in events)
    assert recorder.wait_for(lambda r: r.payloads("/status")[-1:] == [b"offline"])  # clean stop says offline
    assert b"online" in recorder.payloads("/status")
    assert json.loads(recorder.payloads("/catalog")[-1]) == {"id": "shelf", "version": 3}


def test_broker_outage_loses_nothing_and_marks_late_events_replayed(broker, recorder, tmp_path):
    producer = Producer(tmp_path / "outbox.sqlite", broker.port, 0, 400, delay=0.01)
    assert recorder.wait_for(lambda r: len(r.events()) >= 50)
    broker.stop()
    producer.read(until_committed=len(producer.committed) + 100)  # events keep coming while the broker is down
    broker.start()
    producer.finish()
    assert recorder.wait_for(lambda r: set(producer.committed) <= set(received_ids(r)), timeout=30)
    events = recorder.events()
    assert any(e["replayed"] for e in events) and not all(e["replayed"] for e in events)
    assert len(events) - len(set(received_ids(recorder))) <= 200  # duplicates only for what was in flight


def test_daemon_killed_mid_stream_loses_nothing(broker, recorder, tmp_path):
    outbox = tmp_path / "outbox.sqlite"
    first = Producer(outbox, broker.port, 0, 5000, delay=0.001)
    first.read(until_committed=300)
    first.kill()
    assert recorder.wait_for(lambda r: r.payloads("/status")[-1:] == [b"offline"])  # the broker sent the last will
    second = Producer(outbox, broker.port, 5000, 100)
    second.finish()
    committed = set(first.committed) | set(second.committed)
    assert recorder.wait_for(lambda r: committed <= set(received_ids(r)), timeout=30)
    ids = received_ids(recorder)
    assert len(ids) - len(set(ids)) <= 200  # duplicates only for messages that were in flight at the kill
    assert recorder.payloads("/status")[-1] == b"offline" and b"online" in recorder.payloads("/status")


def test_malformed_announcements_are_logged_and_ignored(broker, tmp_path, caplog):
    got: list[int] = []
    arrived = threading.Event()
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=broker.port), "dev1", Outbox(tmp_path / "o.sqlite"), "shelf",
                            on_announcement=lambda a: (got.append(a), arrived.set()))
    reporter.start()
    assert reporter.subscribed.wait(10)  # else the first messages could pass before the subscription is in place
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    for payload in (b"\xff\xfe not json", b"[1, 2]", b'{"version": "seven"}', b'{"version": 7, "catalog": "shelf"}'):
        sender.publish("shelfid/catalogs/shelf/latest", payload, qos=1).wait_for_publish(5)
    assert arrived.wait(10)
    assert got == [7] and reporter.connected.is_set()
    assert sum("ignored malformed message" in r.message for r in caplog.records) == 3
    sender.loop_stop()
    reporter.stop()


def test_wrong_port_is_retried_with_a_clear_log_line(tmp_path):
    from tools.mqtt_harness import free_port

    port = free_port()
    failed = LogWatch("cannot connect")
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=port), "dev1", Outbox(tmp_path / "o.sqlite"))
    reporter.start()
    assert failed.wait(15) and not reporter.connected.is_set()
    assert f"127.0.0.1:{port}" in failed.lines[0] and "retrying" in failed.lines[0]
    reporter.stop(timeout=0.1)


def test_shelfid_events_prints_what_a_person_reads(broker, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"device:\n  id: test-dev\nmqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n")
    follower = subprocess.Popen([sys.executable, "-m", "edge.cli", "events", "--config", str(config), "--count", "3"],
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert follower.stdout.readline().startswith(f"connecting to 127.0.0.1:{broker.port} as anonymous")
    assert follower.stdout.readline().startswith(f"following 127.0.0.1:{broker.port} shelfid/test-dev/")
    producer = Producer(tmp_path / "outbox.sqlite", broker.port, 0, 3)
    producer.finish()
    out, _ = follower.communicate(timeout=30)
    lines = [line for line in out.splitlines() if "track" in line]
    assert len(lines) == 3 and "Chá Mate Limão [7891234000011] — inliers 120" in lines[0] and "catalog v3" in lines[0]


def test_describe_survives_garbage():
    from edge.reporting.follow import describe

    assert describe("shelfid/d/events", b"\xff{").startswith("events: unreadable payload")
    assert describe("shelfid/d/status", b"online") == "status: online"


def test_outbox_bound_drops_the_oldest_and_stats_say_how_many(broker, recorder, tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite", max_events=10)
    from edge.reporting.events import encode, make_event

    for i in range(25):  # while off-line: only the newest 10 fit
        event = make_event(kind="unknown", seq=outbox.next_seq(), device="dev1", camera="cam0", ts=1000.0 + i, first_seen=1000.0,
                           track_id=i, product=None, guess=None, similarity=0.1, inliers=0, inlier_ratio=0.0, confidence=0.0,
                           bbox_norm=(0, 0, 1, 1), catalog_id="shelf", catalog_version=1)
        outbox.add(event["event_id"], "shelfid/dev1/events", encode(event), now=1000.0 + i)
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=broker.port), "dev1", outbox)
    reporter.outbox.max_age_s = 1e12  # the fixed timestamps above are old; this test is about the count bound
    reporter.start()
    assert recorder.wait_for(lambda r: len(r.events()) >= 10)
    assert [e["track_id"] for e in recorder.events()] == list(range(15, 25)) and all(e["replayed"] for e in recorder.events())
    reporter.publish_stats({"fps": 12.5})
    assert recorder.wait_for(lambda r: r.payloads("/stats"))
    stats = json.loads(recorder.payloads("/stats")[-1])
    assert stats["outbox_dropped"] == 15 and stats["fps"] == 12.5 and stats["mqtt_connected"] is True
    reporter.stop()


def test_wrong_password_is_a_clear_log_line_and_retried(tmp_path):
    broker = Broker(tmp_path / "broker", users={"shelf": "right"}).start()
    secret = tmp_path / "pw"
    secret.write_text("wrong\n")
    try:
        config = MQTTConfig(host="127.0.0.1", port=broker.port, username="shelf", password_file=secret)
        reporter = MQTTReporter(config, "dev1", Outbox(tmp_path / "o.sqlite"))
        refused = LogWatch("connect refused")
        reporter.start()
        assert refused.wait(15) and not reporter.connected.is_set()
        assert "check username, password file and ACL); retrying" in refused.lines[0]
        reporter.stop(timeout=0.1)
        secret.write_text("right\n")
        good = MQTTReporter(MQTTConfig(host="127.0.0.1", port=broker.port, username="shelf", password_file=secret),
                            "dev1", Outbox(tmp_path / "o2.sqlite"))
        good.start()
        assert good.connected.wait(15)
        good.stop()
    finally:
        broker.kill()


def test_tls_handshake_failure_is_a_clear_log_line_and_retried(broker, tmp_path):
    ca = tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "ca.key"), "-out", str(ca),
                    "-subj", "/CN=test-ca", "-days", "1"], check=True, capture_output=True)
    from edge.core.config import TLSConfig

    failed = LogWatch("cannot connect")
    config = MQTTConfig(host="127.0.0.1", port=broker.port, tls=TLSConfig(ca_file=ca))  # the broker's port speaks plain MQTT
    reporter = MQTTReporter(config, "dev1", Outbox(tmp_path / "o.sqlite"))
    reporter.start()
    assert failed.wait(15) and not reporter.connected.is_set()
    assert "TLS: check mqtt.tls.ca_file" in failed.lines[0]
    reporter.stop(timeout=0.1)


HOSTILE = b"[" * 200_000  # json.loads raised RecursionError on it inside paho's network thread


@pytest.mark.parametrize("retained", [False, True], ids=["plain", "retained"])
def test_a_hostile_announcement_leaves_event_delivery_working_and_the_status_true(broker, recorder, tmp_path, retained):
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    topic = "shelfid/catalogs/shelf/latest"
    if retained:  # waiting on the broker for every device that (re)starts
        sender.publish(topic, HOSTILE, qos=1, retain=True).wait_for_publish(5)
    got: list[int] = []
    announced = threading.Event()
    outbox = Outbox(tmp_path / "o.sqlite")
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=broker.port), "dev1", outbox, "shelf",
                            on_announcement=lambda v: (got.append(v), announced.set()))
    watch = LogWatch("ignored malformed message")
    reporter.start()
    assert reporter.subscribed.wait(10)
    if not retained:
        sender.publish(topic, HOSTILE, qos=1).wait_for_publish(5)
    assert watch.wait(10), "the hostile payload was not seen and refused"
    for i in range(20):
        outbox.add(f"ev-{i}", "shelfid/dev1/events", json.dumps({"event_id": f"ev-{i}"}).encode())
    reporter.wake()
    assert recorder.wait_for(lambda r: {f"ev-{i}" for i in range(20)} <= set(received_ids(r)), timeout=15)
    assert reporter.stats()["mqtt_connected"] is True
    sender.publish(topic, b'{"catalog": "shelf", "version": 9}', qos=1, retain=True).wait_for_publish(5)
    assert announced.wait(10) and got == [9], "a valid announcement after the hostile one was ignored"
    sender.loop_stop()
    reporter.stop()
    assert outbox.size == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_status_says_disconnected_when_the_network_thread_has_died(broker, tmp_path):
    reporter = MQTTReporter(MQTTConfig(host="127.0.0.1", port=broker.port), "dev1", Outbox(tmp_path / "o.sqlite"), "shelf")
    reporter.start()
    assert reporter.subscribed.wait(10) and reporter.stats()["mqtt_connected"] is True
    died = threading.Event()

    def raising(client, userdata, message):  # what an unguarded callback used to do to the network thread
        died.set()
        raise RecursionError("boom")

    reporter.client.suppress_exceptions = False
    reporter.client.on_message = raising
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    sender.publish("shelfid/catalogs/shelf/latest", b"{}", qos=1).wait_for_publish(5)
    assert died.wait(10)
    thread = reporter.client._thread
    if thread is not None:
        thread.join(10)
    assert reporter.connected.is_set(), "paho never called on_disconnect: only the thread check can tell"
    assert reporter.stats()["mqtt_connected"] is False
    sender.loop_stop()
