"""Routes for catalogs as a whole: health, create, list, get, delete (with what was published of it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import AfterValidator, BaseModel, Field

from edge.core.ids import CATALOG_ID_PATTERN
from sync_agent.bundle import manifest_key
from sync_agent.server.publisher import collect_garbage, published_version
from sync_agent.server.storage import Storage
from sync_agent.server.store import CatalogStore, plain_text
from sync_agent.server.tokens import Principal

log = logging.getLogger(__name__)


class NewCatalog(BaseModel):
    catalog_id: str = Field(pattern=CATALOG_ID_PATTERN, description="Letters, digits, '.', '_', '-'; at most 64.")
    name: Annotated[str, AfterValidator(plain_text)] = Field(default="", max_length=200, description="Plain text.")


def catalog_routes(store: CatalogStore, storage: Storage, access: Callable[[str], Callable[..., Principal]]) -> APIRouter:
    """`access(need)`: the dependency that checks the request's token for `need` (admin, read, any) on the path's catalog."""
    router = APIRouter()

    @router.get("/healthz")
    def health() -> dict:
        return {"ok": True}

    @router.post("/api/v1/catalogs", status_code=201)
    def create_catalog(body: NewCatalog, principal: Principal = Depends(access("admin"))) -> dict:
        return store.create(body.catalog_id, body.name, principal.actor)

    @router.get("/api/v1/catalogs")
    def list_catalogs(principal: Principal = Depends(access("any"))) -> list[dict]:
        """The catalogs the token may read (all of them for the admin token)."""
        with store.connected() as db:
            rows = [row for row in store.catalogs(db) if principal.may("read", row["catalog_id"])]
        return [{"catalog_id": r["catalog_id"], "name": r["name"], "created_at": r["created_at"], "products": r["products"],
                 "published_version": published_version(storage, r["catalog_id"])} for r in rows]

    @router.get("/api/v1/catalogs/{catalog_id}", dependencies=[Depends(access("read"))])
    def get_catalog(catalog_id: str) -> dict:
        with store.connected() as db:
            meta = store.catalog(db, catalog_id)
            products = store.products(db, catalog_id)
        return {"catalog_id": catalog_id, "name": meta["name"], "created_at": meta["created_at"], "products": products,
                "published_version": published_version(storage, catalog_id)}

    @router.delete("/api/v1/catalogs/{catalog_id}", status_code=204)
    def delete_catalog(catalog_id: str, principal: Principal = Depends(access("admin"))) -> Response:
        with store.deleting(catalog_id, principal.actor):  # under the write lock: no publish of it in between
            storage.delete(manifest_key(catalog_id) + ".sig")
            storage.delete(manifest_key(catalog_id))
            removed = collect_garbage(storage)
        log.info("deleted catalog %s (%d blobs collected)", catalog_id, removed)
        return Response(status_code=204)

    return router
