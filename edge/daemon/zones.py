"""Shelf state per zone: which catalog products stand in each zone now, with how many facings, and what went missing.

Each frame the keeper looks at the tracker's live tracks: a track whose identity is a confirmed catalog product,
whose box has stayed put for `zones.stationary_s` and whose box centre lies inside a zone's polygon is one facing of
that product in that zone (a track the detector missed for a few frames is still live, so one missed frame changes
nothing). Those raw counts are smoothed with hysteresis in time, measured on the frames' timestamps, never on the
wall clock of the loop:

    a rise counts after `present_after_s` of raw counts above the shown one (it becomes the fewest seen meanwhile);
    a fall counts after `gone_after_s` of raw counts below it (it becomes the most seen meanwhile),

so a shopper's arm or a track being re-identified after an occlusion does not flap the state. From the shown
facings come the alerts: `gone` (0 facings: an expected product, or one seen there before), `low` (fewer than the
planogram expects) and `misplaced` (a product the zone's planogram does not list). Events are emitted when an alert
starts, and `back` when a gone product returns; they go through the sink (the durable outbox). Each zone's state is
handed to the sink (the retained `zones/<zone>/state` topic) whenever facings or alerts change.

Nothing is published for `gone_after_s + present_after_s` after the first frame: by then every product in view has
had its time to be identified and counted, and an expected product still missing has been missing for `gone_after_s`.

The daemon's keeper remembers its alerts in `<data_dir>/zones.json` (written whole or not at all when they change),
so an alert that held before a restart and still holds after it is not reported again: a second `gone` with a new
event_id would be a second refill order. A product that came back meanwhile is reported `back`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.catalog import Catalog
from edge.core.config import Config, ZoneArea, ZonesConfig
from edge.core.polygons import contains
from edge.daemon.tracker import Track
from edge.reporting.events import iso
from edge.reporting.sinks import EventSink
from edge.reporting.zone_messages import make_zone_event, make_zone_state, planogram_ref
from models.safe_write import write_json_atomic

log = logging.getLogger(__name__)
STAY_FRACTION = 0.25  # a box whose centre moved less than this share of its smaller side has stayed put


@dataclass
class Count:
    """One product's facings in one zone: the count shown, and a change waiting for its time."""

    shown: int = 0
    since: float | None = None  # when the raw count began to differ from `shown` in the direction it still does
    bound: int = 0  # during a rise the fewest seen since then, during a fall the most
    last_seen: float | None = None
    ever: bool = False  # shown above 0 at some point


def smooth(count: Count, raw: int, now: float, rise_s: float, fall_s: float) -> bool:
    """Feed one frame's raw count; True when the shown count changed."""
    if raw > 0:
        count.last_seen = now
    if raw == count.shown:
        count.since = None
        return False
    rising = raw > count.shown
    if count.since is None or (count.bound > count.shown) != rising:  # a new change, or one that turned round
        count.since, count.bound = now, raw
        return False
    count.bound = min(count.bound, raw) if rising else max(count.bound, raw)
    if now - count.since < (rise_s if rising else fall_s):
        return False
    count.shown, count.since = count.bound, None
    count.ever = count.ever or count.shown > 0
    return True


@dataclass
class Anchor:
    """Where a track's box centre settled, and since when."""

    x: float
    y: float
    since: float


def wanted_alerts(counts: dict[str, Count], expected: dict[str, int]) -> set[tuple[str, str]]:
    """(type, product id) of every alert the shown facings call for."""
    alerts = set()
    for product_id, count in counts.items():
        want = expected.get(product_id)
        if count.shown == 0:
            if want or (count.ever and not expected):
                alerts.add(("gone", product_id))
        elif want and count.shown < want:
            alerts.add(("low", product_id))
        elif expected and want is None:
            alerts.add(("misplaced", product_id))
    return alerts


@dataclass
class ZoneState:
    area: ZoneArea
    counts: dict[str, Count] = field(default_factory=dict)
    alerts: dict[tuple[str, str], float] = field(default_factory=dict)  # (type, product id) -> since
    published: tuple | None = None  # what the last published state said (facings and alerts), to publish on change


class ZoneKeeper:
    """The zones of one camera; `update` once per frame, from the frame loop only."""

    def __init__(self, config: ZonesConfig, sink: EventSink, device: str, camera: str):
        self.config, self.sink, self.device, self.camera = config, sink, device, camera
        self.zones = {name: ZoneState(area) for name, area in config.areas.items()}
        self.anchors: dict[int, Anchor] = {}
        self.started: float | None = None
        self.states: dict[str, dict] = {}  # the last published state per zone (replaced whole: the page's thread reads it)
        self._checked_catalog: tuple[str, int] | None = None
        self.memory: Path | None = None  # where alerts outlive a restart (remember); None: they do not
        self._restored = False

    def remember(self, path: Path) -> ZoneKeeper:
        """Keep the alerts in `path` across restarts (the daemon's keeper; benchmarks and tests keep none)."""
        self.memory = path
        return self

    @classmethod
    def of(cls, config: Config, sink: EventSink, zones: ZonesConfig | None = None) -> ZoneKeeper | None:
        """The keeper for `zones` (default: the config's), or None when there are none."""
        zones = config.zones if zones is None else zones
        return cls(zones, sink, config.device.id, config.camera.name) if zones.areas else None

    @property
    def settle_s(self) -> float:
        return self.config.gone_after_s + self.config.present_after_s

    def update(self, tracks: Iterable[Track], now: float, shape: tuple, catalog: Catalog) -> list[dict]:
        """One frame: count, smooth, alert; returns the zone events emitted (already in the sink)."""
        if self.started is None:
            self.started = now
        self._check_planogram(catalog)
        raw = self._raw_counts(tracks, now, shape)
        settled = now - self.started >= self.settle_s
        events = []
        for name, zone in self.zones.items():
            seen = raw.get(name, Counter())
            for product_id in {*zone.counts, *seen, *zone.area.expected}:
                count = zone.counts.setdefault(product_id, Count())
                smooth(count, seen.get(product_id, 0), now, self.config.present_after_s, self.config.gone_after_s)
            if settled:
                if not self._restored:
                    self._restore()
                events += self._alert(name, zone, now, catalog)
                self._publish(name, zone, now, catalog)
        return events

    # --- counting -------------------------------------------------------------------------

    def _raw_counts(self, tracks: Iterable[Track], now: float, shape: tuple) -> dict[str, Counter]:
        h, w = shape[:2]
        counts: dict[str, Counter] = {}
        live = set()
        for track in tracks:
            live.add(track.track_id)
            x1, y1, x2, y2 = track.bbox
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            if not self._stayed(track.track_id, cx, cy, min(x2 - x1, y2 - y1), now) or not isinstance(track.confirmed, str):
                continue
            centre = (cx / w, cy / h)
            for name, zone in self.zones.items():
                if contains(zone.area.polygon, centre):
                    counts.setdefault(name, Counter())[track.confirmed] += 1
        for gone in set(self.anchors) - live:
            del self.anchors[gone]
        return counts

    def _stayed(self, track_id: int, cx: float, cy: float, side: float, now: float) -> bool:
        anchor = self.anchors.get(track_id)
        if anchor is None or (cx - anchor.x) ** 2 + (cy - anchor.y) ** 2 > (STAY_FRACTION * side) ** 2:
            anchor = self.anchors[track_id] = Anchor(cx, cy, now)
        return now - anchor.since >= self.config.stationary_s

    # --- alerts, events and state ---------------------------------------------------------

    def _alert(self, name: str, zone: ZoneState, now: float, catalog: Catalog) -> list[dict]:
        wanted = wanted_alerts(zone.counts, zone.area.expected)
        started = wanted - set(zone.alerts)
        back = {(kind, product_id) for kind, product_id in set(zone.alerts) - wanted
                if kind == "gone" and zone.counts.get(product_id, Count()).shown > 0}
        zone.alerts = {key: zone.alerts.get(key, now) for key in wanted}
        for product_id in [p for p, c in zone.counts.items() if c.shown == 0 and ("gone", p) not in wanted and p not in zone.area.expected]:
            if zone.counts[product_id].since is None:
                del zone.counts[product_id]  # a misplaced product that left, or one never shown: nothing to keep
        events = []
        for kind, product_id in [("back", p) for _, p in sorted(back)] + sorted(started):  # back first: then it is low
            events.append(self._event(kind, name, zone, product_id, now, catalog))
        return events

    def _event(self, kind: str, name: str, zone: ZoneState, product_id: str, now: float, catalog: Catalog) -> dict:
        count = zone.counts.get(product_id, Count())
        event = make_zone_event(kind=kind, seq=self.sink.next_seq(), device=self.device, camera=self.camera, ts=now, zone=name,
                                product=planogram_ref(product_id, catalog.by_id), facings=count.shown,
                                expected=zone.area.expected.get(product_id), last_seen=count.last_seen,
                                catalog_id=catalog.catalog_id, catalog_version=catalog.version)
        self.sink.emit(event)
        log.info("zone %s: %s %s (%d facings%s)", name, kind, product_id, count.shown,
                 f" of {zone.area.expected[product_id]} expected" if product_id in zone.area.expected else "")
        return event

    def _publish(self, name: str, zone: ZoneState, now: float, catalog: Catalog) -> None:
        shown = [(p, c.shown) for p, c in sorted(zone.counts.items())]
        said = (tuple(shown), tuple(sorted(zone.alerts)))
        if said == zone.published:
            return
        order = [*zone.area.expected, *sorted(p for p in zone.counts if p not in zone.area.expected)]
        rows = [{"product": planogram_ref(p, catalog.by_id), "facings": zone.counts[p].shown, "expected": zone.area.expected.get(p),
                 "last_seen": iso(zone.counts[p].last_seen) if zone.counts[p].last_seen is not None else None}
                for p in order if p in zone.counts]
        alerts = [{"type": kind, "product": p, "since": iso(since)} for (kind, p), since in sorted(zone.alerts.items())]
        state = make_zone_state(device=self.device, camera=self.camera, ts=now, zone=name, products=rows, alerts=alerts,
                                catalog_id=catalog.catalog_id, catalog_version=catalog.version)
        self.sink.set_zone_state(name, state)
        self.states = {**self.states, name: state}
        zone.published = said
        self._save()

    # --- alerts across restarts -------------------------------------------------------------

    def _save(self) -> None:
        if self.memory is None:
            return
        alerts = {name: [{"type": kind, "product": p, "since": since, "last_seen": zone.counts.get(p, Count()).last_seen}
                         for (kind, p), since in sorted(zone.alerts.items())] for name, zone in self.zones.items()}
        try:
            write_json_atomic(self.memory, alerts)
        except OSError as exc:  # a full or read-only disk: the state is still published, only the memory is behind
            log.warning("zone alerts not saved to %s: %s (after a restart they may be reported again)", self.memory, exc)

    def _restore(self) -> None:
        """The alerts that held at the last stop, taken as holding still: only a change from them is reported."""
        self._restored = True
        if self.memory is None or not self.memory.exists():
            return
        try:
            saved = json.loads(self.memory.read_text(encoding="utf-8"))
            restored = {(name, item["type"], item["product"]): (float(item["since"]), item.get("last_seen"))
                        for name, items in saved.items() if name in self.zones for item in items
                        if item["type"] in ("gone", "low", "misplaced")}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("zone alerts in %s unreadable (%s): alerts start afresh", self.memory, exc)
            return
        for (name, kind, product_id), (since, last_seen) in restored.items():
            zone = self.zones[name]
            zone.alerts[(kind, product_id)] = since
            count = zone.counts.setdefault(product_id, Count())
            count.ever = count.ever or kind == "gone"  # a product gone before the stop is still one that stood here
            if count.last_seen is None and isinstance(last_seen, (int, float)):
                count.last_seen = float(last_seen)

    def _check_planogram(self, catalog: Catalog) -> None:
        """One warning per catalog version for planogram products the catalog does not have (a product removed by a
        catalog update): they can only ever be `gone`."""
        key = (catalog.catalog_id, catalog.version)
        if key == self._checked_catalog:
            return
        self._checked_catalog = key
        for name, zone in self.zones.items():
            missing = sorted(set(zone.area.expected) - catalog.by_id.keys())
            if missing:
                log.warning("zone %s: the planogram names products that catalog %s v%d does not have: %s (they can only be "
                            "gone; fix zones.areas.%s.expected)", name, *key, ", ".join(missing), name)


def replace_keeper(old: ZoneKeeper | None, config: Config, zones: ZonesConfig, sink: EventSink) -> ZoneKeeper | None:
    """The keeper for zones saved from the page: removed zones' retained states are cleared, every zone starts afresh."""
    if old is not None:
        for name in set(old.zones) - set(zones.areas):
            sink.set_zone_state(name, None)
    log.info("zones now: %s", ", ".join(zones.areas) or "none")
    keeper = ZoneKeeper.of(config, sink, zones)
    return keeper.remember(memory_path(config)) if keeper is not None else None


def memory_path(config: Config) -> Path:
    """Where the daemon's zone alerts outlive a restart."""
    return config.device.data_dir / "zones.json"
