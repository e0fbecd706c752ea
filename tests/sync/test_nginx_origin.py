"""Devices syncing through nginx as the CDN origin of a published bundle tree: nginx's ETag answered 304 on an
unchanged manifest, and a blob download cut mid-way resumed with a Range request (206) — not started over.

nginx (Debian's, started by the fixture on a free loopback port, everything under tmp) serves the tree as static files;
a relay in front of it (tools/nginx_harness.CutRelay) records each exchange and cuts one response after a set number
of body bytes, as a dropped link does, so the cut lands at the same byte on every run.
"""

from __future__ import annotations

import pytest
import requests

from sync_agent.agent import Agent
from sync_agent.bundle import blob_key, manifest_key
from sync_agent.errors import FetchError
from sync_agent.server.publisher import publish
from sync_agent.server.storage import LocalStorage
from sync_agent.signing import load_private_key
from tests.sync.conftest import device_config
from tools.nginx_harness import CutRelay, Nginx


@pytest.fixture
def origin(tmp_path, keys, catalog):
    """v1 published into a tree that nginx serves, with the relay in front; (nginx, relay, published v1)."""
    storage = LocalStorage(tmp_path / "public")
    published = publish(storage, catalog, "shelf", load_private_key(keys[0]), 1)
    nginx = Nginx(tmp_path / "nginx", docroot=storage.root).start()
    relay = CutRelay(nginx.port)
    yield nginx, relay, published
    relay.close()
    nginx.stop()


def test_nginx_serves_the_tree_with_cache_headers_etags_and_ranges(origin):
    nginx, _, published = origin
    manifest = requests.get(f"{nginx.url}/{manifest_key('shelf')}", timeout=10)
    assert manifest.headers["Content-Type"] == "application/json" and manifest.headers["Cache-Control"] == "no-cache"
    again = requests.get(manifest.url, headers={"If-None-Match": manifest.headers["ETag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    blob = published.manifest["blobs"][0]
    part = requests.get(f"{nginx.url}/{blob_key(blob['sha256'])}", headers={"Range": "bytes=10-"}, timeout=10)
    assert part.status_code == 206 and len(part.content) == blob["size"] - 10
    assert part.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_a_cut_download_resumes_with_a_range_and_an_unchanged_manifest_is_a_304(origin, tmp_path, keys):
    nginx, relay, published = origin
    largest = max(published.manifest["blobs"], key=lambda b: b["size"])
    path, half = f"/{blob_key(largest['sha256'])}", largest["size"] // 2
    relay.cut_after(path, half)
    agent = Agent(device_config(tmp_path, relay.url, keys[1]))

    with pytest.raises(FetchError, match="the transfer broke off"):
        agent.sync_once()
    partial = tmp_path / "device" / "blobs" / "partial" / largest["sha256"]
    assert partial.stat().st_size == half  # what arrived before the cut is kept

    assert agent.sync_once().outcome == "updated"
    resumed = [e for e in relay.exchanges if e.path == path]
    assert [e.cut for e in resumed] == [True, False]
    assert resumed[1].header("request", "Range") == f"bytes={half}-" and resumed[1].status == 206
    assert resumed[1].header("response", "Content-Length") == str(largest["size"] - half)
    assert not partial.exists()

    seen = len(relay.exchanges)
    assert agent.sync_once().outcome == "unchanged"
    manifest = [e for e in relay.exchanges[seen:] if e.path == f"/{manifest_key('shelf')}"]
    assert [e.status for e in manifest] == [304]
    assert manifest[0].header("request", "If-None-Match") == manifest[0].header("response", "ETag")
    assert all(not e.path.startswith("/blobs/") for e in relay.exchanges[seen:])  # nothing downloaded again
