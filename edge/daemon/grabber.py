"""The grabber thread: reads a camera continuously and keeps only the latest frame.

Frames the pipeline had no time for are dropped and counted, never queued. A
lost live camera is reopened with exponential backoff and jitter, forever; a
file source ends cleanly.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from edge.daemon.camera import CameraError, FrameSource

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Frame:
    index: int  # counts every frame the camera delivered, dropped ones included
    timestamp: float  # time.time() when grabbed
    image: np.ndarray


class Grabber:
    """`lossless`: wait for the consumer instead of dropping (a file replayed as fast as possible, for benchmarks)."""

    def __init__(self, source: FrameSource, backoff_min_s: float = 0.5, backoff_max_s: float = 30.0, lossless: bool = False):
        self.source, self.backoff_min_s, self.backoff_max_s = source, backoff_min_s, backoff_max_s
        self.lossless = lossless
        self.status = "starting"  # starting | ok | lost | ended | stopped
        self.grabbed = self.dropped = self.reconnects = 0
        self._latest: Frame | None = None
        self._busy_since: float | None = None  # monotonic time the current open() or read() began
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"grabber-{source.name}", daemon=True)

    def start(self) -> Grabber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(10)
        with self._cond:
            self.status = "stopped" if self.status != "ended" else self.status
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet taken; None when the source ended (or on timeout)."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self.status in ("ended", "stopped"), timeout)
            frame, self._latest = self._latest, None
            self._cond.notify_all()  # a lossless grabber waits for the slot to be free
            return frame

    @property
    def ended(self) -> bool:
        return self.status in ("ended", "stopped")

    def stuck(self, after_s: float) -> bool:
        """True when one open() or read() of the source has not returned for `after_s`: a hang, not a lost camera."""
        since = self._busy_since
        return since is not None and time.monotonic() - since > after_s

    def _call(self, step: Callable[[], T]) -> T:
        self._busy_since = time.monotonic()
        try:
            return step()
        finally:
            self._busy_since = None

    def _set_status(self, status: str) -> None:
        with self._cond:
            if status != self.status:
                log.info("camera %s: %s -> %s", self.source.name, self.status, status)
            self.status = status
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self.backoff_min_s
        while not self._stop.is_set():
            try:
                self._call(self.source.open)
                self._set_status("ok")
                delay = self.backoff_min_s
                if self._pump():
                    self._set_status("ended")
                    return
            except CameraError as exc:
                self._set_status("lost")
                log.warning("%s; retrying in %.1f s", exc, delay)
                self.source.close()
                if self._stop.wait(delay * random.uniform(0.8, 1.2)):
                    return
                self.reconnects += 1
                delay = min(delay * 2, self.backoff_max_s)
        self.source.close()

    def _pump(self) -> bool:
        """Read until the source ends (True) or the grabber is stopped (False); CameraError propagates."""
        while not self._stop.is_set():
            image = self._call(self.source.read)
            if image is None:
                self.source.close()
                return True
            with self._cond:
                if self.lossless:
                    self._cond.wait_for(lambda: self._latest is None or self._stop.is_set())
                if self._latest is not None:
                    self.dropped += 1  # the pipeline did not take the previous frame in time
                self._latest = Frame(self.grabbed, time.time(), image)
                self.grabbed += 1
                self._cond.notify_all()
        return False
