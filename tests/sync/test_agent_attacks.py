"""The device agent against hostile bundles and hosts: signed-but-malicious content, trickling servers, odd files.

Each test is the regression test of one finding of the attack run (docs/security.md).
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import threading
import tracemalloc

import numpy as np
import pytest

from edge.core.ids import PRODUCT_ID
from sync_agent.agent import Agent, read_status, run_forever
from sync_agent.bundle import blob_key, encode_signature, json_bytes, make_bundle, manifest_key, sha256_hex
from sync_agent.errors import BundleError, SyncError
from sync_agent.server.publisher import expiry, publish
from sync_agent.server.storage import LocalStorage
from sync_agent.signing import load_private_key
from tests.sync.conftest import device_config
from tools.mqtt_harness import free_port


def publish_signed(storage: LocalStorage, catalog, key, version: int, mutate) -> None:
    """Publish `version` after `mutate(parts)` changed the first shard's parts ({name: bytes}), signed with the real key."""
    bundle = make_bundle(catalog, "shelf", version, expires=expiry(3600))  # signed like the server signs: with an expiry
    manifest, blobs = json.loads(json.dumps(bundle.manifest)), dict(bundle.blobs)
    shard = manifest["shards"][0]
    parts = {name: blobs[p["sha256"]] for name, p in shard["parts"].items()}
    mutate(parts)
    for name, data in parts.items():
        blobs[sha256_hex(data)] = data
        shard["parts"][name] = {"sha256": sha256_hex(data), "size": len(data)}
    manifest["blobs"] = [{"sha256": sha, "size": len(data)} for sha, data in sorted(blobs.items())]
    for sha, data in blobs.items():
        storage.put(blob_key(sha), data)
    body = json_bytes(manifest)
    storage.put(manifest_key("shelf"), body)
    storage.put(manifest_key("shelf") + ".sig", encode_signature(key.sign(body)))


def current_version(config) -> int:
    return json.loads((config.device.data_dir / "catalogs" / "current" / "catalog.json").read_text())["version"]


@pytest.mark.parametrize("name", ["../../../escaped", "ABSOLUTE"])
def test_a_signed_bundle_whose_thumbnail_names_leave_the_data_dir_is_refused_and_writes_nothing_outside(tree, catalog, tmp_path,
                                                                                                         name):
    storage, config, agent, key = tree
    target = tmp_path / "outside" / "x" if name == "ABSOLUTE" else None
    name = str(target) if target else name

    def mutate(parts):
        thumbs = json.loads(parts["thumbnails"]) if "thumbnails" in parts else {}
        thumbs[name] = base64.b64encode(b"owned").decode()
        parts["thumbnails"] = json_bytes(thumbs)

    publish_signed(storage, catalog, key, 2, mutate)
    with pytest.raises(BundleError, match="not product ids"):
        agent.sync_once()
    written = [p for p in tmp_path.rglob("*escaped*")] + ([target.with_suffix(".jpg")] if target and target.with_suffix(".jpg").exists() else [])
    assert written == [] and current_version(config) == 1
    assert "not product ids" in read_status(config.device.data_dir)["last_error"]


def test_a_thumbnail_name_is_refused_by_the_catalog_writer_too(tmp_path):
    from edge.core.catalog_build import write_catalog_arrays
    from edge.core.errors import CatalogError

    with pytest.raises(CatalogError, match="not product ids"):
        write_catalog_arrays(tmp_path, {}, [], [], *(np.zeros((0, 1)) for _ in range(5)), thumbnails={"../x": b"j"})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CatalogError, match="image thumbnails for images"):
        write_catalog_arrays(tmp_path, {}, [], [], *(np.zeros((0, 1)) for _ in range(5)), image_thumbnails={"../x": b"j"})
    assert list(tmp_path.iterdir()) == []


def test_an_extra_product_key_or_an_object_array_is_a_refusal_and_the_forever_agent_lives_on(tree, catalog):
    storage, config, agent, key = tree

    def extra_key(parts):
        products = json.loads(parts["products"])
        products[0]["surprise"] = 1
        parts["products"] = json_bytes(products)

    publish_signed(storage, catalog, key, 2, extra_key)
    with pytest.raises(BundleError, match="catalog v2"):
        agent.sync_once()

    def object_array(parts):
        buffer = io.BytesIO()
        np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        parts["embeddings"] = buffer.getvalue()

    publish_signed(storage, catalog, key, 3, object_array)
    tried, stop, wake = threading.Event(), threading.Event(), threading.Event()
    original = agent.sync_once

    def observed():
        try:
            return original()
        finally:
            tried.set()
            stop.set()

    agent.sync_once = observed
    loop = threading.Thread(target=run_forever, args=(agent, stop, wake))
    loop.start()
    assert tried.wait(60)
    loop.join(10)
    assert not loop.is_alive()  # it ended because stop was set, not by an exception: see the status
    status = read_status(config.device.data_dir)
    assert "catalog v3" in status["last_error"] and current_version(config) == 1


@pytest.mark.parametrize("version", [2 ** 62, 100_002])
def test_a_signed_version_far_above_the_installed_one_is_refused(tree, catalog, version):
    storage, config, agent, key = tree
    publish_signed(storage, catalog, key, version, lambda parts: None)
    with pytest.raises(BundleError, match="2147483647|jumps more than"):
        agent.sync_once()
    assert current_version(config) == 1
    publish_signed(storage, catalog, key, 2, lambda parts: None)  # the genuine next version still lands
    assert agent.sync_once().version == 2


def test_publish_refuses_a_version_devices_would_refuse(tmp_path, catalog, keys):
    storage = LocalStorage(tmp_path / "tree")
    with pytest.raises(SyncError, match="devices would refuse it"):
        publish(storage, catalog, "shelf", load_private_key(keys[0]), 2 ** 40)


class Trickle(http.server.BaseHTTPRequestHandler):
    """A hostile static host: promises 10 kB, sends one byte every 0.2 s. Records what the device's status said meanwhile."""

    status_path = None
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        Trickle.seen.append(read_status(Trickle.status_path))
        self.send_response(200)
        self.send_header("Content-Length", "10000")
        self.end_headers()
        try:
            for _ in range(10000):
                self.wfile.write(b"{")
                self.wfile.flush()
                if Trickle.done.wait(0.2):
                    return
        except OSError:
            return

    def log_message(self, *args):
        pass


def test_a_trickling_host_is_cut_off_at_the_sync_deadline_and_the_attempt_is_recorded_first(tmp_path, keys):
    port = free_port()
    config = device_config(tmp_path, f"http://127.0.0.1:{port}", keys[1], deadline_s=5)
    Trickle.status_path, Trickle.seen, Trickle.done = config.device.data_dir, [], threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        agent = Agent(config, model_ids=("e", "v"))
        with pytest.raises(SyncError, match="deadline"):
            agent.sync_once()
    finally:
        Trickle.done.set()
        server.shutdown()
    assert Trickle.seen and Trickle.seen[0].get("last_attempt"), "status.json did not record the attempt before the request"
    assert "deadline" in read_status(config.device.data_dir)["last_error"]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_file_tree_pointing_at_a_fifo_or_a_device_is_refused_at_once(tmp_path, keys, kind):
    manifest = tmp_path / "stick" / manifest_key("shelf")
    manifest.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(manifest)
    else:
        manifest.symlink_to("/dev/zero")
    config = device_config(tmp_path, f"file://{tmp_path / 'stick'}", keys[1])
    with pytest.raises(SyncError, match="not a regular file"):
        Agent(config, model_ids=("e", "v")).sync_once()


def test_blobs_are_hashed_as_they_stream_not_read_whole(tree, catalog):
    storage, config, agent, key = tree
    big = np.zeros(48 * 1024 * 1024, np.uint8).tobytes()
    bundle = make_bundle(catalog, "shelf", 2, expires=expiry(3600))
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["blobs"].append({"sha256": sha256_hex(big), "size": len(big)})  # listed, fetched and checked like any blob
    storage.put(blob_key(sha256_hex(big)), big)
    del big
    body = json_bytes(manifest)
    storage.put(manifest_key("shelf"), body)
    storage.put(manifest_key("shelf") + ".sig", encode_signature(key.sign(body)))
    tracemalloc.start()
    try:
        assert agent.sync_once().version == 2
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB while syncing a 48 MiB blob"


def test_a_folder_whose_name_ends_in_a_newline_is_not_a_product(tmp_path):
    from edge.core.catalog_build import BuildReport, scan

    for name in ("a\n", "good"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "front.jpg").write_bytes(b"")
    report = BuildReport()
    assert [pid for pid, _ in scan(tmp_path, report)] == ["good"] and len(report.skipped) == 1
    assert all(PRODUCT_ID.fullmatch(pid) is None for pid in ("a\n", "a/b", "../a", "", ".a", "a" * 129))


@pytest.mark.parametrize("name", ["../../../escaped", "0" * 64])
def test_a_signed_bundle_whose_image_thumbnails_name_no_image_of_the_shard_is_refused(tree, catalog, tmp_path, name):
    """Image thumbnails are keyed by an image's sha256 and written under the image's index: a key that is no image of
    the shard (a path, another shard's image) is refused before anything is written."""
    storage, config, agent, key = tree

    def mutate(parts):
        parts["image_thumbnails"] = json_bytes({name: base64.b64encode(b"owned").decode()})

    publish_signed(storage, catalog, key, 2, mutate)
    with pytest.raises(BundleError, match="image thumbnails name no image of the shard"):
        agent.sync_once()
    assert list(tmp_path.rglob("*escaped*")) == [] and current_version(config) == 1
