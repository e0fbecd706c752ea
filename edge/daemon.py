"""`shelfid run`: the daemon's frame loop in plain Python.

camera (grabber thread, latest frame wins) → detect → track → identify only
tracks without a confirmed identity (crops of new tracks embedded as one
batch) → confirm over `tracker.confirm_frames` agreeing identifications → one
event per confirmed track → sink (outbox + MQTT, or JSON lines).

Not built yet (see the README): verification off the frame loop, catalog
hot-swap from the `current` symlink, the pipeline benchmark.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.camera import open_source
from edge.config import Config
from edge.events import make_event
from edge.grabber import Frame, Grabber
from edge.identify import Identifier, Timings, load_identifier
from edge.sdnotify import notify
from edge.sinks import EventSink, JSONLinesSink, OutboxSink
from edge.tracker import Track, Tracker, needs_identification, vote

log = logging.getLogger(__name__)
MAX_IDENTIFY_PER_FRAME = 8  # bounds one frame's latency when many products appear at once
STATS_EVERY_S = 10.0


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    frames: int = 0
    identified: int = 0
    unknown: int = 0
    stage_ms: dict[str, deque] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=500)))
    identify_latency_ms: list[float] = field(default_factory=list)

    def snapshot(self, grabber: Grabber, catalog_version: int, tracks: int) -> dict:
        elapsed = max(time.time() - self.started, 1e-9)
        latency = {k: {"p50": round(float(np.percentile(v, 50)), 1), "p95": round(float(np.percentile(v, 95)), 1)}
                   for k, v in self.stage_ms.items() if v}
        return {"fps": round(self.frames / elapsed, 2), "input_fps": round(grabber.grabbed / elapsed, 2), "frames": self.frames,
                "dropped_frames": grabber.dropped, "camera": grabber.status, "tracks": tracks, "identified": self.identified,
                "unknown": self.unknown, "stage_ms": latency, "catalog_version": catalog_version,
                "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


class Pipeline:
    """Everything that happens to one frame; shared by `shelfid run` and the pipeline benchmark."""

    def __init__(self, config: Config, identifier: Identifier, sink: EventSink, report_unknown: bool = True):
        self.config, self.identifier, self.sink, self.report_unknown = config, identifier, sink, report_unknown
        self.tracker = Tracker(config.tracker.iou_threshold, config.tracker.max_missed)
        self.stats = Stats()

    def process(self, frame: Frame) -> list[dict]:
        timings = Timings()
        image, now = frame.image, frame.timestamp
        with timings.stage("detect"):
            boxes = [d.bbox for d in self.identifier.detector.detect(image)]
        seen, _ = self.tracker.update(boxes, now)
        due = [t for t in seen if needs_identification(t, now, self.config.tracker.recheck_s)][:MAX_IDENTIFY_PER_FRAME]
        events = []
        for i, ident in self.identifier.identify_boxes(image, [t.bbox for t in due], timings):
            track = due[i]
            product_id = ident.product.product_id if ident.product else None
            if vote(track, product_id, now, self.config.tracker.confirm_frames):
                if product_id is None and not self.report_unknown:
                    continue
                events.append(self._event(track, ident, image.shape, now))
        self.stats.frames += 1
        for name, ms in timings.ms.items():
            self.stats.stage_ms[name].append(ms)
        return events

    def _event(self, track: Track, ident, shape, now: float) -> dict:
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


def catalog_path(config: Config, override: Path | None) -> Path:
    return override or config.device.data_dir / "catalogs" / "current"


def make_sink(config: Config, catalog_id: str | None) -> EventSink:
    if not config.mqtt.enabled:
        return JSONLinesSink(config.device.data_dir / "events.jsonl")
    from edge.outbox import Outbox
    from edge.reporter import MQTTReporter

    outbox = Outbox(config.outbox_path, config.outbox.max_events, config.outbox.max_age_h * 3600)
    reporter = MQTTReporter(config.mqtt, config.device.id, outbox, catalog_id)
    reporter.start()
    return OutboxSink(outbox, reporter)


def run(config: Config, catalog_dir: Path | None = None, stop: threading.Event | None = None,
        on_event=None) -> dict:
    """The daemon: returns the final stats when the camera (a file) ends or on SIGTERM/SIGINT."""
    stop = stop or threading.Event()
    identifier = load_identifier(config, catalog_path(config, catalog_dir))
    catalog = identifier.catalog
    identifier.identify_image(np.zeros((480, 640, 3), np.uint8))  # warm-up before READY=1
    sink = make_sink(config, config.sync.catalog_id)
    if isinstance(sink, OutboxSink):
        sink.reporter.set_catalog(catalog.catalog_id, catalog.version)
    pipeline = Pipeline(config, identifier, sink)
    source = open_source(config.camera)
    grabber = Grabber(source, config.camera.reconnect_min_s, config.camera.reconnect_max_s,
                      lossless=not source.live and not config.camera.realtime)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log.info("started: device %s, camera %s (%s), detector %s, embedder %s, verifier %s, catalog %s v%d (%d products), pid %d",
             config.device.id, config.camera.name, config.camera.source, identifier.detector.backend.path.name,
             identifier.embedder.model_id[:12], identifier.verifier.id, catalog.catalog_id, catalog.version,
             len(catalog.products), os.getpid())
    grabber.start()
    notify("READY=1")
    last_stats = time.monotonic()
    try:
        while not stop.is_set():
            frame = grabber.get(timeout=1.0)
            if frame is None:
                if grabber.ended:
                    break
                continue  # camera lost: no frame, no watchdog ping
            for event in pipeline.process(frame):
                if on_event:
                    on_event(event)
            notify("WATCHDOG=1")  # only from here: a stalled pipeline stops the pings
            if time.monotonic() - last_stats >= STATS_EVERY_S:
                snapshot = pipeline.stats.snapshot(grabber, catalog.version, len(pipeline.tracker.tracks))
                if isinstance(sink, OutboxSink):
                    sink.reporter.publish_stats(snapshot)
                log.info("stats %s", snapshot)
                last_stats = time.monotonic()
    finally:
        notify("STOPPING=1")
        grabber.stop()
        summary = pipeline.stats.snapshot(grabber, catalog.version, len(pipeline.tracker.tracks))
        sink.close()
    log.info("stopped after %d frames: %d identified, %d unknown", summary["frames"], summary["identified"], summary["unknown"])
    return summary
