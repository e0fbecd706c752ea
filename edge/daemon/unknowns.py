"""The tracks the device could not name lately, with their sharpest crops: what the installer's page offers to teach.

Fed by the pipeline with every identification that came back unknown (the crop it was made from, never the frame);
a track named later leaves the list. Per track the `crops_per_track` sharpest crops are kept as JPEG (variance of
the Laplacian: the crop a person and the verifier can read best), and at most `tracks` tracks, the most recently
seen. Read by the page's threads, written by the frame loop: one lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.core.annotate import jpeg
from edge.core.catalog import Product, product_ref
from edge.core.identify import Identification
from edge.daemon.tracker import Box

CROP_SIDE = 320  # longest side kept: enough to verify against, small enough for a phone's page
SHARPNESS_HEIGHT = 128  # px: crops compared at one height, so that their sharpness follows blur, not size


@dataclass
class UnknownTrack:
    track_id: int
    first_seen: float
    last_seen: float
    latest: Identification  # its last identification, unknown: the guess, the evidence and why
    crops: list[tuple[float, bytes]] = field(default_factory=list)  # (sharpness, JPEG), sharpest first
    box: Box | None = None  # the track's box when its sharpest crop was taken

    @property
    def guess(self) -> Product | None:
        return self.latest.guess

    def summary(self) -> dict:
        ident = self.latest
        return {"track_id": self.track_id, "first_seen": self.first_seen, "last_seen": self.last_seen, "guess": product_ref(ident.guess),
                "similarity": round(ident.similarity, 3), "inliers": ident.inliers, "reason": ident.reason, "crops": len(self.crops)}


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian at SHARPNESS_HEIGHT px: low on a motion-blurred crop; crops of one track compare by
    their blur, not by how large the box was."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    width = max(1, round(gray.shape[1] * SHARPNESS_HEIGHT / gray.shape[0]))
    return float(cv2.Laplacian(cv2.resize(gray, (width, SHARPNESS_HEIGHT), interpolation=cv2.INTER_AREA), cv2.CV_32F).var())


def shrunk(crop: np.ndarray, side: int = CROP_SIDE) -> np.ndarray:
    h, w = crop.shape[:2]
    scale = min(1.0, side / max(h, w))
    return crop if scale == 1.0 else cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class RecentUnknowns:
    def __init__(self, tracks: int = 64, crops_per_track: int = 3):  # ~3 MB of crops; a busy shelf makes new unknown tracks fast
        self.capacity, self.crops_per_track = tracks, crops_per_track
        self._tracks: dict[int, UnknownTrack] = {}
        self._dismissed: set[int] = set()  # "not a product", or taught already: not offered again
        self._lock = threading.Lock()

    def observe(self, track_id: int, ident: Identification, crop: np.ndarray, now: float, named: bool = False,
                box: Box | None = None) -> None:
        """One identification of a track: unknown ones keep the crop if it is among the sharpest, a named one ends the
        entry, as does any of a track `named` already (a confirmed product re-checked on a blurred frame is no lesson).
        `box`: the track's box on the crop's frame, kept for the sharpest crop."""
        with self._lock:
            if named or ident.status == "identified":
                self._tracks.pop(track_id, None)
                return
            if track_id in self._dismissed:
                return
            entry = self._tracks.get(track_id)
            if entry is None:
                entry = self._tracks[track_id] = UnknownTrack(track_id, now, now, ident)
                if len(self._tracks) > self.capacity:
                    del self._tracks[min(self._tracks.values(), key=lambda t: t.last_seen).track_id]
            entry.last_seen, entry.latest = now, ident
            score = sharpness(crop)
            if not entry.crops or score > entry.crops[0][0]:
                entry.box = box
            if len(entry.crops) < self.crops_per_track or score > entry.crops[-1][0]:
                entry.crops = sorted([*entry.crops, (score, jpeg(shrunk(crop)))], key=lambda c: -c[0])[:self.crops_per_track]

    def recent(self) -> list[dict]:
        """Newest first."""
        with self._lock:
            return [t.summary() for t in sorted(self._tracks.values(), key=lambda t: -t.last_seen)]

    def crop(self, track_id: int, k: int) -> bytes | None:
        with self._lock:
            entry = self._tracks.get(track_id)
            return entry.crops[k][1] if entry is not None and 0 <= k < len(entry.crops) else None

    def sharpest(self, track_id: int) -> tuple[bytes, Box | None] | None:
        """The track's sharpest crop (JPEG) and its box on that frame."""
        with self._lock:
            entry = self._tracks.get(track_id)
            return (entry.crops[0][1], entry.box) if entry is not None and entry.crops else None

    def put_back(self, entry: UnknownTrack) -> None:
        """An entry taken for a lesson that was refused: offered again."""
        with self._lock:
            self._dismissed.discard(entry.track_id)
            self._tracks[entry.track_id] = entry

    def take(self, track_id: int) -> UnknownTrack | None:
        """The entry, removed and not offered again (the installer decided about it)."""
        with self._lock:
            self._dismissed.add(track_id)
            if len(self._dismissed) > 4096:
                self._dismissed = set(sorted(self._dismissed)[-1024:])
            return self._tracks.pop(track_id, None)
