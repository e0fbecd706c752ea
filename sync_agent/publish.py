"""Publish a built catalog into a bundle tree: blobs first, then the manifest, then its signature."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.announcements import MAX_CATALOG_VERSION
from edge.catalog import Catalog
from sync_agent.bundle import MAX_VERSION_STEP, blob_key, encode_signature, make_bundle, manifest_key
from sync_agent.errors import SyncError
from sync_agent.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    catalog_id: str
    version: int
    blobs: int  # in the manifest
    new_blobs: int  # written by this publish (the rest were there already)
    manifest: dict


def published_version(storage: Storage, catalog_id: str) -> int:
    data = storage.get(manifest_key(catalog_id))
    return 0 if data is None else int(json.loads(data)["version"])


def publish(storage: Storage, catalog: Catalog, catalog_id: str, key: Ed25519PrivateKey, version: int | None = None) -> Published:
    """Version defaults to the published one + 1; a version not above it is refused (devices would refuse it too)."""
    current = published_version(storage, catalog_id)
    version = current + 1 if version is None else version
    if version <= current:
        raise SyncError(f"catalog {catalog_id}: version {version} is not above the published version {current}")
    if version > min(current + MAX_VERSION_STEP, MAX_CATALOG_VERSION):
        raise SyncError(f"catalog {catalog_id}: version {version} jumps more than {MAX_VERSION_STEP} above {current} "
                        f"(or past {MAX_CATALOG_VERSION}); devices would refuse it")
    bundle = make_bundle(catalog, catalog_id, version)
    new = 0
    for sha, data in bundle.blobs.items():
        if not storage.has(blob_key(sha)):
            storage.put(blob_key(sha), data)
            new += 1
    manifest = bundle.manifest_bytes
    storage.put(manifest_key(catalog_id), manifest)
    storage.put(manifest_key(catalog_id) + ".sig", encode_signature(key.sign(manifest)))
    log.info("published catalog %s v%d: %d blobs (%d new)", catalog_id, version, len(bundle.blobs), new)
    return Published(catalog_id, version, len(bundle.blobs), new, bundle.manifest)


def collect_garbage(storage: Storage) -> int:
    """Delete blobs no published manifest names; returns how many."""
    referenced = set()
    for key in storage.keys("catalogs"):
        if key.endswith("/manifest.json"):
            referenced |= {b["sha256"] for b in json.loads(storage.get(key) or b'{"blobs": []}')["blobs"]}
    removed = 0
    for key in storage.keys("blobs/sha256"):
        if key.rsplit("/", 1)[-1] not in referenced:
            storage.delete(key)
            removed += 1
    return removed
