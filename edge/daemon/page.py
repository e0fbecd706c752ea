"""The daemon's side of the installer's page: start it, feed it frames and events, refresh its health numbers."""

from __future__ import annotations

import shutil
import time
from datetime import datetime

from edge.core.annotate import track_boxes
from edge.core.config import Config
from edge.daemon.grabber import Frame
from edge.reporting.sinks import EventSink
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.server import WebServer


def start_web(config: Config) -> WebServer | None:
    """The page's server, started (None when the config leaves it off); its `metrics.observe` takes stage latencies."""
    if not config.web.enabled:
        return None
    live = LiveState(config.web.snapshot_fps, config.web.recent)
    return WebServer(config.web, live, Metrics(live)).start()


def feed_page(live: LiveState, frame: Frame, events: list[dict], pipeline) -> None:
    if events:
        live.add_events(events, frame.image, pipeline.identifier.catalog)
    if live.wants_frame():  # only while someone watches, at most web.snapshot_fps
        live.set_frame(frame.image, track_boxes(pipeline.tracker.tracks, pipeline.identifier.catalog.names))


def page_status(config: Config, snapshot: dict, sink: EventSink, live: LiveState) -> dict:
    """The health panel's numbers: the stats line plus who/where, uptime, disk, MQTT and sync age."""
    status = snapshot | {"device": config.device.id, "camera_name": config.camera.name, "uptime_s": round(time.time() - live.started),
                         "snapshot_fps": config.web.snapshot_fps}
    data_dir = config.device.data_dir
    status["disk_free_gb"] = round(shutil.disk_usage(data_dir if data_dir.exists() else "/").free / 1e9, 1)
    status |= sink.health()
    last = (status.get("sync") or {}).get("last_success")
    status["sync_age_s"] = round(time.time() - datetime.fromisoformat(last).timestamp()) if last else None
    return status
