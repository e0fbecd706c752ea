"""`shelfid run`: the daemon's frame loop in plain Python.

camera (grabber thread, latest frame wins) → detect → track → crops of tracks
without a confirmed identity, one batch per frame → identification worker
threads (embed → search → verify; `tracker.identify_threads`, two by default;
none with `tracker.background: false`, which identifies in the frame loop)
→ results join their tracks at a later frame
→ confirm over `tracker.confirm_frames` agreeing identifications → one event
per confirmed track → sink (outbox + MQTT, or JSON lines). Between frames the
loop switches to a new catalog when `<data_dir>/catalogs/current` moved and the
new version loaded cleanly in the background.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.core.assembly import load_identifier
from edge.core.catalog import installed_version
from edge.core.config import CameraConfig, Config
from edge.core.datadir import DataDir
from edge.core.errors import CatalogError
from edge.core.field_references import ReferenceStore
from edge.core.identify import Identifier
from edge.daemon.camera import FrameSource, open_source
from edge.daemon.catalog_watch import CatalogWatcher
from edge.daemon.grabber import Frame, Grabber
from edge.daemon.page import feed_page, start_web, sync_zones
from edge.daemon.pipeline import Pipeline
from edge.daemon.sdnotify import notify
from edge.daemon.status import page_status, stats_message
from edge.daemon.teaching import Teaching
from edge.daemon.zones import memory_path
from edge.reporting.announcements import AnnouncementGate
from edge.reporting.sinks import EventSink, JSONLinesSink, OutboxSink

log = logging.getLogger(__name__)
STATS_EVERY_S = 10.0


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
        source: FrameSource | None = None, config_path: Path | None = None) -> dict:
    """The daemon: returns the final stats when the camera (a file) ends or on SIGTERM/SIGINT.

    `source` replaces the configured camera (a caller's own frames; the tests' failing camera); `config_path` is the file
    the page saves zones into. Start-up, the loop,
    then the shutdown in the order that loses no identification in flight.
    """
    stop = stop or threading.Event()
    path = require_catalog(config, catalog_dir)
    ReferenceStore(DataDir(config.device.data_dir).references).clean()  # what a cut-short teaching left
    identifier = load_identifier(config, path, field_references=True)
    identifier.identify_image(np.zeros((480, 640, 3), np.uint8))  # warm-up before READY=1
    sink = make_sink(config, config.sync.catalog_id)
    web = start_web(config, config_path)  # the installer's page, when the config turns it on
    pipeline = Pipeline(config, identifier, sink, on_stage_ms=web.metrics.observe if web is not None else None)
    if pipeline.zones is not None:
        pipeline.zones.remember(memory_path(config))  # alerts outlive a restart: none reported twice
    watcher = CatalogWatcher(path, identifier, config, config.device.catalog_check_s)
    announce_catalog(sink, identifier)
    if web is not None:
        web.teacher = Teaching(config, pipeline.unknowns, lambda: pipeline.identifier, watcher.references_changed,
                               after_teaching=(lambda: wake_sync(config, "references")) if config.sync.upload_url else None)
    # the pipeline and the watcher hold the identifier in use; this name must not pin the first one for the daemon's
    # life (the soak saw its catalog's five files stay open after every switch, and a pruned version's disk space too)
    del identifier
    source = source or open_source(config.camera)
    grabber = Grabber(source, config.camera.reconnect_min_s, config.camera.reconnect_max_s,
                      lossless=not source.live and not config.camera.realtime)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log_started(config, pipeline, path)
    grabber.start()
    notify("READY=1")
    last_stats, last_status, shape, camera = time.monotonic(), 0.0, (480, 640, 3), grabber.status
    hang_s = hang_after_s(config.camera)

    def stats() -> dict:
        return stats_message(config, pipeline, grabber)

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
                sync_zones(web, pipeline, config)
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


def require_catalog(config: Config, catalog_dir: Path | None) -> Path:
    """The catalog to start with; a CatalogError saying how to get one when the device has none yet."""
    path = catalog_path(config, catalog_dir)
    if catalog_dir is None and not path.exists():
        how = ("run `shelfid sync --once` (sync.server_url is set)" if config.sync.server_url else
               "build one with `shelfid catalog build IMAGES --out DIR` and pass --catalog DIR, or set sync.server_url")
        raise CatalogError(f"{path}: no catalog on this device yet — {how}")
    return path


def log_started(config: Config, pipeline: Pipeline, path: Path) -> None:
    """The start-up summary line operators grep for."""
    identifier, catalog = pipeline.identifier, pipeline.identifier.catalog
    log.info("started: device %s, camera %s (%s), detector %s, embedder %s, verifier %s, catalog %s v%d (%d products) from %s, "
             "identify %s, pid %d", config.device.id, config.camera.name, config.camera.source,
             identifier.detector.backend.path.name, identifier.embedder.model_id[:12], identifier.verifier.id, catalog.catalog_id,
             catalog.version, len(catalog.products), path, "in background" if pipeline.worker else "in the frame loop", os.getpid())


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
    return wake_sync(config, {"version": version})


def wake_sync(config: Config, why: dict | str) -> Path:
    """Run the sync agent now (shelfid-sync.path watches <data_dir>/sync/trigger): for an announced version, or to upload
    field references just taught."""
    trigger = DataDir(config.device.data_dir).sync_trigger
    trigger.parent.mkdir(parents=True, exist_ok=True)
    # in place: the close-after-write is what the path unit sees
    trigger.write_text(json.dumps(why if isinstance(why, dict) else {"upload": why}) + "\n")
    return trigger


def announce_catalog(sink: EventSink, identifier: Identifier) -> None:
    """The retained `<device>/catalog` topic follows the catalog in use."""
    sink.set_catalog(identifier.catalog.catalog_id, identifier.catalog.version)
