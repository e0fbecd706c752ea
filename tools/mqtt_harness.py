"""A real mosquitto on a free loopback port that can be stopped, killed and restarted; and a recording subscriber.

Used by the tests and by tools/fault_mqtt.py.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(process: subprocess.Popen, port: int, what: str, log: Path, timeout: float) -> None:
    """Return once `process` accepts connections on the loopback `port`; RuntimeError with its log's tail if it exits
    first, or, killed, if it does not listen within `timeout` (polling a port: a server says nothing else when ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-500:] if log.exists() else ''}") from None
            time.sleep(0.05)
    process.kill()  # a server that never listened must not outlive the failed start
    process.wait(10)
    raise RuntimeError(f"{what} did not start listening on port {port} within {timeout:.0f} s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        raise RuntimeError("mosquitto is not installed: `make test` installs it (apt-get install mosquitto)")
    return found


class Broker:
    def __init__(self, folder: Path, port: int | None = None, users: dict[str, str] | None = None):
        """`users`: name -> password; when given, anonymous clients are refused."""
        self.folder, self.port = folder, port or free_port()
        data = folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o777)  # mosquitto started as root may drop to its own user; it must be able to persist here
        auth = "allow_anonymous true\n"
        if users:
            passwords = folder / "passwords"
            for i, (name, password) in enumerate(users.items()):
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", *(["-c"] if i == 0 else []),
                                str(passwords), name, password], check=True, capture_output=True)
            auth = f"allow_anonymous false\npassword_file {passwords}\n"
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{auth}persistence true\n"
                             f"persistence_location {data}/\nautosave_interval 1\nuser root\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.folder / "mosquitto.log", "ab"))
        wait_listening(self.process, self.port, "mosquitto", self.folder / "mosquitto.log", 10)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: persists its state
            self.process.wait(10)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Recorder:
    """Subscribes to everything under a prefix and lets tests await what arrives."""

    def __init__(self, port: int, pattern: str = "shelfid/#"):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self.subscribed = threading.Event()
        # a persistent session: the broker queues QoS 1 messages for us while we are reconnecting
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"recorder-{free_port()}", clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect_async("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the recording subscriber could not subscribe within 10 s")

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append((message.topic, message.payload, message.retain))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def events(self) -> list[dict]:
        with self._cond:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/events")]

    def payloads(self, suffix: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Producer:
    """tools/mqtt_producer.py as a process: the reporting side of a daemon, which can be SIGKILLed."""

    def __init__(self, outbox: Path, port: int, start: int, count: int, delay: float = 0.0):
        self.process = subprocess.Popen([sys.executable, "-m", "tools.mqtt_producer", str(Path(outbox).resolve()), str(port),
                                         str(start), str(count), str(delay)], stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.committed: list[str] = []
        self.drained = False

    def read(self, until_committed: int | None = None) -> None:
        """Read its output until it has committed this many events, or until it drains."""
        for line in self.process.stdout:
            if line.startswith("committed "):
                self.committed.append(line.split()[1])
                if until_committed is not None and len(self.committed) >= until_committed:
                    return
            elif line.strip() == "drained":
                self.drained = True
                return

    def finish(self) -> None:
        self.read()
        assert self.process.wait(20) == 0

    def kill(self) -> None:
        """SIGKILL; then collect the commits it reported before dying (still in the pipe)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.read()
