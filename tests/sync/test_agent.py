"""The device agent against a real HTTP server publishing real bundles: what it refuses, and that it never leaves a broken `current`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from edge.core.config import Config
from sync_agent.agent import Agent, device_model_ids, read_status
from sync_agent.bundle import blob_key, manifest_key
from sync_agent.errors import BundleError, SignatureError, SyncError
from sync_agent.server.publisher import publish
from sync_agent.server.storage import LocalStorage
from sync_agent.signing import generate_keypair, load_private_key
from tests.sync.conftest import device_config


def current_version(config: Config) -> int:
    return json.loads((config.device.data_dir / "catalogs" / "current" / "catalog.json").read_text())["version"]


def test_a_tampered_manifest_is_refused_and_current_stays(bench):
    storage, config, publish_version = bench
    publish_version(1)
    agent = Agent(config)
    agent.sync_once()
    publish_version(2)
    manifest = storage.get(manifest_key("shelf"))
    storage.put(manifest_key("shelf"), manifest.replace(b'"version":2', b'"version":3'))
    with pytest.raises(SignatureError, match="does not verify"):
        agent.sync_once()
    assert current_version(config) == 1 and "signature" in read_status(config.device.data_dir)["last_error"]


def test_a_manifest_signed_by_another_key_is_refused(bench, tmp_path):
    _, config, publish_version = bench
    other, _ = generate_keypair(tmp_path / "other")
    publish_version(1, signing_key=load_private_key(other))
    with pytest.raises(SignatureError):
        Agent(config).sync_once()
    assert not (config.device.data_dir / "catalogs" / "current").exists()


def test_an_older_version_is_refused_even_when_properly_signed(bench):
    storage, config, publish_version = bench
    publish_version(5)
    agent = Agent(config)
    agent.sync_once()
    for key in (manifest_key("shelf"), manifest_key("shelf") + ".sig"):
        storage.delete(key)
    publish_version(3)  # e.g. an old manifest replayed by someone in the middle
    with pytest.raises(BundleError, match="version 3 is not newer than v5"):
        agent.sync_once()
    assert current_version(config) == 5


def test_a_catalog_for_another_embedder_is_refused(bench, catalog):
    _, config, publish_version = bench
    info = dict(catalog.info, embedder=dict(catalog.info["embedder"], model_id="f" * 64))
    publish_version(1, cat=dataclasses.replace(catalog, info=info))
    with pytest.raises(BundleError, match="built with embedder ffffffffffff"):
        Agent(config).sync_once()


def test_a_corrupted_blob_is_discarded_then_the_repaired_server_completes_the_sync(bench):
    storage, config, publish_version = bench
    done = publish_version(1)
    victim = done.manifest["blobs"][0]["sha256"]
    good = storage.get(blob_key(victim))
    storage.put(blob_key(victim), bytes([good[0] ^ 0xFF]) + good[1:])  # same size, other content
    agent = Agent(config)
    with pytest.raises(BundleError, match="does not match its sha256"):
        agent.sync_once()
    assert not (config.device.data_dir / "catalogs" / "current").exists()
    assert not (config.device.data_dir / "blobs" / "sha256" / victim).exists()
    storage.put(blob_key(victim), good)
    assert agent.sync_once().outcome == "updated" and current_version(config) == 1


def test_a_blob_larger_than_its_manifest_says_is_cut_off(bench):
    storage, config, publish_version = bench
    done = publish_version(1)
    victim = done.manifest["blobs"][-1]["sha256"]
    storage.put(blob_key(victim), storage.get(blob_key(victim)) + b"\0" * 1_000_000)
    with pytest.raises(SyncError, match="more than the manifest's"):
        Agent(config).sync_once()


def test_an_interrupted_download_resumes_with_a_range_request(bench):
    storage, config, publish_version = bench
    done = publish_version(1)
    biggest = max(done.manifest["blobs"], key=lambda b: b["size"])
    partial = config.device.data_dir / "blobs" / "partial"
    partial.mkdir(parents=True)
    half = biggest["size"] // 2
    (partial / biggest["sha256"]).write_bytes(storage.get(blob_key(biggest["sha256"]))[:half])
    result = Agent(config).sync_once()
    total = sum(b["size"] for b in done.manifest["blobs"])
    assert result.outcome == "updated" and result.bytes_downloaded == total - half


def test_an_unreachable_server_is_a_clear_error_recorded_in_status(tmp_path, keys):
    from tools.mqtt_harness import free_port

    config = device_config(tmp_path, f"http://127.0.0.1:{free_port()}", keys[1])
    with pytest.raises(SyncError, match=r"^catalog server http://127.0.0.1:\d+/ not reachable \(connection refused\): "
                                        r"is it running\? check sync.server_url$"):
        Agent(config, model_ids=device_model_ids(config)).sync_once()
    status = read_status(config.device.data_dir)
    assert status["last_error"].startswith("catalog server http://127.0.0.1:") and status["active_version"] == 0


def test_old_versions_beyond_keep_versions_and_their_blobs_are_removed(bench, catalog):
    storage, config, publish_version = bench
    config = config.model_copy(update={"sync": config.sync.model_copy(update={"keep_versions": 2})})
    agent = Agent(config)
    for version in (1, 2, 3):
        publish_version(version)
        agent.sync_once()
    kept = sorted(p.name for p in (config.device.data_dir / "catalogs").glob("v*"))
    assert kept == ["v2", "v3"] and current_version(config) == 3
    assert agent.rollback() == 2
    with pytest.raises(SyncError, match="no version older than v2"):
        agent.rollback()


def test_the_daemons_stats_carry_the_agents_status(bench):
    from edge.daemon.status import sync_stats

    _, config, publish_version = bench
    publish_version(1)
    Agent(config).sync_once()
    stats = sync_stats(config)["sync"]
    assert stats["active_version"] == 1 and stats["last_error"] is None and stats["last_success"]
    assert sync_stats(Config()) == {}  # a device that does not sync reports nothing about it


def test_a_tree_on_a_mounted_folder_syncs_through_file_urls(tmp_path, keys, catalog):
    """The same static tree from a USB stick or NFS mount: file:// server URL, same checks, conditional on mtime+size."""
    storage = LocalStorage(tmp_path / "stick")
    publish(storage, catalog, "shelf", load_private_key(keys[0]), 1)
    config = device_config(tmp_path, f"file://{tmp_path / 'stick'}", keys[1])
    agent = Agent(config)
    assert agent.sync_once().outcome == "updated" and current_version(config) == 1
    assert agent.sync_once().outcome == "unchanged"
    publish(storage, catalog, "shelf", load_private_key(keys[0]), 2)
    assert agent.sync_once().version == 2


def test_an_announcement_heard_during_a_sync_starts_another_one(bench):
    """run_forever cleared `wake` after each sync, wiping an announcement that arrived during it: the device then
    waited for the next poll (15 min by default). Found by tools/fleet_sim.py."""
    import threading

    from sync_agent.agent import run_forever

    storage, config, publish_version = bench
    publish_version(1)
    agent = Agent(config)
    stop, wake, installed = threading.Event(), threading.Event(), threading.Event()
    original, calls = agent.sync_once, []

    def sync_while_v2_is_announced():
        calls.append(1)
        result = original()
        if len(calls) == 1:  # v1 fetched and installed; v2 is published and announced before this sync returns
            publish_version(2)
            wake.set()  # what the MQTT follower does when the announcement arrives
        if result.version == 2:
            installed.set()
        return result

    agent.sync_once = sync_while_v2_is_announced
    loop = threading.Thread(target=run_forever, args=(agent, stop, wake))
    loop.start()
    try:
        assert installed.wait(60), "the announcement heard during the first sync was lost"
    finally:
        stop.set()
        wake.set()
        loop.join(60)
    assert current_version(config) == 2
