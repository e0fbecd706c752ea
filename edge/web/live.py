"""What the installer's page shows, kept up to date by the frame loop at little cost.

The frame loop hands over frames, events and a status snapshot; the web
server's threads only read what was handed over. A live-view JPEG is encoded
at most `snapshot_fps` times a second and only while someone fetched one in
the last few seconds, so an unwatched page costs the pipeline nothing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.core.annotate import draw_boxes, jpeg, thumbnail_jpeg

WATCHED_S = 5.0  # a viewer counts as watching this long after its last snapshot request


@dataclass(frozen=True)
class Recent:
    event: dict
    crop_jpeg: bytes | None
    catalog_jpeg: bytes | None


class LiveState:
    def __init__(self, snapshot_fps: float = 2.0, recent: int = 20):
        self.interval = 1.0 / snapshot_fps
        self._lock = threading.Lock()
        self._snapshot: bytes | None = None
        self._snapshot_at = 0.0
        self._watched_until = 0.0
        self._recent: deque[Recent] = deque(maxlen=recent)
        self._status: dict = {}
        self.started = time.time()
        self.snapshots_encoded = 0

    # --- written by the frame loop ---

    def wants_frame(self) -> bool:
        now = time.monotonic()
        return now < self._watched_until and now - self._snapshot_at >= self.interval

    def set_frame(self, image: np.ndarray, boxes: list) -> None:
        """Draw and encode the live view (call only when wants_frame() is true)."""
        encoded = jpeg(draw_boxes(image, boxes), 75)
        with self._lock:
            self._snapshot, self._snapshot_at = encoded, time.monotonic()
            self.snapshots_encoded += 1

    def add_events(self, events: list[dict], image: np.ndarray, catalog) -> None:
        h, w = image.shape[:2]
        for event in events:
            x1, y1, x2, y2 = event["bbox"]
            crop = image[int(y1 * h):int(np.ceil(y2 * h)), int(x1 * w):int(np.ceil(x2 * w))]
            product = event["product"] or event["guess"]
            with self._lock:
                self._recent.appendleft(Recent(event, thumbnail_jpeg(crop) if crop.size else None,
                                               catalog.thumbnail(product["id"]) if product else None))

    def set_status(self, status: dict) -> None:
        with self._lock:
            self._status = status

    # --- read by the web server ---

    @property
    def capacity(self) -> int:
        return self._recent.maxlen or 0

    def snapshot(self) -> bytes | None:
        with self._lock:
            self._watched_until = time.monotonic() + WATCHED_S
            return self._snapshot

    def status(self) -> dict:
        with self._lock:
            return dict(self._status)

    def recent(self, limit: int) -> list[Recent]:
        with self._lock:
            return list(self._recent)[:limit]

    def find(self, event_id: str) -> Recent | None:
        with self._lock:
            return next((r for r in self._recent if r.event["event_id"] == event_id), None)
