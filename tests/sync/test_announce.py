"""Publishing announces the version on a real mosquitto (retained); a device's agent loop syncs on the announcement."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import requests

from edge.core.config import Config
from sync_agent.agent import Agent, run_forever
from sync_agent.announce import follow_announcements
from sync_agent.server.app import ServerSettings, create_app
from tests.sync.conftest import TOKEN, device_config, product_images
from tools.http_harness import ServerThread
from tools.mqtt_harness import Broker, Recorder

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.kill()


def test_a_published_version_is_announced_and_wakes_the_agent(tmp_path, keys, broker):
    mqtt = {"host": "127.0.0.1", "port": broker.port}
    settings = ServerSettings(root=tmp_path / "server", signing_key=keys[0], token=TOKEN, announce=True,
                              config=Config.model_validate({"mqtt": mqtt}))
    server = ServerThread(create_app(settings)).start()
    url = server.url

    def publish_with(product_id: str) -> int:
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in product_images(product_id)]
        requests.put(f"{url}/api/v1/catalogs/shelf/products/{product_id}", files=files, headers=AUTH, timeout=30).raise_for_status()
        return requests.post(f"{url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120).json()["version"]

    requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).raise_for_status()
    assert publish_with("cha-mate-limao") == 1
    recorder = Recorder(broker.port, "shelfid/catalogs/#")  # subscribes after the fact: the announcement is retained
    assert recorder.wait_for(lambda r: r.payloads("/latest"), timeout=10)
    assert json.loads(recorder.payloads("/latest")[0]) == {"catalog": "shelf", "version": 1}
    recorder.close()

    config = device_config(tmp_path, url, keys[1], poll_interval_s=3600)  # polling alone would wait an hour
    agent = Agent(config)
    synced = {1: threading.Event(), 2: threading.Event()}
    original = agent.sync_once

    def observed():
        result = original()
        if result.version in synced:
            synced[result.version].set()
        return result

    agent.sync_once = observed
    stop, wake = threading.Event(), threading.Event()
    follower = follow_announcements(Config.model_validate({"mqtt": mqtt}).mqtt, "shelf", "dev", wake)
    loop = threading.Thread(target=run_forever, args=(agent, stop, wake))
    loop.start()
    try:
        assert synced[1].wait(30)  # the first sync at start
        assert publish_with("coca-cola-can") == 2
        assert synced[2].wait(30), "the announcement did not wake the agent"
    finally:
        stop.set()
        wake.set()
        loop.join(30)
        follower.loop_stop()
        server.stop()


class MalformedHeard(logging.Handler):
    """Set once the follower has logged a malformed announcement: proof it is subscribed and read the retained one."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "ignored malformed announcement" in record.getMessage():
            self.event.set()


def test_a_hostile_retained_announcement_does_not_silence_the_agents_follower(broker):
    import paho.mqtt.client as mqtt

    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    topic = "shelfid/catalogs/shelf/latest"
    sender.publish(topic, b"[" * 200_000, qos=1, retain=True).wait_for_publish(5)
    wake, heard = threading.Event(), MalformedHeard()
    logging.getLogger("sync_agent.announce").addHandler(heard)
    follower = follow_announcements(Config.model_validate({"mqtt": {"host": "127.0.0.1", "port": broker.port}}).mqtt,
                                    "shelf", "dev", wake, active=lambda: 3)
    try:
        # subscribed and past the hostile retained payload; the next two are not retained, so they must come after
        assert heard.event.wait(15), "the follower never received the retained hostile announcement"
        sender.publish(topic, b'{"catalog": "shelf", "version": 3}', qos=1).wait_for_publish(5)  # not newer: no wake
        sender.publish(topic, b'{"catalog": "shelf", "version": 4}', qos=1).wait_for_publish(5)
        assert wake.wait(15), "a valid announcement after the hostile one did not wake the agent"
        assert follower.is_connected()
    finally:
        logging.getLogger("sync_agent.announce").removeHandler(heard)
        follower.loop_stop()
        sender.loop_stop()
