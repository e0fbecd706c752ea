"""The publish route: build a catalog with the devices' own models and code (edge.core.catalog_build), write its
blobs, manifest and signature, record the version, and announce it on MQTT. Once a version is published, the next
one builds only the shards whose products changed (sync_agent.server.incremental) and keeps the others' blobs.

Three steps, so the slow one holds no database lock: under the write lock, a snapshot of the catalog's rows (and its
generation) with its images hard-linked into a temporary folder; the build, unlocked; under the write lock again, the
manifest published and the version row written together (a publish that fails leaves no version row; one overtaken by
another gets 409). The whole publish holds the catalog's publish lock (server.store.publishing), so a second publish of
the same catalog gets 409 at once, before building anything. A catalog deleted during the build is a 404 at the end,
and one deleted and created again under the same id is a 409 (another generation): nothing of the old catalog is
published under the new one.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, HTTPException

from edge.core.catalog import load_catalog
from edge.core.catalog_build import BuildReport, build_catalog
from edge.core.config import Config, MQTTConfig
from edge.core.errors import ShelfIDError
from sync_agent.server.db import now
from sync_agent.server.incremental import bundle_with, plan
from sync_agent.server.publisher import Published, expiry, publish, publish_bundle, published_index_model, published_version
from sync_agent.server.settings import ServerSettings
from sync_agent.server.storage import Storage
from sync_agent.server.store import CatalogStore, Change
from sync_agent.server.tokens import Principal

if TYPE_CHECKING:
    from edge.core.assembly import Models

log = logging.getLogger(__name__)


def without_paths(text: str, *folders: Path) -> str:
    """`text` with the server's folders taken out of the paths in it: `<work>/shelf/p1/00.jpg` reads `shelf/p1/00.jpg`."""
    for folder in folders:
        text = text.replace(f"{folder}{os.sep}", "").replace(str(folder), folder.name)
    return text


class LazyModels:
    """The detector, embedder and verifier, opened at the first publish or detection (a server that only serves never
    loads them); one per server, shared by both routes, so a server that publishes and detects holds one set."""

    def __init__(self, config: Config):
        self.config = config
        self.opened: Models | None = None
        self._opening = threading.Lock()  # two first requests at once open them once

    def get(self) -> Models:
        with self._opening:
            if self.opened is None:
                from edge.core.assembly import Models

                self.opened = Models.open(self.config)
        return self.opened


def publish_routes(store: CatalogStore, storage: Storage, key: Ed25519PrivateKey, settings: ServerSettings, models: LazyModels,
                   access: Callable[[str], Callable[..., Principal]]) -> APIRouter:
    """`access(need)`: the dependency that checks the request's token (here: write on the path's catalog)."""
    router = APIRouter()

    @router.post("/api/v1/catalogs/{catalog_id}/publish", status_code=201)
    def publish_catalog(catalog_id: str, principal: Principal = Depends(access("write"))) -> dict:
        with store.publishing(catalog_id):  # first: a second publish of this catalog is refused before any work
            return publish_locked(catalog_id, principal)

    def publish_locked(catalog_id: str, principal: Principal) -> dict:
        opened = models.get()  # before the write lock: the first publish opens the models (seconds)
        detector, embedder, verifier = opened.detector, opened.embedder, opened.verifier
        with tempfile.TemporaryDirectory(prefix=".publish-", dir=store.work) as tmp:
            images, built = Path(tmp) / catalog_id, Path(tmp) / "catalog"
            with store.writing() as change:  # a snapshot of the rows and their files; the build runs without the lock
                generation = store.catalog(change.db, catalog_id)["generation"]
                rows = store.fingerprint_rows(change.db, catalog_id)
                if not rows:
                    raise HTTPException(409, f"catalog {catalog_id!r} has no products to publish")
                version = next_version(change, storage, catalog_id)
                delta = plan(storage, catalog_id, rows, embedder.model_id, verifier.id, settings.config.index.build)
                store.snapshot(change, catalog_id, images, None if delta is None else set(delta.products))
            # the published index model, kept while it fits (the plan read it already when there is one)
            index_model = delta.index if delta is not None else published_index_model(storage, catalog_id, embedder.model_id)
            try:
                if delta is None or delta.products:  # the whole catalog, or the changed shards' products (reusing the
                    # published features of their unchanged images)
                    report = build_catalog(images, built, embedder, verifier, detector, catalog_id, version,
                                           index_kind=settings.config.index.build, index_model=index_model,
                                           reuse=delta and delta.reuse, reuse_thumbnails=delta and delta.thumbnails)
                else:  # only deletions: nothing to build
                    report = BuildReport()
            except ShelfIDError as exc:
                raise HTTPException(422, f"catalog {catalog_id!r} cannot be built: {without_paths(str(exc), Path(tmp))}") from None
            with store.writing() as change:  # the version row and the manifest together, or neither
                if store.catalog(change.db, catalog_id)["generation"] != generation:  # deleted meanwhile: 404 (above)
                    raise HTTPException(409, f"catalog {catalog_id!r} was deleted and created again while it was being "
                                             "built; nothing was published (publish the new one when it is ready)")
                if (latest := next_version(change, storage, catalog_id) - 1) >= version:
                    raise HTTPException(409, f"catalog {catalog_id!r} was published meanwhile (v{latest}); publish again")
                try:
                    if delta is None:
                        done = publish(storage, load_catalog(built), catalog_id, key, version, settings.manifest_valid_s)
                    else:
                        bundle = bundle_with(delta, load_catalog(built) if delta.products else None, version,
                                             expiry(settings.manifest_valid_s))
                        done = publish_bundle(storage, bundle, key)
                except (OSError, ShelfIDError) as exc:  # storage down or full: no version recorded, the old one still served
                    log.error("catalog %s v%d: publishing to storage failed: %s", catalog_id, version, exc)
                    raise HTTPException(503, f"catalog {catalog_id!r}: publishing to storage failed; nothing was recorded, "
                                             "retry shortly", headers={"Retry-After": "10"}) from None
                products, image_count = len(rows), sum(len(r["images"]) for r in rows)
                change.db["versions"].insert({"catalog_id": catalog_id, "version": version, "published_at": now(),
                                              "published_by": principal.actor, "products": products,
                                              "images": image_count, "blobs": done.blobs})
                built_how = "full build" if delta is None else f"{len(delta.changed)} shard(s) built, {report.reused} image(s) reused"
                change.audit(principal.actor, "publish", catalog_id, f"v{version}: {products} product(s), {image_count} image(s), "
                                                                     f"{done.new_blobs} new blob(s), {built_how}")
            skipped = [without_paths(line, Path(tmp)) for line in report.skipped]
        if settings.announce:
            announce(settings.config.mqtt, done)
        return {"catalog_id": catalog_id, "version": done.version, "blobs": done.blobs, "new_blobs": done.new_blobs,
                "products": products, "images": image_count, "skipped": skipped,
                "shards_built": None if delta is None else len(delta.changed), "images_reused": report.reused}

    return router


def next_version(change: Change, storage: Storage, catalog_id: str) -> int:
    """One above both the published manifest's and the database's latest (a tree published before the database counts)."""
    recorded = change.db.execute("SELECT max(version) FROM versions WHERE catalog_id = ?", [catalog_id]).fetchone()[0] or 0
    return max(recorded, published_version(storage, catalog_id)) + 1


def announce(mqtt_config: MQTTConfig, published: Published) -> None:
    """Retained `<prefix>/catalogs/<id>/latest`: devices pull at once instead of at their next poll."""
    from sync_agent.announce import publish_announcement

    try:
        publish_announcement(mqtt_config, published.catalog_id, published.version)
    except (OSError, ShelfIDError) as exc:  # the bundle is published; devices still find it by polling
        log.warning("catalog %s v%d published, MQTT announcement failed: %s", published.catalog_id, published.version, exc)
