"""The daemon's side of the installer's page: start it, feed it frames and events (its health numbers: edge.daemon.status)."""

from __future__ import annotations

from edge.core.annotate import track_boxes
from edge.core.config import Config
from edge.daemon.grabber import Frame
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
