"""One track per physical product across frames: IoU against a constant-velocity prediction.

Pure Python over small arrays: greedy matching by IoU (shelf cameras see tens
of products, not thousands), tolerant of `max_missed` frames without a box.
Identity bookkeeping (pending, confirmed, re-check time) lives on the track so
the daemon runs embed/search/verify once per new object, not once per frame.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]
MOVED_IOU = 0.5  # a box overlapping where it was last identified less than this moved far: identify it again


class Unknown:
    """The identity of a track whose votes agree it is no catalog product. Not a string: any string may be a product id
    (a product whose id is "unknown" is a product like any other)."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __str__(self) -> str:
        return "unknown"


UNKNOWN = Unknown()


class Verdict(enum.Enum):
    """What one identification did to a track's identity."""

    NOTHING = "nothing"  # no identity confirmed, or the one the track already had (nothing to report)
    CONFIRMED = "confirmed"  # the track's first identity, or a product where it was unknown: report it
    NEW_OBJECT = "new_object"  # another product where this track had one: a new physical object (new track id), report it
    LOST = "lost"  # after a large move the crop shows another product than the one confirmed, none identically: the
    # tracker followed the box onto something else (a pan); a new physical object (new track id), decided anew


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a) x len(b)] IoU of xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class Track:
    track_id: int
    bbox: Box
    first_seen: float
    last_seen: float
    velocity: tuple[float, float] = (0.0, 0.0)  # box centre, pixels per frame
    hits: int = 1
    misses: int = 0
    votes: list[str | None] = field(default_factory=list)  # product ids from identifications (None: unknown)
    confirmed: str | Unknown | None = None  # a product id or UNKNOWN, once the votes agree
    checked_at: float = 0.0  # when the identity was last computed
    bbox_at_check: Box | None = None
    pending: bool = False  # crops handed to the identification worker, result not in yet
    sharpest: float = 0.0  # the sharpest its crop has been when due (edge.daemon.unknowns.sharpness)
    waited: int = 0  # frames in a row its identification waited for a sharper crop

    def vote(self, product_id: str | None, now: float, confirm_frames: int, clear: bool = False, guess: str | None = None) -> Verdict:
        """Record one identification (None: no catalog product; `guess`: then its best candidate) and decide what it
        does to this track's identity.

        `confirm_frames` agreeing identifications confirm an identity; one `clear` identification (a product, verified
        far beyond any look-alike) confirms it at once. A confirmed product is not taken back by a re-check that sees
        nothing identical where the box stayed or the crop still looks most like it (blur, a hand in front); after a
        large move, a crop that looks most like another product ends the identity (LOST); another product confirmed
        where this track had one means the tracker followed its box onto a neighbour, a new physical object.
        """
        moved = self.bbox_at_check is not None and box_iou(self.bbox_at_check, self.bbox) < MOVED_IOU
        self.votes.append(product_id)
        self.checked_at, self.bbox_at_check = now, self.bbox
        if (moved and product_id is None and isinstance(self.confirmed, str) and guess != self.confirmed):
            self.confirmed, self.votes = None, [None]
            return Verdict.LOST
        recent = self.votes[-confirm_frames:]
        if not ((clear and product_id is not None) or (len(recent) == confirm_frames and len(set(recent)) == 1)):
            return Verdict.NOTHING
        identity = UNKNOWN if product_id is None else product_id
        before = self.confirmed
        if identity == before or (identity is UNKNOWN and before is not None):
            return Verdict.NOTHING
        self.confirmed = identity
        return Verdict.CONFIRMED if before is None or before is UNKNOWN else Verdict.NEW_OBJECT

    def predicted(self) -> Box:
        dx, dy = self.velocity
        x1, y1, x2, y2 = self.bbox
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


class Tracker:
    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 15):
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes: list[Box], now: float) -> tuple[list[Track], list[Track]]:
        """Match this frame's boxes; returns (tracks seen in this frame, tracks that just ended)."""
        predicted = np.array([t.predicted() for t in self.tracks], dtype=np.float64).reshape(-1, 4)
        current = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        ious = iou_matrix(predicted, current)
        matched_tracks, matched_boxes, seen = set(), set(), []
        for flat in np.argsort(-ious, axis=None):
            ti, bi = np.unravel_index(flat, ious.shape)
            if ious[ti, bi] < self.iou_threshold:
                break
            if ti in matched_tracks or bi in matched_boxes:
                continue
            matched_tracks.add(ti)
            matched_boxes.add(bi)
            seen.append(self._continue(self.tracks[ti], boxes[bi], now))
        ended = []
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.misses += 1
                if track.misses > self.max_missed:
                    ended.append(track)
        self.tracks = [t for t in self.tracks if t not in ended]
        for bi, box in enumerate(boxes):
            if bi not in matched_boxes:
                track = Track(self._next_id, tuple(box), now, now)
                self._next_id += 1
                self.tracks.append(track)
                seen.append(track)
        return seen, ended

    def renumber(self, track: Track, now: float) -> None:
        """The track turned out to be another physical object: a new id and first-seen time, same box and motion."""
        track.track_id = self._next_id
        self._next_id += 1
        track.first_seen = now
        track.sharpest, track.waited = 0.0, 0

    @staticmethod
    def _continue(track: Track, box: Box, now: float) -> Track:
        old_cx, old_cy = (track.bbox[0] + track.bbox[2]) / 2, (track.bbox[1] + track.bbox[3]) / 2
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        steps = track.misses + 1
        # smoothed velocity: a jittery detector should not throw the prediction around
        vx, vy = (cx - old_cx) / steps, (cy - old_cy) / steps
        track.velocity = (0.5 * track.velocity[0] + 0.5 * vx, 0.5 * track.velocity[1] + 0.5 * vy)
        track.bbox, track.last_seen, track.hits, track.misses = tuple(box), now, track.hits + 1, 0
        return track


def box_iou(a: Box, b: Box) -> float:
    [[overlap]] = iou_matrix(np.array([a], np.float64), np.array([b], np.float64))
    return float(overlap)


def needs_identification(track: Track, now: float, recheck_s: float, change_iou: float = MOVED_IOU) -> bool:
    """Identify a track until its identity is confirmed, and while another identity is being confirmed (its last vote
    differs from what it is confirmed as: a bottle the device first saw half hidden, or a box that drifted onto a
    neighbour); else only now and then, or when its box moved far."""
    if track.confirmed is None:
        return True
    if track.votes and track.votes[-1] is not None and track.votes[-1] != track.confirmed:
        return True
    if now - track.checked_at >= recheck_s:
        return True
    return track.bbox_at_check is not None and box_iou(track.bbox_at_check, track.bbox) < change_iou
