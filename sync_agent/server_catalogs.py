"""Routes for catalogs as a whole: health, create, list, get, delete (with what was published of it)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import APIRouter, Response
from fastapi.params import Depends
from pydantic import BaseModel, Field

from sync_agent.bundle import manifest_key
from sync_agent.publish import collect_garbage, published_version
from sync_agent.server_store import CATALOG_ID, CatalogStore
from sync_agent.storage import Storage

log = logging.getLogger(__name__)


class NewCatalog(BaseModel):
    catalog_id: str = Field(pattern=CATALOG_ID, description="Letters, digits, '.', '_', '-'; at most 64.")
    name: str = Field(default="", max_length=200)


def catalog_routes(store: CatalogStore, storage: Storage, writes: Sequence[Depends]) -> APIRouter:
    """`writes`: the dependencies of every route that changes something (the token check)."""
    router = APIRouter()

    @router.get("/healthz")
    def health() -> dict:
        return {"ok": True}

    @router.post("/api/v1/catalogs", status_code=201, dependencies=writes)
    def create_catalog(body: NewCatalog) -> dict:
        with store.lock:
            return store.create(body.catalog_id, body.name)

    @router.get("/api/v1/catalogs")
    def list_catalogs() -> list[dict]:
        return [store.meta(folder) | {"products": len(store.products(folder)), "published_version": published_version(storage, folder.name)}
                for folder in store.catalogs()]

    @router.get("/api/v1/catalogs/{catalog_id}")
    def get_catalog(catalog_id: str) -> dict:
        folder = store.folder(catalog_id)
        products = [{"product_id": pid, **p, "images": store.images(folder, pid)} for pid, p in store.products(folder).items()]
        return store.meta(folder) | {"products": products, "published_version": published_version(storage, catalog_id)}

    @router.delete("/api/v1/catalogs/{catalog_id}", status_code=204, dependencies=writes)
    def delete_catalog(catalog_id: str) -> Response:
        with store.lock, store.deleting(catalog_id):
            storage.delete(manifest_key(catalog_id) + ".sig")
            storage.delete(manifest_key(catalog_id))
            removed = collect_garbage(storage)
        log.info("deleted catalog %s (%d blobs collected)", catalog_id, removed)
        return Response(status_code=204)

    return router
