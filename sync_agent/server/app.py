"""`shelfid catalog serve`: the central catalog server (FastAPI, served by uvicorn).

Write side: create a catalog, add/replace/remove products with their images
(multipart), delete a catalog, publish a new version. Read side: list and get
catalogs, detect against one, field references from devices and their review, and — with local storage — the static bundle tree
itself (`/catalogs/<id>/manifest.json`, `/blobs/sha256/<hex>`, with ETag and
Range support, public) that devices sync from. OpenAPI at /openapi.json, docs
at /docs. Every /api/ request needs a token: the server's own (admin), or one
made by the admin for one catalog, read or write (server.tokens).

Records live in SQLite (<root>/catalog.db, server.db), images in <root>/work;
several worker processes may serve one root (SQLite's write lock serialises
their changes).

Publishing computes embeddings and keypoints with the same models and code as
the devices (edge.core.catalog_build), then writes blobs, manifest, signature, and
announces the version on MQTT (retained) when a broker is configured. A
thread re-signs every published manifest with a new expiry when less than
half of its validity is left (checked every `resign_every_s`), so devices can
tell a live server from a frozen or replayed manifest.

This module wires the parts together; each is read on its own:
    settings          what an operator sets (paths, token, limits)
    guard             every request's framing, token and size before a route sees it; errors as JSON
    db                the SQLite schema, its migrations, connections and transactions
    store             records and image files changed together, one writer at a time; the old work area imported
    tokens            the admin token, per-catalog read/write tokens (stored hashed), their routes, the audit trail
    catalogs          routes: health, create, list, get, delete a catalog
    products          routes: put (with its image uploads) and delete a product
    publish           route: build, publish, announce
    detect            route: a photo identified against the latest published version (what `shelfid detect` says)
    references        routes: field references uploaded by devices, their review queue (accept, reject)
    http              how connections are held (uvicorn's h11 protocol with a header deadline and a connection cap)
    publisher         a built catalog into the bundle tree: blobs, manifest, signature; re-signing, garbage collection
    incremental       the shards a publish builds again, and the blobs it keeps
    storage           where the bundle tree lives: a local folder or an S3-compatible bucket
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, asynccontextmanager

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync_agent.server.catalogs import catalog_routes
from sync_agent.server.detect import detect_routes, detection
from sync_agent.server.guard import RequestGuard, bad_request, http_error
from sync_agent.server.products import product_routes
from sync_agent.server.publish import LazyModels, publish_routes
from sync_agent.server.publisher import resign_due
from sync_agent.server.references import reference_routes
from sync_agent.server.settings import ServerSettings
from sync_agent.server.storage import LocalStorage, Storage
from sync_agent.server.store import CatalogStore
from sync_agent.server.tokens import Tokens, requires, token_routes
from sync_agent.signing import load_private_key

__all__ = ["ServerSettings", "create_app", "resign_loop"]
log = logging.getLogger(__name__)


def create_app(settings: ServerSettings) -> FastAPI:
    storage = settings.storage or LocalStorage(settings.root / "public")
    store = CatalogStore(settings.root / "work", settings.database or settings.root / "catalog.db")
    tokens = Tokens(store, settings.token)
    key = load_private_key(settings.signing_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        thread = threading.Thread(target=resign_loop, args=(storage, key, store.lock, settings, stop), name="resign", daemon=True)
        thread.start()
        yield
        stop.set()
        thread.join(timeout=10)

    app = FastAPI(title="ShelfID catalog server", version="1", lifespan=lifespan,
                  description="Write side of ShelfID catalog sync: products and images in, signed content-addressed bundles out.")
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_middleware(RequestGuard, settings=settings, tokens=tokens)

    def access(need: str):
        return requires(tokens, need)

    app.include_router(catalog_routes(store, storage, access))
    app.include_router(product_routes(store, settings, access))
    app.state.models = models = LazyModels(settings.config)  # one set of networks for publishing and detecting
    app.include_router(publish_routes(store, storage, key, settings, models, access))
    def known(catalog_id: str) -> None:  # 404 "no catalog" for one the server has no record of
        with store.connected() as db:
            store.catalog(db, catalog_id)

    shared = detection(storage, settings, models, known)  # one identifier per published catalog, for detect and the check
    detect_router, app.state.detect_slots = detect_routes(storage, settings, models, [Depends(access("read"))],  # a read token will do
                                                          known, shared)
    app.include_router(detect_router)
    app.include_router(reference_routes(store, settings, *shared, access))
    app.include_router(token_routes(tokens, access("admin")))
    if isinstance(storage, LocalStorage):
        for top in ("catalogs", "blobs"):
            (storage.root / top).mkdir(parents=True, exist_ok=True)
            app.mount(f"/{top}", StaticFiles(directory=storage.root / top), name=top)
    return app


def resign_loop(storage: Storage, key: Ed25519PrivateKey, lock: AbstractContextManager, settings: ServerSettings, stop: threading.Event) -> None:
    """Re-sign manifests that are due, now and every `resign_every_s`, until `stop`; a failure is logged and retried."""
    while not stop.is_set():
        try:
            with lock:  # never between a publish's blobs and its manifest
                done = resign_due(storage, key, settings.manifest_valid_s)
            if done:
                log.info("re-signed %d manifest(s): %s", len(done), ", ".join(done))
        except Exception:  # storage down, a manifest unreadable: the next round tries again
            log.exception("re-signing manifests failed")
        stop.wait(settings.resign_every_s)
