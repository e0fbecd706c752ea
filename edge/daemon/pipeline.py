"""What happens to each frame: detect, track, hand the crops that need an identity to the worker, confirm, report.

Shared by the daemon's loop (edge.daemon.run), the pipeline benchmark and the evaluation tools; it knows
nothing of cameras (it takes frames), of threads beyond the worker's (tracker.identify_threads) or of the page.
Its counters (Stats) become the daemon's health numbers in edge.daemon.status.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.core.config import Config
from edge.core.identify import Identification, Identifier, Timings, crop_boxes
from edge.daemon.grabber import Frame
from edge.daemon.second_opinions import SecondOpinions
from edge.daemon.tracker import MOVED_IOU, UNKNOWN, Track, Tracker, Verdict, box_iou, needs_identification
from edge.daemon.unknowns import RecentUnknowns, sharpness
from edge.daemon.worker import IdentifyWorker
from edge.daemon.zones import ZoneKeeper
from edge.reporting.events import make_event
from edge.reporting.sinks import EventSink

log = logging.getLogger(__name__)
MAX_IDENTIFY_PER_FRAME = 8  # bounds one frame's latency when many products appear at once
BATCH_IN_BACKGROUND = 4  # small jobs: results come back sooner and the next job takes the most wanted tracks
# A track not yet named waits for a sharper crop: during a pan the same bottle is sharp on one frame and smeared on
# the next, and an identification spent on the smear finds no keypoints (shared shelf video, tools.evaluate_video:
# tracks named 13 of 20 -> 14 of 21, none wrongly, time to a name p95 1148 -> 764 ms; docs/accuracy.md)
SHARPER = 0.6  # a crop below this share of the track's sharpest so far waits ...
MAX_WAIT = 5  # ... for at most this many frames in a row


def sharp_enough(track: Track, crop: np.ndarray) -> bool:
    """Whether to identify the track on this crop now; a named track is re-checked on whatever the frame shows."""
    if isinstance(track.confirmed, str):
        return True
    score = sharpness(crop)
    if score < SHARPER * track.sharpest and track.waited < MAX_WAIT:
        track.waited += 1
        return False
    track.sharpest, track.waited = max(track.sharpest, score), 0
    return True


def percentiles(values: Sequence[float]) -> dict:
    """p50 and p95 in ms, rounded; None when there is nothing yet."""
    if not values:
        return {"p50": None, "p95": None}
    return {"p50": round(float(np.percentile(values, 50)), 1), "p95": round(float(np.percentile(values, 95)), 1)}


def priority(track: Track) -> tuple:
    """Which due tracks go first: never identified, then closest to confirmation, then the longest seen."""
    return (track.confirmed is not None, len(track.votes) > 0, -len(track.votes), track.first_seen)


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    frames: int = 0
    identified: int = 0
    unknown: int = 0
    crops: int = 0  # crops identified (each an embed → search → verify), in the background or inline
    stage_ms: dict[str, deque] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=500)))
    # recent values only: a daemon runs for months (the soak found the unbounded list growing)
    identify_latency_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    catalog_switches: int = 0
    identities_lost: int = 0  # confirmed tracks whose crop showed another product after a large move (a new track)
    on_record: Callable[[dict[str, float]], None] | None = None  # each frame's stage times (the page's /metrics)

    def record(self, stage_ms: dict[str, float]) -> None:
        for name, ms in stage_ms.items():
            self.stage_ms[name].append(ms)
        if self.on_record is not None:
            self.on_record(stage_ms)


class Pipeline:
    """Everything that happens to one frame; shared by `shelfid run` and the pipeline benchmark."""

    def __init__(self, config: Config, identifier: Identifier, sink: EventSink, report_unknown: bool = True,
                 background: bool | None = None, on_stage_ms: Callable[[dict[str, float]], None] | None = None):
        self.config, self.identifier, self.sink, self.report_unknown = config, identifier, sink, report_unknown
        self.tracker = Tracker(config.tracker.iou_threshold, config.tracker.max_missed)
        self.stats = Stats(on_record=on_stage_ms)
        self.unknowns = RecentUnknowns()  # what the installer's page offers to teach
        background = config.tracker.background if background is None else background
        self.worker = IdentifyWorker(identifier, threads=config.tracker.identify_threads) if background else None
        self.zones = ZoneKeeper.of(config, sink)  # shelf state per zone; None without zones
        second = identifier.models.second
        self.second = SecondOpinions(identifier, second, background) if second is not None else None

    def process(self, frame: Frame) -> list[dict]:
        timings = Timings()
        image, now = frame.image, frame.timestamp
        with timings.stage("detect"):
            boxes = [d.bbox for d in self.identifier.detector.detect(image)]
        seen, _ = self.tracker.update(boxes, now)
        events = self._collect(image.shape) if self.worker else []
        due = [t for t in seen if not t.pending and needs_identification(t, now, self.config.tracker.recheck_s)]
        keep, crops = crop_boxes(image, [t.bbox for t in due])  # cropped once: the sharpness check and identification share them
        wanted = sorted(((due[i], crop) for i, crop in zip(keep, crops) if sharp_enough(due[i], crop)), key=lambda tc: priority(tc[0]))
        wanted = wanted[:MAX_IDENTIFY_PER_FRAME if self.worker is None else BATCH_IN_BACKGROUND]
        if self.worker is not None:
            self._hand_over(wanted, now)
        else:
            for (track, crop), ident in zip(wanted, self.identifier.identify_crops([crop for _, crop in wanted], timings)):
                self.stats.crops += 1
                events += self._apply(track, ident, image.shape, now)
                self.unknowns.observe(track.track_id, ident, crop, now, isinstance(track.confirmed, str), track.bbox)
        if self.second is not None:
            events += self._second_opinions(image.shape, now)
        if self.zones is not None:  # zone events go to the sink only: the caller's list stays identifications
            with timings.stage("zones"):
                self.zones.update(self.tracker.tracks, now, image.shape, self.identifier.catalog)
        self.stats.frames += 1
        self.stats.record(timings.ms)
        return events

    def switch(self, identifier: Identifier) -> None:
        """Use another catalog from the next frame on; confirmed tracks are re-checked against it soon."""
        self.stats.catalog_switches += identifier.catalog is not self.identifier.catalog  # not for field references taught
        self.identifier = identifier
        if self.worker is not None:
            self.worker.identifier = identifier
        if self.second is not None:
            self.second.switch(identifier)
        for track in self.tracker.tracks:
            track.votes.clear()
            track.checked_at = 0.0

    def finish(self, shape: tuple, timeout: float = 60.0) -> list[dict]:
        """End of stream: wait for identifications in flight and report what they confirm."""
        if self.second is not None:
            self.second.stop()
        if self.worker is None:
            return []
        self.worker.drain(timeout)
        events = self._collect(shape)
        self.worker.stop()
        return events

    def _hand_over(self, wanted: list[tuple[Track, np.ndarray]], now: float) -> None:
        if wanted and self.worker.submit([track.track_id for track, _ in wanted], [crop for _, crop in wanted], now,
                                         [track.bbox for track, _ in wanted]):
            for track, _ in wanted:
                track.pending = True

    def _collect(self, shape: tuple) -> list[dict]:
        results, timings = self.worker.take()
        for ms in timings:
            self.stats.record(ms)
        tracks = {t.track_id: t for t in self.tracker.tracks}
        events = []
        for result in results:
            track = tracks.get(result.track_id)
            if track is None:
                continue  # the product left the view before its identity came back
            track.pending = False
            self.stats.crops += result.identification is not None
            if result.identification is None or result.identifier is not self.identifier:
                continue  # failed, or computed against the catalog we just switched away from: try again
            events += self._apply(track, result.identification, shape, result.timestamp)
            self.unknowns.observe(track.track_id, result.identification, result.crop, result.timestamp,
                                  isinstance(track.confirmed, str), result.box)
        return events

    def _second_opinions(self, shape: tuple, now: float) -> list[dict]:
        """Apply the second opinions that came back (a name settles a track still unknown), and ask about the tracks
        confirmed unknown that were not asked about yet, on their sharpest crop so far."""
        tracks = {t.track_id: t for t in self.tracker.tracks}
        events = []
        for track_id, ident, crop, box in self.second.take(set(tracks)):
            track = tracks.get(track_id)
            if track is None or track.confirmed is not UNKNOWN or ident.product is None:
                continue
            if box is not None and box_iou(box, track.bbox) < MOVED_IOU:
                # the answer is about a crop taken frames ago, and the tracker has since followed this box onto
                # something else (seen: a tall box over a bottle and the pack below, later the pack alone)
                log.info("second opinion: track %d looked like %s where its box was; it has moved on: not named",
                         track_id, ident.product.product_id)
                continue
            self.second.named += 1
            log.info("second opinion: track %d is %s (%d inliers)", track_id, ident.product.product_id, ident.inliers)
            events += self._apply(track, ident, shape, now)
            self.unknowns.observe(track_id, ident, crop, now)
        for track in tracks.values():
            if track.confirmed is UNKNOWN and not track.pending and self.second.wants(track.track_id):
                sharpest = self.unknowns.sharpest(track.track_id)
                if sharpest is not None:
                    jpeg, box = sharpest
                    self.second.ask(track.track_id, cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), box)
        return events

    def _apply(self, track: Track, ident: Identification, shape: tuple, checked_at: float) -> list[dict]:
        product_id = ident.product.product_id if ident.product else None
        guess = ident.guess.product_id if ident.guess else None
        verdict = track.vote(product_id, checked_at, self.config.tracker.confirm_frames, ident.clear, guess)
        if verdict in (Verdict.NEW_OBJECT, Verdict.LOST):  # a new physical object gets a new track id: one identified event per track
            self.tracker.renumber(track, time.time())
            self.stats.identities_lost += verdict is Verdict.LOST
        if verdict in (Verdict.NOTHING, Verdict.LOST):
            return []
        if product_id is None and not self.report_unknown:
            return []
        return [self._event(track, ident, shape, time.time())]

    def _event(self, track: Track, ident: Identification, shape: tuple, now: float) -> dict:
        h, w = shape[:2]
        x1, y1, x2, y2 = track.bbox
        catalog = self.identifier.catalog
        event = make_event(kind=ident.status, seq=self.sink.next_seq(), device=self.config.device.id, camera=self.config.camera.name,
                           ts=now, first_seen=track.first_seen, track_id=track.track_id, product=ident.product, guess=ident.guess,
                           similarity=ident.similarity, inliers=ident.inliers, inlier_ratio=ident.inlier_ratio,
                           confidence=ident.confidence, bbox_norm=(x1 / w, y1 / h, x2 / w, y2 / h),
                           catalog_id=catalog.catalog_id, catalog_version=catalog.version)
        self.sink.emit(event)
        if ident.status == "identified":
            self.stats.identified += 1
        else:
            self.stats.unknown += 1
        self.stats.identify_latency_ms.append((now - track.first_seen) * 1000)
        return event
