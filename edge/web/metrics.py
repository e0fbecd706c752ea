"""/metrics in the Prometheus text format (prometheus_client), from the daemon's own numbers.

Stage latencies are real histograms, observed as the frame loop and the
identification worker measure them; everything else is read from the status
snapshot the frame loop refreshes, at scrape time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge.web.live import LiveState

STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class StatusCollector:
    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        s = self.live.status()
        gauge = lambda name, doc, value: GaugeMetricFamily(f"shelfid_{name}", doc, value=float(value))  # noqa: E731
        counter = lambda name, doc, value: CounterMetricFamily(f"shelfid_{name}", doc, value=float(value))  # noqa: E731
        yield gauge("fps", "Frames processed per second since start.", s.get("fps", 0))
        yield counter("frames", "Frames processed.", s.get("frames", 0))
        yield counter("dropped_frames", "Camera frames the loop had no time for.", s.get("dropped_frames", 0))
        yield counter("identifications", "Tracks reported as an identified catalog product.", s.get("identified", 0))
        yield counter("unknowns", "Tracks reported as not in the catalog.", s.get("unknown", 0))
        yield gauge("tracks", "Products tracked now.", s.get("tracks", 0))
        yield gauge("identify_queue", "Identification jobs queued or running.", s.get("identify_queue", 0))
        yield gauge("camera_up", "1 while the camera delivers frames.", s.get("camera") == "ok")
        yield counter("camera_reconnects", "Times the camera was reopened.", s.get("camera_reconnects", 0))
        yield gauge("catalog_version", "Version of the catalog in use.", s.get("catalog_version", 0))
        yield gauge("rss_bytes", "Peak resident memory of the daemon.", s.get("rss_mb", 0) * 1024 * 1024)
        if "outbox_size" in s:
            yield gauge("mqtt_connected", "1 while connected to the broker.", bool(s.get("mqtt_connected")))
            yield gauge("outbox_events", "Events waiting in the outbox.", s["outbox_size"])
            yield counter("outbox_dropped", "Events dropped by the outbox's bounds.", s.get("outbox_dropped", 0))
        if s.get("sync_age_s") is not None:
            yield gauge("sync_age_seconds", "Seconds since the last successful catalog sync.", s["sync_age_s"])


class Metrics:
    def __init__(self, live: LiveState):
        self.registry = CollectorRegistry()
        self.stage = Histogram("shelfid_stage_seconds", "Latency of one pipeline stage (detect per frame; embed, search and "
                               "verify per identification job).", ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.registry.register(StatusCollector(live))

    def observe(self, stage_ms: dict[str, float]) -> None:
        for name, ms in stage_ms.items():
            self.stage.labels(name).observe(ms / 1000)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
