"""Announcements heard on MQTT: hostile payloads refused, versions not above the active one ignored, floods rate-limited."""

from __future__ import annotations

import json

import pytest

from edge.core.catalog import installed_version
from edge.core.config import Config
from edge.daemon import run as daemon
from edge.reporting.announcements import MAX_CATALOG_VERSION, AnnouncementGate, parse_announcement


@pytest.mark.parametrize("payload", [b"[" * 200_000, b"[" * 1000, b"\xff\xfe", b"[1, 2]", b'{"version": "7"}', b'{"version": true}',
                                     b'{"version": 0}', b'{"version": 4611686018427387904}', b'{"version": 7.0}', b"null",
                                     b'{"version": 7, "pad": "' + b"x" * 5000 + b'"}'])
def test_anything_but_a_small_object_with_a_sane_integer_version_is_refused(payload):
    with pytest.raises(ValueError):
        parse_announcement(payload)


def test_a_well_formed_announcement_gives_its_version():
    assert parse_announcement(b'{"catalog": "shelf", "version": 12}') == 12
    assert parse_announcement(json.dumps({"version": MAX_CATALOG_VERSION}).encode()) == MAX_CATALOG_VERSION


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_admits_only_newer_versions_and_at_most_a_burst_then_one_per_interval():
    clock, active = Clock(), [5]
    gate = AnnouncementGate(lambda: active[0], burst=3, interval_s=20.0, clock=clock)
    assert not gate.admit(5) and not gate.admit(4)  # not above the active version
    assert [gate.admit(6) for _ in range(1000)].count(True) == 3  # a flood: the burst, then nothing
    clock.now += 20.0
    assert gate.admit(7) and not gate.admit(7)
    active[0] = 7
    clock.now += 100.0
    assert not gate.admit(7) and gate.admit(8)
    assert gate.ignored == 1000 - 3 + 2 + 1 + 1


def test_a_flood_of_announcements_rewrites_the_trigger_file_a_few_times_with_the_parsed_version_only(tmp_path, monkeypatch):
    config = Config.model_validate({"device": {"data_dir": str(tmp_path)}})
    current = tmp_path / "catalogs" / "current"
    current.mkdir(parents=True)
    (current / "catalog.json").write_text(json.dumps({"version": 4}))
    assert installed_version(current) == 4
    writes: list[int] = []
    real = daemon.trigger_sync
    monkeypatch.setattr(daemon, "trigger_sync", lambda c, v: (writes.append(v), real(c, v))[1])
    on_announcement = daemon.sync_trigger(config)
    on_announcement(4)  # what is active already: nothing to do
    assert writes == []
    for _ in range(1000):
        on_announcement(5)
    assert writes == [5, 5, 5]
    assert json.loads((tmp_path / "sync" / "trigger").read_text()) == {"version": 5}


def test_the_servers_announcement_is_what_the_devices_parse():
    from edge.reporting.announcements import announcement_payload, parse_announcement

    assert parse_announcement(announcement_payload("shelf", 7)) == 7
    with pytest.raises(ValueError, match="outside"):
        announcement_payload("shelf", 0)
