"""S3Storage against a real S3-compatible server (moto's, a process on loopback): the storage contract, the catalog
server publishing into and deleting from a bucket, and a device syncing straight from the bucket's HTTP endpoint."""

from __future__ import annotations

import json

import pytest
import requests

from edge.core.config import Config
from sync_agent.agent import Agent
from sync_agent.bundle import blob_key, manifest_key
from sync_agent.errors import SyncError
from sync_agent.server.app import ServerSettings, create_app
from sync_agent.server.publisher import collect_garbage, publish
from sync_agent.server.storage import S3Storage
from sync_agent.signing import load_private_key
from tests.sync.conftest import TOKEN, device_config
from tools.http_harness import ServerThread
from tools.s3_harness import MotoS3

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORPHAN = "0" * 64  # a blob no manifest names: what an interrupted publish leaves


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with MotoS3(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def bucket(moto, monkeypatch, request):
    """A fresh bucket per test with anonymous read under `fleet/`; (storage, the prefix's public URL)."""
    for name, value in moto.credentials().items():
        monkeypatch.setenv(name, value)
    name = "bundles-" + request.node.name.replace("_", "-")[:40].lower().strip("-")
    url = moto.public_bucket(name, "fleet")
    return S3Storage(name, "fleet", moto.url), url


def test_storage_contract_on_a_bucket(bucket):
    storage, url = bucket
    storage.put("catalogs/shelf/manifest.json", b"{}")
    storage.put("catalogs-old/x", b"1")
    storage.put("blobs/sha256/ab", b"blob")
    assert storage.get("catalogs/shelf/manifest.json") == b"{}" and storage.get("catalogs/none.json") is None
    assert storage.has("blobs/sha256/ab") and not storage.has("blobs/sha256/cd")
    assert storage.keys("catalogs") == ["catalogs/shelf/manifest.json"]  # a folder, as LocalStorage lists it
    assert storage.keys("") == ["blobs/sha256/ab", "catalogs-old/x", "catalogs/shelf/manifest.json"]
    storage.delete("blobs/sha256/ab")
    storage.delete("blobs/sha256/ab")  # deleting what is gone is not an error
    assert storage.keys("blobs") == []
    for key in ("../escape", "/abs", "catalogs//x", "catalogs/./x"):
        with pytest.raises(SyncError, match="not a relative path"):
            storage.put(key, b"x")


def test_a_missing_bucket_is_one_clear_error(moto, monkeypatch):
    for name, value in moto.credentials().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SyncError, match=r"S3 put s3://no-such-bucket/fleet/catalogs/x failed \(NoSuchBucket"):
        S3Storage("no-such-bucket", "fleet", moto.url).put("catalogs/x", b"x")


def test_a_device_syncs_straight_from_the_bucket_endpoint(bucket, catalog, keys, tmp_path):
    storage, url = bucket
    published = publish(storage, catalog, "shelf", load_private_key(keys[0]), 1)
    manifest = requests.get(url + manifest_key("shelf"), timeout=10)  # anonymous, as a device asks
    blob = requests.get(url + blob_key(published.manifest["blobs"][0]["sha256"]), timeout=10)
    assert manifest.headers["Content-Type"] == "application/json" and manifest.headers["Cache-Control"] == "no-cache"
    assert blob.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    storage.client.put_object(Bucket=storage.bucket, Key="private/notes", Body=b"not for devices")
    assert requests.get(url.replace("/fleet/", "/private/") + "notes", timeout=10).status_code == 403  # only the prefix is public

    agent = Agent(device_config(tmp_path, url, keys[1]))
    first = agent.sync_once()
    assert first.outcome == "updated" and first.version == 1 and first.blobs_downloaded == published.blobs
    assert agent.sync_once().outcome == "unchanged"  # the bucket answered the conditional GET with 304
    assert json.loads((tmp_path / "device/catalogs/current/manifest.json").read_text())["version"] == 1


def test_the_server_lists_publishes_and_deletes_catalogs_in_a_bucket(bucket, catalog, keys, tmp_path):
    storage, _ = bucket
    server = ServerThread(create_app(ServerSettings(root=tmp_path / "server", signing_key=keys[0], token=TOKEN, config=Config(),
                                                    storage=storage))).start()
    try:
        for catalog_id in ("shelf", "copy"):  # same products: the two manifests name the same blobs
            requests.post(f"{server.url}/api/v1/catalogs", json={"catalog_id": catalog_id}, headers=AUTH, timeout=10).raise_for_status()
            publish(storage, catalog, catalog_id, load_private_key(keys[0]), 1)
        storage.put(blob_key(ORPHAN), b"left by an interrupted publish")
        blobs = set(storage.keys("blobs"))
        listed = requests.get(f"{server.url}/api/v1/catalogs", headers=AUTH, timeout=10).json()
        assert {c["catalog_id"]: c["published_version"] for c in listed} == {"shelf": 1, "copy": 1}
        assert requests.get(f"{server.url}/catalogs/shelf/manifest.json", timeout=10).status_code == 404  # the bucket serves it

        assert requests.delete(f"{server.url}/api/v1/catalogs/copy", headers=AUTH, timeout=10).status_code == 204
        assert set(storage.keys("blobs")) == blobs - {blob_key(ORPHAN)}  # shelf's blobs kept, the orphan collected
        assert not storage.has(manifest_key("copy")) and not storage.has(manifest_key("copy") + ".sig")
        assert requests.delete(f"{server.url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).status_code == 204
        assert storage.keys("") == [] and collect_garbage(storage) == 0
    finally:
        server.stop()
