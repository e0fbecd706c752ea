"""Publish a built catalog into a bundle tree: blobs first, then the manifest, then its signature."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.core.catalog import Catalog
from edge.reporting.announcements import MAX_CATALOG_VERSION
from sync_agent.bundle import MAX_VERSION_STEP, Bundle, blob_key, encode_signature, index_info, json_bytes, make_bundle, manifest_key, sha256_hex
from sync_agent.errors import SyncError
from sync_agent.server.storage import Storage

log = logging.getLogger(__name__)
# A signed manifest is trusted this long; the server re-signs it (same version, new expiry) when half is left, as TUF's
# timestamp role does, so a device that keeps getting an old manifest (a stuck server, a replay) learns it is stale.
MANIFEST_VALID_S = 7 * 86400


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


def published_index_model(storage: Storage, catalog_id: str, embedder_id: str) -> tuple[bytes, dict] | None:
    """The published version's search index model and its info, to build the next version with (edge.core.stored_index):
    None when there is none, it was trained for another embedder, or its blob is gone or damaged."""
    data = storage.get(manifest_key(catalog_id))
    manifest = json.loads(data) if data is not None else {}
    index = manifest.get("index")
    if not index or manifest.get("embedder", {}).get("model_id") != embedder_id:
        return None
    model = storage.get(blob_key(index["sha256"]))
    if model is None or sha256_hex(model) != index["sha256"]:
        log.warning("catalog %s: the published index model %s is missing or damaged; training a new one", catalog_id,
                    index["sha256"][:12])
        return None
    return model, index_info(index)


def expiry(valid_for_s: float, now: datetime | None = None) -> str:
    return ((now or datetime.now(timezone.utc)) + timedelta(seconds=valid_for_s)).isoformat(timespec="seconds")


def publish(storage: Storage, catalog: Catalog, catalog_id: str, key: Ed25519PrivateKey, version: int | None = None,
            valid_for_s: float = MANIFEST_VALID_S) -> Published:
    """Version defaults to the published one + 1; a version not above it is refused (devices would refuse it too)."""
    version = check_version(storage, catalog_id, version)
    return publish_bundle(storage, make_bundle(catalog, catalog_id, version, expires=expiry(valid_for_s)), key)


def check_version(storage: Storage, catalog_id: str, version: int | None) -> int:
    """The version to publish: the given one, or the published one + 1; refused when devices would refuse it."""
    current = published_version(storage, catalog_id)
    version = current + 1 if version is None else version
    if version <= current:
        raise SyncError(f"catalog {catalog_id}: version {version} is not above the published version {current}")
    if version > min(current + MAX_VERSION_STEP, MAX_CATALOG_VERSION):
        raise SyncError(f"catalog {catalog_id}: version {version} jumps more than {MAX_VERSION_STEP} above {current} "
                        f"(or past {MAX_CATALOG_VERSION}); devices would refuse it")
    return version


def publish_bundle(storage: Storage, bundle: Bundle, key: Ed25519PrivateKey) -> Published:
    """The bundle's blobs that storage lacks, then its manifest and signature (check_version first)."""
    catalog_id, version = bundle.manifest["catalog_id"], bundle.manifest["version"]
    new = 0
    for sha, data in bundle.blobs.items():
        if not storage.has(blob_key(sha)):
            storage.put(blob_key(sha), data)
            new += 1
    _put_signed(storage, catalog_id, key, bundle.manifest_bytes)
    blobs = len(bundle.manifest["blobs"])
    log.info("published catalog %s v%d: %d blobs (%d new)", catalog_id, version, blobs, new)
    return Published(catalog_id, version, blobs, new, bundle.manifest)


def resign(storage: Storage, catalog_id: str, key: Ed25519PrivateKey, valid_for_s: float = MANIFEST_VALID_S) -> dict:
    """The published manifest again with a new expiry, same version and blobs; returns it."""
    data = storage.get(manifest_key(catalog_id))
    if data is None:
        raise SyncError(f"catalog {catalog_id}: nothing published to re-sign")
    manifest = json.loads(data) | {"expires": expiry(valid_for_s)}
    _put_signed(storage, catalog_id, key, json_bytes(manifest))
    log.info("re-signed catalog %s v%d, valid until %s", catalog_id, manifest["version"], manifest["expires"])
    return manifest


def resign_due(storage: Storage, key: Ed25519PrivateKey, valid_for_s: float = MANIFEST_VALID_S,
               now: datetime | None = None) -> list[str]:
    """Re-sign every published manifest with less than half its validity left (or none), or whose signature is not
    its own (a power cut or a kill between the two writes of _put_signed: devices refuse the pair until it is
    re-signed; the server's start repairs it); returns their catalog ids."""
    now = now or datetime.now(timezone.utc)
    done = []
    for key_name in storage.keys("catalogs"):
        if not key_name.endswith("/manifest.json"):
            continue
        try:
            data = storage.get(key_name) or b"{}"
            manifest = json.loads(data)
            catalog_id, expires = manifest["catalog_id"], manifest.get("expires")
            due = expires is None or datetime.fromisoformat(expires) - now < timedelta(seconds=valid_for_s / 2)
            due = due or storage.get(key_name + ".sig") != encode_signature(key.sign(data))  # ed25519: the same bytes
        except (ValueError, KeyError, TypeError) as exc:  # one broken manifest must not keep the others from being re-signed
            log.warning("%s: cannot read it to re-sign (%s: %s); skipped", key_name, type(exc).__name__, exc)
            continue
        if due:
            resign(storage, catalog_id, key, valid_for_s)
            done.append(catalog_id)
    return done


def _put_signed(storage: Storage, catalog_id: str, key: Ed25519PrivateKey, manifest: bytes) -> None:
    storage.put(manifest_key(catalog_id), manifest)
    storage.put(manifest_key(catalog_id) + ".sig", encode_signature(key.sign(manifest)))


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
