"""The README's first recipe for an integrator, run as written: `make demo` prints a `mosquitto_sub` line, and that line,
typed in another terminal, shows event payloads that follow schemas/event.schema.json."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time

import jsonschema
import pytest

from tests.conftest import REPO
from tools.mqtt_harness import free_port, mosquitto_binary


@pytest.mark.skipif(not mosquitto_binary(), reason="needs mosquitto (make system installs it)")
def test_the_mosquitto_sub_line_the_demo_prints_shows_the_events(tmp_path):
    port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "tools.demo", "--out", str(tmp_path / "demo"), "--broker-port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed, subscriber = [], None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and (line := demo.stdout.readline()):
            printed.append(line)
            if line.strip().startswith("mosquitto_sub "):
                subscriber = subprocess.Popen(shlex.split(line) + ["-C", "8", "-W", "120"], stdout=subprocess.PIPE, text=True)
                break
        assert subscriber is not None, "".join(printed)
        assert f"-p {port} -t 'shelfid/#' -v" in printed[-1]
        out, _ = subscriber.communicate(timeout=150)
    finally:
        demo.wait(timeout=200)
        if subscriber and subscriber.poll() is None:
            subscriber.kill()
    messages = [line.split(" ", 1) for line in out.splitlines()]
    assert messages and all(topic.startswith("shelfid/demo/") for topic, _ in messages), out
    schema = json.loads((REPO / "schemas" / "event.schema.json").read_text())
    events = [json.loads(payload) for topic, payload in messages if topic == "shelfid/demo/events"]
    assert events, out
    for event in events:
        jsonschema.validate(event, schema)
    assert demo.returncode == 0
