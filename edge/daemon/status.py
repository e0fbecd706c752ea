"""The daemon's health numbers, assembled in one place (schemas/status.schema.json describes the result):

    stats_message   the frame loop's numbers (rates, camera, tracks, stage latencies, catalog) and the sync agent's
                    last word: the MQTT `stats` message, the log line every STATS_EVERY_S, run()'s summary
    page_status     the stats plus who and where, uptime, disk, broker and outbox, sync age: the page's /api/status
"""

from __future__ import annotations

import resource
import shutil
import time
from datetime import datetime

from edge.core.config import Config
from edge.core.datadir import DataDir
from edge.daemon.grabber import Grabber
from edge.daemon.pipeline import Pipeline, Stats, percentiles
from edge.reporting.sinks import EventSink
from edge.web.live import LiveState


def stats_message(config: Config, pipeline: Pipeline, grabber: Grabber) -> dict:
    """The frame loop's numbers, the catalog in use and the sync agent's last word."""
    catalog = pipeline.identifier.catalog
    queue = pipeline.worker.pending if pipeline.worker else 0
    second = pipeline.second
    return (frame_stats(pipeline.stats, grabber, catalog.version, len(pipeline.tracker.tracks), queue)
            | {"catalog_id": catalog.catalog_id} | sync_stats(config)
            | ({"second_opinion": {"verifier": second.verifier.id, "asked": second.asked, "named": second.named,
                                   "ms": percentiles(second.ms)}} if second is not None else {}))


def frame_stats(stats: Stats, grabber: Grabber, catalog_version: int, tracks: int, identify_queue: int = 0) -> dict:
    """What the pipeline counted and what the camera's grabber did, since the start."""
    elapsed = max(time.time() - stats.started, 1e-9)
    latency = {k: percentiles(v) for k, v in stats.stage_ms.items() if v}
    return {"fps": round(stats.frames / elapsed, 2), "input_fps": round(grabber.grabbed / elapsed, 2), "frames": stats.frames,
            "dropped_frames": grabber.dropped, "camera": grabber.status, "camera_reconnects": grabber.reconnects,
            "tracks": tracks, "identified": stats.identified,
            "unknown": stats.unknown, "stage_ms": latency, "identify_queue": identify_queue,
            "identify_latency_ms": percentiles(stats.identify_latency_ms),
            "catalog_version": catalog_version, "catalog_switches": stats.catalog_switches,
            "identities_lost": stats.identities_lost,
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def sync_stats(config: Config) -> dict:
    """The sync agent's last word (its status file), when this device syncs."""
    if config.sync.server_url is None:
        return {}
    status = DataDir(config.device.data_dir).read_sync_status()
    return {"sync": {k: status.get(k) for k in ("active_version", "last_success", "last_error", "last_attempt", "stale", "fresh_until")}}


def page_status(config: Config, stats: dict, sink: EventSink, live: LiveState) -> dict:
    """The health panel's numbers: the stats message plus who/where, uptime, disk, MQTT and sync age."""
    status = stats | {"device": config.device.id, "camera_name": config.camera.name, "uptime_s": round(time.time() - live.started),
                      "snapshot_fps": config.web.snapshot_fps}
    data_dir = config.device.data_dir
    status["disk_free_gb"] = round(shutil.disk_usage(data_dir if data_dir.exists() else "/").free / 1e9, 1)
    status |= sink.health()
    last = (status.get("sync") or {}).get("last_success")
    status["sync_age_s"] = round(time.time() - datetime.fromisoformat(last).timestamp()) if last else None
    return status
