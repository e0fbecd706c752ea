"""The publish route: build a catalog's work folder with the devices' own models and code
(edge.core.catalog_build), write its blobs, manifest and signature, and announce the version on MQTT.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, HTTPException
from fastapi.params import Depends

from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config, MQTTConfig
from edge.core.errors import ShelfIDError
from sync_agent.publish import Published, publish, published_version
from sync_agent.server_settings import ServerSettings
from sync_agent.server_store import CatalogStore
from sync_agent.storage import Storage

log = logging.getLogger(__name__)


def without_paths(text: str, *folders: Path) -> str:
    """`text` with the server's folders taken out of the paths in it: `<work>/shelf/p1/00.jpg` reads `shelf/p1/00.jpg`."""
    for folder in folders:
        text = text.replace(f"{folder}{os.sep}", "").replace(str(folder), folder.name)
    return text


class Models:
    """The detector, embedder and verifier, opened at the first publish (a server that only serves never loads them)."""

    def __init__(self, config: Config):
        self.config = config
        self.opened: tuple | None = None

    def get(self) -> tuple:
        if self.opened is None:
            from edge.core.identify import open_models

            self.opened = open_models(self.config)
        return self.opened


def publish_routes(store: CatalogStore, storage: Storage, key: Ed25519PrivateKey, settings: ServerSettings,
                   writes: Sequence[Depends]) -> APIRouter:
    """`writes`: the dependencies of every route that changes something (the token check)."""
    router = APIRouter()
    models = Models(settings.config)

    @router.post("/api/v1/catalogs/{catalog_id}/publish", status_code=201, dependencies=writes)
    def publish_catalog(catalog_id: str) -> dict:
        with store.lock:
            folder = store.folder(catalog_id)
            if not store.products(folder):
                raise HTTPException(409, f"catalog {catalog_id!r} has no products to publish")
            detector, embedder, verifier = models.get()
            version = published_version(storage, catalog_id) + 1
            with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
                try:
                    report = build_catalog(folder, Path(tmp) / "catalog", embedder, verifier, detector, catalog_id, version)
                except ShelfIDError as exc:
                    raise HTTPException(422, f"catalog {catalog_id!r} cannot be built: {without_paths(str(exc), store.work, Path(tmp))}") from None
                done = publish(storage, load_catalog(Path(tmp) / "catalog"), catalog_id, key, version, settings.manifest_valid_s)
                skipped = [without_paths(line, store.work, Path(tmp)) for line in report.skipped]
        if settings.announce:
            announce(settings.config.mqtt, done)
        return {"catalog_id": catalog_id, "version": done.version, "blobs": done.blobs, "new_blobs": done.new_blobs,
                "products": report.products, "images": report.images, "skipped": skipped}

    return router


def announce(mqtt_config: MQTTConfig, published: Published) -> None:
    """Retained `<prefix>/catalogs/<id>/latest`: devices pull at once instead of at their next poll."""
    from sync_agent.announce import publish_announcement

    try:
        publish_announcement(mqtt_config, published.catalog_id, published.version)
    except (OSError, ShelfIDError) as exc:  # the bundle is published; devices still find it by polling
        log.warning("catalog %s v%d published, MQTT announcement failed: %s", published.catalog_id, published.version, exc)
