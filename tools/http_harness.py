"""The catalog server on a free loopback port, in a thread of this process (tests and tools/fault_sync.py)."""

from __future__ import annotations

import threading
import time

import uvicorn

from tools.mqtt_harness import free_port


class ServerThread:
    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="catalog-server", daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:  # uvicorn's own readiness flag, set once the socket listens
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the catalog server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
