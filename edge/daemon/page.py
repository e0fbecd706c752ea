"""The daemon's side of the installer's page: start it, feed it frames and events (its health numbers: edge.daemon.status),
show it the shelf zones and apply the zones saved on it."""

from __future__ import annotations

from pathlib import Path

from edge.core.annotate import track_boxes
from edge.core.config import Config
from edge.daemon.grabber import Frame
from edge.daemon.zones import replace_keeper
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.server import WebServer
from edge.web.zone_desk import ZoneDesk


def start_web(config: Config, config_path: Path | None = None) -> WebServer | None:
    """The page's server, started (None when the config leaves it off); its `metrics.observe` takes stage latencies.
    Zones drawn on the page are saved into `config_path` (None: the page shows zones but cannot save them)."""
    if not config.web.enabled:
        return None
    live = LiveState(config.web.snapshot_fps, config.web.recent)
    server = WebServer(config.web, live, Metrics(live))
    server.zones = ZoneDesk(config_path, config.zones)
    return server.start()


def sync_zones(web: WebServer, pipeline, config: Config) -> None:
    """Show the page the zones' states and the catalog's products; zones saved on it apply from the next frame."""
    web.zones.show(pipeline.zones.states if pipeline.zones else {}, pipeline.identifier.catalog)
    if (saved := web.zones.take_saved()) is not None:
        pipeline.zones = replace_keeper(pipeline.zones, config, saved, pipeline.sink)


def feed_page(live: LiveState, frame: Frame, events: list[dict], pipeline) -> None:
    if events:
        live.add_events(events, frame.image, pipeline.identifier.catalog)
    if live.wants_frame():  # only while someone watches, at most web.snapshot_fps
        live.set_frame(frame.image, track_boxes(pipeline.tracker.tracks, pipeline.identifier.catalog.names))
