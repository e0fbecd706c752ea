"""Shelf zones: the polygon rules, the config section, the state machine on frame time, and saving zones to the file."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jsonschema
import pytest

from edge.core.catalog import Product
from edge.core.config import Config, ZonesConfig
from edge.core.config_file import load_config
from edge.core.errors import ConfigError, ConfigFileError
from edge.core.polygons import contains, problem
from edge.core.zones_file import save_zone_areas
from edge.daemon.tracker import Track
from edge.daemon.zones import Count, ZoneKeeper, smooth
from edge.reporting.sinks import MemorySink
from tests.conftest import REPO

CHANGE = json.loads((REPO / "schemas" / "zone-change.schema.json").read_text())
STATE = json.loads((REPO / "schemas" / "zone-state.schema.json").read_text())
SQUARE = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]  # the left half of the frame
PRODUCTS = [Product("limao", "111", "Chá Mate Limão"), Product("natural", "222", "Chá Mate Natural")]
CATALOG = SimpleNamespace(catalog_id="shelf", version=3, products=PRODUCTS, by_id={p.product_id: p for p in PRODUCTS})
SHAPE = (100, 200, 3)  # frame height, width


class RecordingSink(MemorySink):
    """MemorySink that also keeps the zone states handed to it (the retained topic's stand-in)."""

    def __init__(self):
        super().__init__()
        self.states: list[tuple[str, dict | None]] = []

    def set_zone_state(self, zone, state):
        self.states.append((zone, state))


def track(track_id: int, x: float, product: str | None = "limao") -> Track:
    """A box 20 px wide centred at x (frame pixels), confirmed as `product`."""
    t = Track(track_id, (x - 10, 30, x + 10, 70), 0.0, 0.0)
    t.confirmed = product
    return t


def keeper(expected: dict | None = None, **timing) -> tuple[ZoneKeeper, RecordingSink]:
    zones = ZonesConfig.model_validate({"present_after_s": 1, "gone_after_s": 5, "stationary_s": 0.5, **timing,
                                        "areas": {"left": {"polygon": SQUARE, "expected": expected or {}}}})
    sink = RecordingSink()
    return ZoneKeeper(zones, sink, "aisle-7", "cam0"), sink


def play(k: ZoneKeeper, start: float, end: float, tracks: list[Track], fps: float = 10) -> float:
    t = start
    while t < end - 1e-9:
        k.update(tracks, t, SHAPE, CATALOG)
        t = round(t + 1 / fps, 6)
    return t


def kinds(sink: RecordingSink) -> list[str]:
    return [e["type"] for e in sink.events]


# --- geometry and config --------------------------------------------------------------------

def test_polygon_problems_name_what_is_wrong():
    assert problem([(0, 0), (1, 0), (1, 1)]) is None
    assert "at least 3" in problem([(0, 0), (1, 1)])
    assert "crosses itself" in problem([(0, 0), (1, 1), (1, 0), (0, 1)])
    assert "one line" in problem([(0, 0), (0.5, 0.5), (1, 1)])
    assert "same point" in problem([(0, 0), (1, 0), (1, 0), (0, 1)])
    assert contains([(0, 0), (1, 0), (1, 1), (0, 1)], (0.5, 0.5)) and not contains([(0, 0), (1, 0), (0, 1)], (0.9, 0.9))


@pytest.mark.parametrize("zone,expected", [
    ("left: {polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]}", "zones.areas.left.polygon: [[0, 0], [1, 1], [1, 0], [0, 1]] — not a "
                                                           "polygon: the outline crosses itself (edge 0-1 crosses edge 2-3)"),
    ("left: {polygon: [[0, 0], [1, 1]]}", "zones.areas.left.polygon: [[0, 0], [1, 1]] — List should have at least 3 items"),
    ("left: {polygon: [[0, 0], [1, 0], [1, 1.5]]}", "zones.areas.left.polygon.2.1: 1.5 — Input should be less than or equal to 1"),
    ("left: {polygon: [[0, 0], [1, 0], [1, 1]], colour: red}", "zones.areas.left.colour: unknown key — allowed here: polygon, expected"),
    ("left/x: {polygon: [[0, 0], [1, 0], [1, 1]]}", "zones.areas: (section) — zone name 'left/x' is not allowed"),
    ("left: {polygon: [[0, 0], [1, 0], [1, 1]], expected: {limao: 0}}", "zones.areas.left.expected.limao: 0 — Input should be greater"),
])
def test_a_bad_zone_in_the_config_file_is_named_with_its_line(tmp_path, zone, expected):
    path = tmp_path / "config.yaml"
    path.write_text(f"device: {{id: a}}\nzones:\n  areas:\n    {zone}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [line] = info.value.problems
    assert line.startswith(expected) and line.endswith("(line 3)" if "name" in expected else "(line 4)"), line


# --- the state machine ------------------------------------------------------------------------

def test_smoothing_ignores_a_short_dip_and_follows_a_lasting_one():
    c = Count(shown=3)
    assert not smooth(c, 2, 0.0, 1, 5) and not smooth(c, 1, 4.9, 1, 5)
    assert not smooth(c, 3, 5.0, 1, 5) and c.shown == 3 and c.since is None  # back before gone_after_s: no change
    for t in (6.0, 8.0):
        assert not smooth(c, 1 if t == 6 else 2, t, 1, 5)
    assert smooth(c, 1, 11.0, 1, 5) and c.shown == 2  # fell after 5 s, to the most seen meanwhile
    assert not smooth(c, 4, 12.0, 1, 5) and smooth(c, 4, 13.0, 1, 5) and c.shown == 4


def test_gone_after_gone_after_s_back_after_its_return_and_no_flap_while_an_arm_crosses():
    k, sink = keeper()
    both = [track(1, 40), track(2, 70)]
    t = play(k, 0, 8, both)  # settles at gone_after_s + present_after_s = 6 s
    [(zone, first)] = sink.states
    assert zone == "left" and [p["facings"] for p in first["products"]] == [2] and first["alerts"] == []
    jsonschema.validate(first, STATE, format_checker=jsonschema.FormatChecker())
    t = play(k, t, t + 3, [])  # a shopper's arm hides both for 3 s (< gone_after_s)
    t = play(k, t, t + 2, both)
    assert sink.events == [] and len(sink.states) == 1
    removed_at = t
    t = play(k, t, t + 4.95, [])
    assert sink.events == []  # not yet gone_after_s
    t = play(k, t, t + 0.2, [])
    [gone] = sink.events
    assert gone["type"] == "gone" and gone["facings"] == 0 and gone["zone"] == "left"
    assert gone["product"] == {"id": "limao", "sku": "111", "name": "Chá Mate Limão"}
    assert 5.0 <= t - removed_at <= 5.3
    state = sink.states[-1][1]
    assert state["alerts"][0]["type"] == "gone" and state["products"][0]["facings"] == 0
    t = play(k, t, t + 0.5, [track(3, 40)])  # back, but not stationary for long enough yet, nor present long enough
    assert kinds(sink) == ["gone"]
    t = play(k, t, t + 1.5, [track(3, 40)])
    assert kinds(sink) == ["gone", "back"]
    assert sink.states[-1][1]["alerts"] == [] and sink.states[-1][1]["products"][0]["facings"] == 1
    for event in sink.events:
        jsonschema.validate(event, CHANGE, format_checker=jsonschema.FormatChecker())


def test_a_product_back_with_fewer_facings_than_expected_is_back_then_low():
    k, sink = keeper(expected={"limao": 2})
    t = play(k, 0, 8, [track(1, 30), track(2, 60)])
    t = play(k, t, t + 6, [])
    t = play(k, t, t + 2, [track(3, 30)])
    assert kinds(sink) == ["gone", "back", "low"]
    assert [a["type"] for a in sink.states[-1][1]["alerts"]] == ["low"]


def test_a_planogram_raises_low_and_misplaced_and_a_missing_expected_product_is_gone():
    k, sink = keeper(expected={"limao": 3, "cola": 1})
    play(k, 0, 8, [track(1, 30), track(2, 60), track(3, 80, "natural"), track(4, 150, "natural")])  # 4: outside the zone
    assert sorted(kinds(sink)) == ["gone", "low", "misplaced"]
    by_type = {e["type"]: e for e in sink.events}
    assert by_type["low"]["product"]["id"] == "limao" and by_type["low"]["facings"] == 2 and by_type["low"]["expected"] == 3
    assert by_type["misplaced"]["product"]["id"] == "natural" and by_type["misplaced"]["expected"] is None
    assert by_type["gone"]["product"] == {"id": "cola", "sku": "", "name": "cola"}  # not in the catalog: its id
    assert by_type["gone"]["last_seen"] is None
    state = sink.states[-1][1]
    assert [(p["product"]["id"], p["facings"], p["expected"]) for p in state["products"]] == [
        ("limao", 2, 3), ("cola", 0, 1), ("natural", 1, None)]
    jsonschema.validate(state, STATE, format_checker=jsonschema.FormatChecker())


def test_unconfirmed_unknown_and_moving_tracks_are_not_facings():
    k, sink = keeper()
    moving = [track(1, 10)]
    t = 0.0
    while t < 8:
        k.update([track(2, 40, None), *moving], t, SHAPE, CATALOG)
        moving = [track(1, moving[0].bbox[0] + 10 + 8)]  # 8 px a frame: never stays put
        moving[0].bbox = (moving[0].bbox[0] % 90, 30, moving[0].bbox[0] % 90 + 20, 70)
        t = round(t + 0.1, 6)
    assert sink.states[-1][1]["products"] == [] and sink.events == []


# --- saving zones drawn on the page -------------------------------------------------------------

CONFIG = """# the installer's notes
device:
  id: aisle-7   # keep
zones:
  gone_after_s: 20
  areas: {}
# the page comes last
web:
  enabled: true
"""


def test_saving_zones_keeps_the_rest_of_the_file_and_a_backup(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    path.chmod(0o640)
    config = save_zone_areas(path, {"top": {"polygon": SQUARE, "expected": {"limao": 2}}}, {"limao", "natural"})
    assert config.zones.areas["top"].expected == {"limao": 2} and config.zones.gone_after_s == 20
    text = path.read_text()
    assert "# the installer's notes" in text and "id: aisle-7   # keep" in text and "# the page comes last\nweb:" in text
    assert load_config(path) == config
    assert (tmp_path / "config.yaml.bak").read_text() == CONFIG
    assert path.stat().st_mode & 0o777 == 0o640


def test_saving_appends_zones_to_a_file_without_them_and_rewrites_a_flow_mapping(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("device: {id: a}\n")
    assert save_zone_areas(path, {"z": {"polygon": SQUARE}}, set()).zones.areas["z"].expected == {}
    assert path.read_text().startswith("device: {id: a}\n\nzones:\n")
    path.write_text("{device: {id: b}}\n")
    assert save_zone_areas(path, {"z": {"polygon": SQUARE}}, set()).device.id == "b"


@pytest.mark.parametrize("areas,expected", [
    ({"top": {"polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}}, "zones.areas.top.polygon: [[0, 0], [1, 1], [1, 0], [0, 1]] — not a polygon"),
    ({"top": {"polygon": SQUARE, "expected": {"cola": 1}}}, "zones.areas.top.expected.cola: unknown product — the catalog in use has: limao"),
    ({"top": {"polygon": "a square"}}, "zones.areas.top.polygon: 'a square' — Input should be a valid list"),
    ([1, 2], "zones.areas: [1, 2] — Input should be a valid dictionary"),
])
def test_a_bad_save_is_refused_and_leaves_the_file_and_backup_untouched(tmp_path, areas, expected):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError) as info:
        save_zone_areas(path, areas, {"limao"})
    assert info.value.problems[0].startswith(expected), info.value.problems
    assert path.read_text() == CONFIG and not (tmp_path / "config.yaml.bak").exists()


def test_a_config_file_broken_by_hand_is_not_overwritten(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("device: [\n")
    with pytest.raises(ConfigFileError, match="not valid YAML now"):
        save_zone_areas(path, {"z": {"polygon": SQUARE}}, set())
    assert path.read_text() == "device: [\n"


def test_the_default_config_keeps_no_zones():
    assert Config().zones.areas == {} and ZoneKeeper.of(Config(), MemorySink()) is None


def test_an_alert_that_held_before_a_restart_is_not_reported_again_and_a_return_meanwhile_is(tmp_path):
    memory = tmp_path / "zones.json"
    first, sink = keeper(expected={"limao": 1, "natural": 1})
    first.remember(memory)
    play(first, 0, 8, [track(1, 30)])  # natural never there: gone
    assert kinds(sink) == ["gone"] and json.loads(memory.read_text())["left"][0]["type"] == "gone"
    since = sink.states[-1][1]["alerts"][0]["since"]

    still_gone, sink = keeper(expected={"limao": 1, "natural": 1})  # the daemon restarted; the shelf is as it was
    play(still_gone.remember(memory), 100, 108, [track(1, 30)])
    assert sink.events == []  # no second gone: the same alert, the same since
    assert sink.states[-1][1]["alerts"] == [{"type": "gone", "product": "natural", "since": since}]

    refilled, sink = keeper(expected={"limao": 1, "natural": 1})  # restarted again, after a refill
    play(refilled.remember(memory), 200, 208, [track(1, 30), track(2, 60, "natural")])
    assert kinds(sink) == ["back"] and sink.states[-1][1]["alerts"] == []


def test_an_unreadable_memory_starts_afresh(tmp_path, caplog):
    memory = tmp_path / "zones.json"
    memory.write_text('{"left": [{"type": "gone"}]')
    k, sink = keeper(expected={"natural": 1})
    play(k.remember(memory), 0, 8, [])
    assert kinds(sink) == ["gone"] and "alerts start afresh" in caplog.text
