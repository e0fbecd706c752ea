"""Freeze attacks: a server (or anything in the path) that keeps serving an old signed manifest.

Signed manifests carry an expiry; the server re-signs them well before it; a device that only ever gets an
expired one keeps its catalog and says it is stale (not broken). Real HTTP, real signatures, real bundles.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from edge.daemon.status import sync_stats
from sync_agent.agent import read_status
from sync_agent.bundle import encode_signature, json_bytes, manifest_key
from sync_agent.errors import BundleError, StaleManifestError
from sync_agent.server.app import ServerSettings, resign_loop
from sync_agent.server.publisher import expiry, publish, resign, resign_due
from sync_agent.server.storage import LocalStorage
from sync_agent.trust import CLOCK_SKEW_S


def served_manifest(storage: LocalStorage) -> dict:
    return json.loads(storage.get(manifest_key("shelf")))


def sign_as_server(storage: LocalStorage, key, manifest: dict) -> None:
    body = json_bytes(manifest)
    storage.put(manifest_key("shelf"), body)
    storage.put(manifest_key("shelf") + ".sig", encode_signature(key.sign(body)))


def test_a_published_manifest_carries_an_expiry_the_device_records(tree):
    storage, config, _, _ = tree
    expires = datetime.fromisoformat(served_manifest(storage)["expires"])
    assert timedelta(days=6) < expires - datetime.now(timezone.utc) <= timedelta(days=7)
    status = read_status(config.device.data_dir)
    assert status["fresh_until"] == served_manifest(storage)["expires"] and status["stale"] is False


def test_an_expired_manifest_leaves_the_catalog_in_place_and_marks_it_stale(tree):
    storage, config, agent, key = tree
    old = served_manifest(storage)
    sign_as_server(storage, key, old | {"expires": expiry(-CLOCK_SKEW_S - 60)})  # validly signed, long expired: a replay
    with pytest.raises(StaleManifestError, match="keeping catalog v1, which is now stale"):
        agent.sync_once()
    status = read_status(config.device.data_dir)
    assert status["stale"] is True and status["active_version"] == 1 and "expired" in status["last_error"]
    assert sync_stats(config)["sync"]["stale"] is True  # what the daemon's status and page show
    assert (config.device.data_dir / "catalogs" / "current" / "catalog.json").is_file()  # still identifying with v1


def test_an_expired_newer_version_is_not_installed(tree, catalog):
    storage, config, agent, key = tree
    published = publish(storage, catalog, "shelf", key, 2, valid_for_s=-CLOCK_SKEW_S - 60)
    assert published.version == 2
    with pytest.raises(StaleManifestError):
        agent.sync_once()
    assert read_status(config.device.data_dir)["active_version"] == 1


def test_within_the_clock_allowance_an_expired_manifest_is_still_fresh(tree):
    storage, config, agent, key = tree
    sign_as_server(storage, key, served_manifest(storage) | {"expires": expiry(-CLOCK_SKEW_S + 120)})
    assert agent.sync_once().outcome == "unchanged"
    assert read_status(config.device.data_dir)["stale"] is False


def test_re_signing_makes_a_stale_device_fresh_again_without_a_download(tree):
    storage, config, agent, key = tree
    sign_as_server(storage, key, served_manifest(storage) | {"expires": expiry(-CLOCK_SKEW_S - 60)})
    with pytest.raises(StaleManifestError):
        agent.sync_once()
    manifest = resign(storage, "shelf", key)
    result = agent.sync_once()
    assert result.outcome == "unchanged" and result.version == 1 and result.bytes_downloaded == 0
    status = read_status(config.device.data_dir)
    assert status["stale"] is False and status["fresh_until"] == manifest["expires"] and status["last_error"] is None


def test_a_manifest_without_expiry_after_ones_with_it_is_refused(tree, catalog):
    storage, config, agent, key = tree
    manifest = served_manifest(storage) | {"version": 2}
    del manifest["expires"]
    sign_as_server(storage, key, manifest)
    with pytest.raises(BundleError, match="carries no expiry, yet earlier ones did"):
        agent.sync_once()
    assert read_status(config.device.data_dir)["active_version"] == 1


def test_an_unreadable_expiry_is_a_refusal(tree):
    storage, _, agent, key = tree
    sign_as_server(storage, key, served_manifest(storage) | {"expires": "next tuesday"})
    with pytest.raises(BundleError, match="not an ISO 8601 time"):
        agent.sync_once()


def test_the_same_manifest_again_304_turns_stale_once_its_time_is_up(tree):
    storage, config, agent, key = tree
    status_file = config.device.data_dir / "sync" / "status.json"
    status = read_status(config.device.data_dir)
    # the device's last verified manifest ran out (as if days passed): the server still answers 304 Not Modified
    status_file.write_text(json.dumps(status | {"fresh_until": expiry(-CLOCK_SKEW_S - 60)}))
    with pytest.raises(StaleManifestError):
        agent.sync_once()
    assert read_status(config.device.data_dir)["stale"] is True


def test_resign_due_touches_only_manifests_with_less_than_half_left(tree):
    storage, _, _, key = tree
    now = datetime.now(timezone.utc)
    assert resign_due(storage, key, 7 * 86400, now) == []  # just published: 7 days left
    assert resign_due(storage, key, 7 * 86400, now + timedelta(days=4)) == ["shelf"]  # 3 days left of 7
    assert datetime.fromisoformat(served_manifest(storage)["expires"]) > now + timedelta(days=6)
    storage.put("catalogs/broken/manifest.json", b"{not json")  # one unreadable manifest does not stop the others
    assert resign_due(storage, key, 7 * 86400, now + timedelta(days=8)) == ["shelf"]


def test_the_servers_re_signing_thread_re_signs_and_stops(tree, tmp_path, keys):
    storage, _, _, key = tree
    sign_as_server(storage, key, served_manifest(storage) | {"expires": expiry(60)})  # nearly out
    settings = ServerSettings(root=tmp_path / "server", signing_key=keys[0], token="t", resign_every_s=3600)
    stop = threading.Event()
    thread = threading.Thread(target=resign_loop, args=(storage, key, threading.Lock(), settings, stop))
    thread.start()
    try:
        for _ in range(200):  # the first round runs at once
            if datetime.fromisoformat(served_manifest(storage)["expires"]) > datetime.now(timezone.utc) + timedelta(days=6):
                break
            stop.wait(0.05)
        else:
            pytest.fail("the re-signing thread did not re-sign a manifest with a minute left")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
