"""A catalog's search index through a bundle: the model blob stays from version to version, a one-product change
sends one shard, the device assembles the same index, and a signed bundle with a bad index is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest

from edge.bench.catalog_load import EMBEDDER_ID, IMAGES_PER_PRODUCT, VERIFIER_ID, write_synthetic_catalog
from edge.bench.index import clustered_vectors
from edge.core.catalog import load_catalog
from sync_agent.agent import Agent
from sync_agent.bundle import make_bundle, npy_bytes, shard_of
from sync_agent.errors import BundleError
from sync_agent.server.publisher import published_index_model
from tests.sync.test_agent_attacks import current_version, publish_signed


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """v1: 1,700 products x 3 images with a stored index; v2: one product's images changed, v1's model reused."""
    tmp = tmp_path_factory.mktemp("indexed")
    vectors, _ = clustered_vectors(5_100, views=IMAGES_PER_PRODUCT, families=True)
    write_synthetic_catalog(tmp / "v1", vectors)
    v1 = load_catalog(tmp / "v1")
    changed = vectors.copy()
    changed[30:33] = vectors[3000:3003]  # product p0000010 now looks like another: new embeddings and codes
    write_synthetic_catalog(tmp / "v2", changed, version=2, previous=(v1.index_model, v1.info["index"]))
    return v1, load_catalog(tmp / "v2")


def codes_by_image(catalog) -> dict:
    return {(row["product_id"], row["file"]): bytes(code) for row, code in zip(catalog.images, catalog.index_codes)}


def test_a_one_product_change_sends_its_shard_and_keeps_the_model(versions):
    v1, v2 = (make_bundle(c, "shelf", c.version, created_at="2026-11-30T00:00:00+00:00") for c in versions)
    assert v1.manifest["index"]["sha256"] == v2.manifest["index"]["sha256"]  # same model: nothing to download
    [shard] = [s for s in v2.manifest["shards"] if s["name"] == f"{shard_of('p0000010'):02x}"]
    new = set(v2.blobs) - set(v1.blobs)
    assert new == {shard["parts"]["embeddings"]["sha256"], shard["parts"]["index_codes"]["sha256"]}


def test_the_device_installs_the_index_and_refuses_a_signed_bundle_whose_codes_are_bad(versions, bench, keys):
    from sync_agent.signing import load_private_key

    storage, config, publish_version = bench
    agent = Agent(config, model_ids=(EMBEDDER_ID, VERIFIER_ID))
    publish_version(1, versions[0])
    assert agent.sync_once().bytes_downloaded > 0
    first = agent.sync_once()
    publish_version(2, versions[1])
    second = agent.sync_once()
    installed = load_catalog(config.device.data_dir / "catalogs" / "current")
    assert installed.version == 2 and installed.index_model == versions[1].index_model
    assert codes_by_image(installed) == codes_by_image(versions[1])  # assembled shard by shard: same code per image
    shard_bytes = sum(p["size"] for s in make_bundle(versions[1], "shelf", 2).manifest["shards"]
                      if s["name"] == f"{shard_of('p0000010'):02x}" for n, p in s["parts"].items() if n in ("embeddings", "index_codes"))
    assert first.bytes_downloaded == 0 and second.bytes_downloaded < shard_bytes + 64_000  # the shard's two parts + manifest
    assert published_index_model(storage, "shelf", EMBEDDER_ID)[0] == versions[1].index_model
    assert published_index_model(storage, "shelf", "another-embedder") is None

    def short_codes(parts):  # codes a byte shorter than the model's: every shard's would need to match
        parts["index_codes"] = npy_bytes(np.load(io.BytesIO(parts["index_codes"]))[:, :-1])

    publish_signed(storage, versions[1], load_private_key(keys[0]), 3, short_codes)
    with pytest.raises(BundleError, match=r"index codes are uint8 \(\d+, 31\), expected uint8 \(\d+, 32\)"):
        agent.sync_once()
    assert current_version(config) == 2
