"""Publish only what changed: the shards whose products changed since the published version are built again, reusing
what the published bundle holds for every image whose bytes did not change; every other shard's manifest entry is
copied as it is (same blobs: nothing to compute, upload or download).

A product is compared by its id, sku, name and the sha256 of each of its images (the catalog server's rows against the
published shards' products and image rows). A full build is needed instead (plan() returns None) when nothing is
published yet, the published bundle was made with other models or another kind of stored index, its image rows
carry no sha256 (bundles from before this), or the catalog grew past the size that needs a stored index.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from dataclasses import dataclass

import numpy as np

from edge.core.catalog import Catalog
from edge.core.catalog_build import Computed
from edge.core.stored_index import MIN_IMAGES
from edge.core.verifier import Features
from sync_agent.bundle import Bundle, blob_key, bundle_of, manifest_key, shard_entries, shard_of
from sync_agent.server.publisher import published_index_model
from sync_agent.server.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    previous: dict  # the published manifest
    changed: set[str]  # shard names to build again
    products: list[str]  # the product ids those shards hold now (the ones to snapshot and build)
    reuse: dict[tuple[str, str], Computed]  # (product id, image sha256) -> what the published bundle has for it
    thumbnails: dict[str, bytes]
    index: tuple[bytes, dict] | None  # the published index model and its info (kept: LSH never needs another)


def fingerprints(products: list[dict]) -> dict[str, set]:
    """Shard name -> its products' (id, sku, name, sorted (file, sha256) of their images), from the server's rows:
    [{product_id, sku, name, images: [(file, sha256)]}]."""
    shards: dict[str, set] = {}
    for p in products:
        images = tuple(sorted((f"{p['product_id']}/{file}", sha) for file, sha in p["images"]))
        shards.setdefault(f"{shard_of(p['product_id']):02x}", set()).add((p["product_id"], p["sku"], p["name"], images))
    return shards


def _read(storage: Storage, part: dict) -> bytes:
    data = storage.get(blob_key(part["sha256"]))
    if data is None:
        raise FileNotFoundError(f"published blob {part['sha256'][:12]}… is missing from storage")
    return data


def _published_fingerprints(storage: Storage, shard: dict) -> tuple[set, list[dict]] | None:
    products = json.loads(_read(storage, shard["parts"]["products"]))
    rows = json.loads(_read(storage, shard["parts"]["images"]))
    if any("sha256" not in r for r in rows if not r.get("variant")):
        return None
    images: dict[str, list] = {}
    for r in rows:
        if not r.get("variant"):
            images.setdefault(r["product_id"], []).append((r["file"], r["sha256"]))
    return {(p["product_id"], p["sku"], p["name"], tuple(sorted(images.get(p["product_id"], [])))) for p in products}, rows


def _reusable(storage: Storage, shard: dict, rows: list[dict]) -> tuple[dict[tuple[str, str], Computed], dict[str, bytes]]:
    """What a published shard holds per image (row, embedding, keypoints, a later image's thumbnail), by (product id,
    sha256), and its products' thumbnails."""
    arrays = {name: np.load(io.BytesIO(_read(storage, shard["parts"][name])), allow_pickle=False)
              for name in ("embeddings", "keypoints", "descriptors", "scores", "offsets")}
    thumbnails, later = _jpegs(storage, shard, "thumbnails"), _jpegs(storage, shard, "image_thumbnails")
    reuse = {}
    for i, row in enumerate(rows):
        if row.get("variant"):
            continue
        start, end = arrays["offsets"][i], arrays["offsets"][i + 1]
        features = Features(arrays["keypoints"][start:end].astype(np.float32), arrays["descriptors"][start:end],
                            tuple(row["feature_size"]), arrays["scores"][start:end].astype(np.float32))
        reuse[(row["product_id"], row["sha256"])] = Computed(row, arrays["embeddings"][i], features, later.get(row["sha256"]))
    return reuse, thumbnails


def _jpegs(storage: Storage, shard: dict, part: str) -> dict[str, bytes]:
    """A shard's JSON part of base64 JPEGs (thumbnails by product id, image thumbnails by sha256), decoded; {} without."""
    if part not in shard["parts"]:
        return {}
    return {key: base64.b64decode(jpeg) for key, jpeg in json.loads(_read(storage, shard["parts"][part])).items()}


def plan(storage: Storage, catalog_id: str, products: list[dict], embedder_id: str, verifier_id: str,
         index_kind: str) -> Plan | None:
    """Which shards to build again for the server's current rows (see the module's docstring); None: build it all."""
    data = storage.get(manifest_key(catalog_id))
    if data is None:
        return None
    previous = json.loads(data)
    if previous["embedder"]["model_id"] != embedder_id or previous["verifier"]["id"] != verifier_id:
        return None
    index = previous.get("index")
    if index is not None and index["kind"] != index_kind:
        return None
    if index is None and sum(len(p["images"]) for p in products) >= MIN_IMAGES:
        return None  # grown into needing a stored index: every shard gets codes
    now = fingerprints(products)
    published = {s["name"]: s for s in previous["shards"]}
    changed, reuse, thumbnails = set(), {}, {}
    for name in sorted(set(now) | set(published)):
        before = _published_fingerprints(storage, published[name]) if name in published else (set(), [])
        if before is None:
            return None
        if before[0] == now.get(name, set()):
            continue
        changed.add(name)
        if name in published:
            shard_reuse, shard_thumbnails = _reusable(storage, published[name], before[1])
            reuse |= shard_reuse
            thumbnails |= shard_thumbnails
    model = None
    if index is not None:
        model = published_index_model(storage, catalog_id, embedder_id)
        if model is None:  # its blob is gone or damaged: a full build trains a new one
            return None
    ids = sorted(p["product_id"] for p in products if f"{shard_of(p['product_id']):02x}" in changed)
    return Plan(previous, changed, ids, reuse, thumbnails, model)


def bundle_with(plan: Plan, built: Catalog | None, version: int, expires: str | None = None) -> Bundle:
    """The next version: `built` (the changed shards' products, built with plan.reuse) in place of the changed shards."""
    previous, blobs = plan.previous, {}
    kept = [s for s in previous["shards"] if s["name"] not in plan.changed]
    built_shards = [] if built is None else shard_entries(built, blobs)  # its index codes were made with plan.index
    log.info("catalog %s v%d: %d shards built again, %d kept as published", previous["catalog_id"], version,
             len(plan.changed), len(kept))
    models = {"embedder": previous["embedder"], "verifier": previous["verifier"]}
    return bundle_of(previous["catalog_id"], version, models, kept + built_shards, blobs, plan.index, expires=expires)
