"""`shelfid events` (edge.reporting.follow) against a real mosquitto: a product name or SKU carrying terminal escapes,
CR/LF or bidi overrides is printed escaped, one line per event (issue 33). The catalog server refuses such names now;
catalogs built before, or by hand, and other publishers on the broker can still carry them."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

from edge.core.catalog import Product
from edge.core.config import Config
from edge.reporting.events import encode, make_event
from edge.reporting.follow import describe, follow
from tools.mqtt_harness import Broker

HOSTILE = Product("p1", "sku\u202e1234", "Cola\x1b[2J\x1b[H\r\n10:00:00.000 cam0 track 1: Free beer\x00")


def hostile_event() -> bytes:
    return encode(make_event(kind="identified", seq=7, device="dev", camera="cam0\x1b]0;owned\x07", ts=1.0, first_seen=0.5,
                             track_id=3, product=HOSTILE, guess=None, similarity=0.9, inliers=120, inlier_ratio=0.8,
                             confidence=1.0, bbox_norm=(0.1, 0.1, 0.3, 0.6), catalog_id="shelf", catalog_version=2))


@pytest.fixture
def broker(tmp_path):
    broker = Broker(tmp_path / "broker").start()
    yield broker
    broker.kill()


def test_a_hostile_product_name_reaches_the_terminal_escaped_on_one_line(broker):
    config = Config.model_validate({"device": {"id": "dev"}, "mqtt": {"host": "127.0.0.1", "port": broker.port}})
    lines: list[str] = []
    following = threading.Event()

    def out(line: str) -> None:
        lines.append(line)
        if line.startswith("following"):
            following.set()

    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(follow(config, out, limit=1, timeout_s=30)))
    thread.start()
    assert following.wait(20)  # subscribed: what is published now reaches it
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    publisher.publish("shelfid/dev/events", hostile_event(), qos=1).wait_for_publish(10)
    thread.join(30)
    publisher.loop_stop()
    publisher.disconnect()
    assert done == [1]
    event = next(line for line in lines if "track 3" in line)
    assert "\x1b" not in event and "\r" not in event and "\n" not in event and "\u202e" not in event and "\x00" not in event
    assert "Cola\\x1b[2J\\x1b[H\\r\\n10:00:00.000 cam0 track 1: Free beer\\x00 [sku\\u202e1234]" in event
    assert event.split(" ")[1] == "cam0\\x1b]0;owned\\x07"


def test_every_line_describe_returns_is_printable():
    assert describe("shelfid/d/status", "online\x1b[31m\u2028fake\u0085".encode()) == "status: online\\x1b[31m\\u2028fake\\x85"
    assert describe("shelfid/d/events", b"\x1b[2J{").startswith("events: unreadable payload")
    name = "Chá Mate Limão 500 ml"  # accents and dashes are printable: left as they are
    assert name in describe("shelfid/d/events", encode(make_event(
        kind="identified", seq=1, device="d", camera="c", ts=1.0, first_seen=0.5, track_id=1, product=Product("p", "s", name),
        guess=None, similarity=0.9, inliers=10, inlier_ratio=0.5, confidence=1.0, bbox_norm=(0, 0, 1, 1), catalog_id="x",
        catalog_version=1)))
