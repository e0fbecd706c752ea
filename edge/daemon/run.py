"""`shelfid run`: the daemon's frame loop in plain Python.

camera (grabber thread, latest frame wins) → detect → track → crops of tracks
without a confirmed identity, one batch per frame → identification worker
thread (embed → search → verify) → results join their tracks at a later frame
→ confirm over `tracker.confirm_frames` agreeing identifications → one event
per confirmed track → sink (outbox + MQTT, or JSON lines). Between frames the
loop switches to a new catalog when `<data_dir>/catalogs/current` moved and the
new version loaded cleanly in the background.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.core.catalog import installed_version
from edge.core.config import CameraConfig, Config
from edge.core.datadir import DataDir
from edge.core.errors import CatalogError
from edge.core.identify import Identification, Identifier, Timings, crop_boxes, load_identifier
from edge.daemon.camera import FrameSource, open_source
from edge.daemon.catalog_watch import CatalogWatcher
from edge.daemon.grabber import Frame, Grabber
from edge.daemon.page import feed_page, page_status, start_web
from edge.daemon.sdnotify import notify
from edge.daemon.tracker import Track, Tracker, needs_identification, vote
from edge.daemon.worker import IdentifyWorker
from edge.reporting.announcements import AnnouncementGate
from edge.reporting.events import make_event
from edge.reporting.sinks import EventSink, JSONLinesSink, OutboxSink

log = logging.getLogger(__name__)
MAX_IDENTIFY_PER_FRAME = 8  # bounds one frame's latency when many products appear at once
BATCH_IN_BACKGROUND = 4  # small jobs: results come back sooner and the next job takes the most wanted tracks
STATS_EVERY_S = 10.0


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
    stage_ms: dict[str, deque] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=500)))
    # recent values only: a daemon runs for months (the soak found the unbounded list growing)
    identify_latency_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    catalog_switches: int = 0
    on_record: Callable[[dict[str, float]], None] | None = None  # each frame's stage times (the page's /metrics)

    def record(self, stage_ms: dict[str, float]) -> None:
        for name, ms in stage_ms.items():
            self.stage_ms[name].append(ms)
        if self.on_record is not None:
            self.on_record(stage_ms)

    def snapshot(self, grabber: Grabber, catalog_version: int, tracks: int, identify_queue: int = 0) -> dict:
        elapsed = max(time.time() - self.started, 1e-9)
        latency = {k: percentiles(v) for k, v in self.stage_ms.items() if v}
        return {"fps": round(self.frames / elapsed, 2), "input_fps": round(grabber.grabbed / elapsed, 2), "frames": self.frames,
                "dropped_frames": grabber.dropped, "camera": grabber.status, "camera_reconnects": grabber.reconnects,
                "tracks": tracks, "identified": self.identified,
                "unknown": self.unknown, "stage_ms": latency, "identify_queue": identify_queue,
                "identify_latency_ms": percentiles(self.identify_latency_ms),
                "catalog_version": catalog_version, "catalog_switches": self.catalog_switches,
                "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


class Pipeline:
    """Everything that happens to one frame; shared by `shelfid run` and the pipeline benchmark."""

    def __init__(self, config: Config, identifier: Identifier, sink: EventSink, report_unknown: bool = True,
                 background: bool | None = None, on_stage_ms: Callable[[dict[str, float]], None] | None = None):
        self.config, self.identifier, self.sink, self.report_unknown = config, identifier, sink, report_unknown
        self.tracker = Tracker(config.tracker.iou_threshold, config.tracker.max_missed)
        self.stats = Stats(on_record=on_stage_ms)
        background = config.tracker.background if background is None else background
        self.worker = IdentifyWorker(identifier) if background else None

    def process(self, frame: Frame) -> list[dict]:
        timings = Timings()
        image, now = frame.image, frame.timestamp
        with timings.stage("detect"):
            boxes = [d.bbox for d in self.identifier.detector.detect(image)]
        seen, _ = self.tracker.update(boxes, now)
        events = self._collect(image.shape) if self.worker else []
        due = [t for t in seen if not t.pending and needs_identification(t, now, self.config.tracker.recheck_s)]
        due = sorted(due, key=priority)[:MAX_IDENTIFY_PER_FRAME if self.worker is None else BATCH_IN_BACKGROUND]
        if self.worker is not None:
            self._hand_over(image, due, now)
        else:
            for i, ident in self.identifier.identify_boxes(image, [t.bbox for t in due], timings):
                events += self._apply(due[i], ident, image.shape, now)
        self.stats.frames += 1
        self.stats.record(timings.ms)
        return events

    def switch(self, identifier: Identifier) -> None:
        """Use another catalog from the next frame on; confirmed tracks are re-checked against it soon."""
        self.identifier = identifier
        self.stats.catalog_switches += 1
        if self.worker is not None:
            self.worker.identifier = identifier
        for track in self.tracker.tracks:
            track.votes.clear()
            track.checked_at = 0.0

    def finish(self, shape: tuple, timeout: float = 60.0) -> list[dict]:
        """End of stream: wait for identifications in flight and report what they confirm."""
        if self.worker is None:
            return []
        self.worker.drain(timeout)
        events = self._collect(shape)
        self.worker.stop()
        return events

    def _hand_over(self, image: np.ndarray, due: list[Track], now: float) -> None:
        keep, crops = crop_boxes(image, [t.bbox for t in due])
        if crops and self.worker.submit([due[i].track_id for i in keep], crops, now):
            for i in keep:
                due[i].pending = True

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
            if result.identification is None or result.identifier is not self.identifier:
                continue  # failed, or computed against the catalog we just switched away from: try again
            events += self._apply(track, result.identification, shape, result.timestamp)
        return events

    def _apply(self, track: Track, ident: Identification, shape: tuple, checked_at: float) -> list[dict]:
        product_id = ident.product.product_id if ident.product else None
        before = track.confirmed
        if not vote(track, product_id, checked_at, self.config.tracker.confirm_frames, ident.clear):
            return []
        if before not in (None, "unknown"):
            if track.confirmed == "unknown":
                track.confirmed = before  # a re-check that sees nothing identical does not take an identity back
                return []
            # another product where this track was: the tracker followed its box onto a neighbour. That is a new
            # physical object, so it gets a new track id: one identified event per track, always.
            self.tracker.renumber(track, time.time())
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


def catalog_path(config: Config, override: Path | None) -> Path:
    return override or DataDir(config.device.data_dir).current


def make_sink(config: Config, catalog_id: str | None) -> EventSink:
    if not config.mqtt.enabled:
        return JSONLinesSink(config.device.data_dir / "events.jsonl")
    from edge.reporting.mqtt import MQTTReporter
    from edge.reporting.outbox import Outbox

    outbox = Outbox(config.outbox_path, config.outbox.max_events, config.outbox.max_age_h * 3600)
    follows = config.sync.server_url is not None
    reporter = MQTTReporter(config.mqtt, config.device.id, outbox, catalog_id if follows else None,
                            on_announcement=sync_trigger(config) if follows else None)
    reporter.start()
    return OutboxSink(outbox, reporter)


def run(config: Config, catalog_dir: Path | None = None, stop: threading.Event | None = None,
        on_event: Callable[[dict], None] | None = None, on_frame: Callable[[Frame, Pipeline], None] | None = None,
        source: FrameSource | None = None) -> dict:
    """The daemon: returns the final stats when the camera (a file) ends or on SIGTERM/SIGINT.

    `source` replaces the configured camera (a caller's own frames; the tests' failing camera).
    """
    stop = stop or threading.Event()
    path = catalog_path(config, catalog_dir)
    if catalog_dir is None and not path.exists():
        how = ("run `shelfid sync --once` (sync.server_url is set)" if config.sync.server_url else
               "build one with `shelfid catalog build IMAGES --out DIR` and pass --catalog DIR, or set sync.server_url")
        raise CatalogError(f"{path}: no catalog on this device yet — {how}")
    identifier = load_identifier(config, path)
    identifier.identify_image(np.zeros((480, 640, 3), np.uint8))  # warm-up before READY=1
    sink = make_sink(config, config.sync.catalog_id)
    web = start_web(config)  # the installer's page, when the config turns it on
    pipeline = Pipeline(config, identifier, sink, on_stage_ms=web.metrics.observe if web is not None else None)
    watcher = CatalogWatcher(path, identifier, config, config.device.catalog_check_s)
    announce_catalog(sink, identifier)
    source = source or open_source(config.camera)
    grabber = Grabber(source, config.camera.reconnect_min_s, config.camera.reconnect_max_s,
                      lossless=not source.live and not config.camera.realtime)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    catalog = identifier.catalog
    log.info("started: device %s, camera %s (%s), detector %s, embedder %s, verifier %s, catalog %s v%d (%d products) from %s, "
             "identify %s, pid %d", config.device.id, config.camera.name, config.camera.source,
             identifier.detector.backend.path.name, identifier.embedder.model_id[:12], identifier.verifier.id, catalog.catalog_id,
             catalog.version, len(catalog.products), path, "in background" if pipeline.worker else "in the frame loop", os.getpid())
    grabber.start()
    notify("READY=1")
    last_stats, last_status, shape, camera = time.monotonic(), 0.0, (480, 640, 3), grabber.status
    hang_s = hang_after_s(config.camera)

    def stats() -> dict:
        queue = pipeline.worker.pending if pipeline.worker else 0
        snapshot = pipeline.stats.snapshot(grabber, pipeline.identifier.catalog.version, len(pipeline.tracker.tracks), queue)
        return snapshot | {"catalog_id": pipeline.identifier.catalog.catalog_id} | sync_stats(config)

    def handle(events: list[dict]) -> None:
        for event in events:
            if on_event:
                on_event(event)

    try:
        while not stop.is_set():
            if (switched := watcher.poll()) is not None:
                pipeline.switch(switched)
                announce_catalog(sink, switched)
            if web is not None and time.monotonic() - last_status >= 1.0:  # the page's health panel, also while the camera is lost
                web.live.set_status(page_status(config, stats(), sink, web.live))
                last_status = time.monotonic()
            frame = grabber.get(timeout=1.0)
            if frame is not None:
                shape = frame.image.shape
                events = pipeline.process(frame)
                handle(events)
                if web is not None:
                    feed_page(web.live, frame, events, pipeline)
                if on_frame:
                    on_frame(frame, pipeline)
                notify("WATCHDOG=1")  # a stalled pipeline stops the pings
            elif grabber.ended:
                break
            elif grabber.status == "lost" and not grabber.stuck(hang_s):
                # The grabber is retrying the camera: the daemon is healthy, and a restart would not bring a network
                # camera back (it would only exhaust the unit's start limit). A source call that hangs stops the pings.
                notify("WATCHDOG=1")
            if grabber.status != camera or time.monotonic() - last_stats >= STATS_EVERY_S:
                if grabber.status != camera:
                    camera = grabber.status
                    notify(f"STATUS=camera {config.camera.name} {camera}")
                snapshot = stats()
                sink.publish_stats(snapshot)  # also while the camera is lost: subscribers see it at once
                log.info("stats %s", json.dumps(snapshot))
                last_stats = time.monotonic()
    finally:
        notify("STOPPING=1")
        grabber.stop()
        handle(pipeline.finish(shape))  # identifications in flight still count (and are flushed to the sink)
        summary = stats()
        sink.close()
        if web is not None:
            web.stop()
    log.info("stopped after %d frames: %d identified, %d unknown", summary["frames"], summary["identified"], summary["unknown"])
    return summary


def hang_after_s(camera: CameraConfig) -> float:
    """How long one camera open or read may take before the daemon counts it as hung (FFmpeg retries a read 3 times)."""
    return max(camera.open_timeout_s, 3 * camera.read_timeout_s) + 10.0


def sync_trigger(config: Config) -> Callable[[int], None]:
    """What an announced version does: wake the sync agent when it is newer than the catalog on disk, rate-limited."""
    gate = AnnouncementGate(lambda: installed_version(catalog_path(config, None)))

    def on_announcement(version: int) -> None:
        if gate.admit(version):
            trigger_sync(config, version)
        else:
            log.debug("announcement of v%d not acted on (not newer, or %d ignored at this rate)", version, gate.ignored)

    return on_announcement


def trigger_sync(config: Config, version: int) -> Path:
    """(Re)write <data_dir>/sync/trigger, which shelfid-sync.path watches, with the parsed version only."""
    trigger = DataDir(config.device.data_dir).sync_trigger
    trigger.parent.mkdir(parents=True, exist_ok=True)
    trigger.write_text(json.dumps({"version": version}) + "\n")  # in place: the close-after-write is what the path unit sees
    return trigger


def sync_stats(config: Config) -> dict:
    """The sync agent's last word (its status file), when this device syncs."""
    if config.sync.server_url is None:
        return {}
    status = DataDir(config.device.data_dir).read_sync_status()
    return {"sync": {k: status.get(k) for k in ("active_version", "last_success", "last_error", "last_attempt", "stale", "fresh_until")}}


def announce_catalog(sink: EventSink, identifier: Identifier) -> None:
    """The retained `<device>/catalog` topic follows the catalog in use."""
    sink.set_catalog(identifier.catalog.catalog_id, identifier.catalog.version)
