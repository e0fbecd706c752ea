"""`shelfid catalog serve`: the central catalog server (FastAPI, served by uvicorn).

Write side (token required): create a catalog, add/replace/remove products
with their images (multipart), delete a catalog, publish a new version. Read
side: list and get catalogs, and — with local storage — the static bundle tree
itself (`/catalogs/<id>/manifest.json`, `/blobs/sha256/<hex>`, with ETag and
Range support) that devices sync from. OpenAPI at /openapi.json, docs at /docs.

Work area, one folder per catalog, in the layout `shelfid catalog build` reads:
    <root>/work/<catalog_id>/catalog.json        id, name, created_at
    <root>/work/<catalog_id>/products.csv        product_id, sku, name
    <root>/work/<catalog_id>/<product_id>/*.jpg  its images (validated on upload)
Publishing computes embeddings and keypoints with the same models and code as
the devices (edge.core.catalog_build), then writes blobs, manifest, signature, and
announces the version on MQTT (retained) when a broker is configured. A
thread re-signs every published manifest with a new expiry when less than
half of its validity is left (checked every `resign_every_s`), so devices can
tell a live server from a frozen or replayed manifest.

Every request passes `RequestGuard` before the app sees it, which decides from
the headers alone, before a byte of the body is read, in this order:
    Content-Length together with Transfer-Encoding   400 (a proxy in front could frame the body differently)
    POST, PUT, PATCH, DELETE without / with a wrong token   401 / 403
    a declared Content-Length over max_request_bytes   413
then counts the body as it streams, chunked or not, and stops it at the cap
(413): the count, not a header, is the limit, so the form parser never spools
more than max_request_bytes to its temp files. Chunked bodies are therefore
accepted. An answer given while the body is still unread closes the connection,
so the rest of it is never read. Every error, 404 and 405 included, is JSON
`{"error": "...", "status": N}`, and none names a path on this server.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.core.catalog import load_catalog
from edge.core.catalog_build import PRODUCT_ID, build_catalog
from edge.core.config import Config, MQTTConfig
from edge.core.errors import ImageError, ShelfIDError
from edge.core.images import read_image
from sync_agent.bundle import manifest_key
from sync_agent.publish import MANIFEST_VALID_S, Published, collect_garbage, publish, published_version, resign_due
from sync_agent.signing import load_private_key
from sync_agent.storage import LocalStorage, Storage

log = logging.getLogger(__name__)
CATALOG_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # anchored for pydantic's search; checked here with re.fullmatch
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


@dataclass
class ServerSettings:
    root: Path
    signing_key: Path
    token: Optional[str]
    storage: Optional[Storage] = None  # default: LocalStorage(<root>/public), also served at /catalogs and /blobs
    config: Config = field(default_factory=Config)  # the models devices run (models.*, verifier.*), and mqtt.* for announcements
    announce: bool = False
    manifest_valid_s: float = MANIFEST_VALID_S  # how long devices trust a signed manifest
    resign_every_s: float = 3600.0  # how often the re-signing thread looks
    max_image_bytes: int = 20 << 20
    max_images_per_product: int = 20
    max_request_bytes: int = 200 << 20
    max_pixels: int = 40_000_000
    min_image_side: int = 32  # below this a product photo holds nothing to match (a 1×1 placeholder, an icon)


class NewCatalog(BaseModel):
    catalog_id: str = Field(pattern=CATALOG_ID, description="Letters, digits, '.', '_', '-'; at most 64.")
    name: str = Field(default="", max_length=200)


def error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def json_error(exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail, "status": exc.status_code}, exc.status_code, headers=exc.headers)


def check_product_id(product_id: str) -> None:
    if not PRODUCT_ID.fullmatch(product_id):  # the whole id: with match and `$`, "a\n" would pass
        raise error(422, f"product id {product_id!r}: use letters, digits, '.', '_', '-' (at most 128)")


def without_paths(text: str, *folders: Path) -> str:
    """`text` with the server's folders taken out of the paths in it: `<work>/shelf/p1/00.jpg` reads `shelf/p1/00.jpg`."""
    for folder in folders:
        text = text.replace(f"{folder}{os.sep}", "").replace(str(folder), folder.name)
    return text


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def token_problem(authorization: Optional[str], token: Optional[str]) -> Optional[HTTPException]:
    """None when the request may write (or no token is configured); else the 401 or 403 to answer."""
    if token is None:
        return None
    if not authorization or not authorization.startswith("Bearer "):
        return HTTPException(401, "write endpoints need 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(authorization[7:].encode(), token.encode()):
        return HTTPException(403, "wrong token")
    return None


def header_problem(method: str, headers: Headers, settings: ServerSettings) -> Optional[HTTPException]:
    """What the request line and headers alone decide: framing (400), the token for writes (401/403), declared size (413)."""
    length = headers.get("content-length")
    if length is not None and "transfer-encoding" in headers:
        return error(400, "Content-Length together with Transfer-Encoding: send one of them")
    if length is not None and not re.fullmatch(r"[0-9]+", length):
        return error(400, f"Content-Length {length!r} is not a number of bytes")
    if method in WRITE_METHODS and (problem := token_problem(headers.get("authorization"), settings.token)):
        return problem
    if length is not None and int(length) > settings.max_request_bytes:
        return error(413, f"request body over {settings.max_request_bytes} bytes")
    return None


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once a body passes the cap; FastAPI lets HTTP errors out of body parsing, so the app answers 413."""


class RequestGuard:
    """Pure ASGI, around the whole app: header checks before any body is read, then the body counted as it streams."""

    def __init__(self, app: ASGIApp, settings: ServerSettings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cap = self.settings.max_request_bytes
        received = 0
        unread = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"

        async def counted() -> Message:
            nonlocal received, unread
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                unread = message.get("more_body", False)
                if received > cap:
                    unread = True
                    raise BodyTooLarge(413, f"request body over {cap} bytes")
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and unread:  # answered early: do not read (or wait for) the rest
                message = message | {"headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        if problem := header_problem(scope["method"], headers, self.settings):
            await json_error(problem)(scope, receive, closing)
            return
        await self.app(scope, counted, closing)


class CatalogStore:
    """The work area: catalogs and their products' images on local disk; one writer at a time."""

    def __init__(self, work: Path):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def folder(self, catalog_id: str) -> Path:
        if not re.fullmatch(CATALOG_ID, catalog_id):
            raise error(422, f"catalog id {catalog_id!r}: use letters, digits, '.', '_', '-' (at most 64)")
        folder = self.work / catalog_id
        if not (folder / "catalog.json").is_file():
            raise error(404, f"no catalog {catalog_id!r}")
        return folder

    def create(self, catalog_id: str, name: str) -> dict:
        folder = self.work / catalog_id
        if folder.exists():
            raise error(409, f"catalog {catalog_id!r} already exists")
        tmp = Path(tempfile.mkdtemp(prefix=f".{catalog_id}.", dir=self.work))
        meta = {"catalog_id": catalog_id, "name": name, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (tmp / "catalog.json").write_text(json.dumps(meta))
        self.write_products(tmp, {})
        os.rename(tmp, folder)
        return meta

    def meta(self, catalog_id: str) -> dict:
        return json.loads((self.folder(catalog_id) / "catalog.json").read_text())

    def products(self, folder: Path) -> dict[str, dict]:
        with open(folder / "products.csv", newline="", encoding="utf-8") as f:
            return {row["product_id"]: {"sku": row["sku"], "name": row["name"]} for row in csv.DictReader(f)}

    def write_products(self, folder: Path, products: dict[str, dict]) -> None:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["product_id", "sku", "name"])
        for pid in sorted(products):
            writer.writerow([pid, products[pid]["sku"], products[pid]["name"]])
        tmp = folder / ".products.csv.tmp"
        tmp.write_text(out.getvalue(), encoding="utf-8")
        os.replace(tmp, folder / "products.csv")

    def images(self, folder: Path, product_id: str) -> list[str]:
        path = folder / product_id
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def check_image(path: Path, settings: ServerSettings, filename: str) -> str:
    """The file's extension by its content; 415 for other types, 413 over the pixel cap, 422 when broken or too small."""
    try:
        with Image.open(path) as image:
            kind, size = image.format, image.size
    except Image.DecompressionBombError:
        raise error(413, f"{filename}: over the limit of {settings.max_pixels:,} pixels (decompression bomb)") from None
    except (OSError, ValueError) as exc:
        raise error(415, f"{filename}: not an image ({exc.__class__.__name__}); send JPEG, PNG or WebP") from None
    if kind not in IMAGE_FORMATS:
        raise error(415, f"{filename}: {kind} images are not accepted; send JPEG, PNG or WebP")
    side = settings.min_image_side
    if min(size) < side:
        raise error(422, f"image {filename!r} is {size[0]}×{size[1]} px; at least {side}×{side} is needed")
    try:
        read_image(path, settings.max_pixels)  # decodes it all: truncation and decompression bombs show here
    except ImageError as exc:
        status = 413 if "pixels" in str(exc) else 422
        raise error(status, f"{filename}: {str(exc).split(': ', 1)[-1]}") from None
    return IMAGE_FORMATS[kind]


def create_app(settings: ServerSettings) -> FastAPI:
    storage = settings.storage or LocalStorage(settings.root / "public")
    store = CatalogStore(settings.root / "work")
    key = load_private_key(settings.signing_key)
    models: dict = {}

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

    def models_once():
        if not models:
            from edge.core.identify import open_models

            models["detector"], models["embedder"], models["verifier"] = open_models(settings.config)
        return models

    def authorised(authorization: Annotated[Optional[str], Header()] = None) -> None:
        """Per route, for the OpenAPI docs and as a second check; RequestGuard has already refused writes without it."""
        if problem := token_problem(authorization, settings.token):
            raise problem

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return json_error(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(problems), "status": 422}, 422)

    app.add_middleware(RequestGuard, settings=settings)

    @app.get("/healthz")
    def health() -> dict:
        return {"ok": True}

    @app.post("/api/v1/catalogs", status_code=201, dependencies=[Depends(authorised)])
    def create_catalog(body: NewCatalog) -> dict:
        with store.lock:
            return store.create(body.catalog_id, body.name)

    @app.get("/api/v1/catalogs")
    def list_catalogs() -> list[dict]:
        out = []
        for folder in sorted(p for p in store.work.iterdir() if (p / "catalog.json").is_file()):
            meta = json.loads((folder / "catalog.json").read_text())
            out.append(meta | {"products": len(store.products(folder)), "published_version": published_version(storage, folder.name)})
        return out

    @app.get("/api/v1/catalogs/{catalog_id}")
    def get_catalog(catalog_id: str) -> dict:
        folder = store.folder(catalog_id)
        products = [{"product_id": pid, **p, "images": store.images(folder, pid)} for pid, p in store.products(folder).items()]
        return store.meta(catalog_id) | {"products": products, "published_version": published_version(storage, catalog_id)}

    @app.delete("/api/v1/catalogs/{catalog_id}", status_code=204, dependencies=[Depends(authorised)])
    def delete_catalog(catalog_id: str) -> Response:
        with store.lock:
            folder = store.folder(catalog_id)
            trash = folder.with_name(f".{catalog_id}.deleted")
            os.rename(folder, trash)
            storage.delete(manifest_key(catalog_id) + ".sig")
            storage.delete(manifest_key(catalog_id))
            removed = collect_garbage(storage)
            shutil.rmtree(trash)
        log.info("deleted catalog %s (%d blobs collected)", catalog_id, removed)
        return Response(status_code=204)

    @app.put("/api/v1/catalogs/{catalog_id}/products/{product_id}", dependencies=[Depends(authorised)])
    def put_product(catalog_id: str, product_id: str, images: Annotated[list[UploadFile], File(description="JPEG, PNG or WebP")],
                    sku: Annotated[str, Form(max_length=64)] = "", name: Annotated[str, Form(max_length=200)] = "") -> JSONResponse:
        """Create or replace a product: its images are replaced by the ones sent."""
        check_product_id(product_id)
        if not 1 <= len(images) <= settings.max_images_per_product:
            raise error(422, f"send 1 to {settings.max_images_per_product} images, got {len(images)}")
        with store.lock:
            folder = store.folder(catalog_id)
            staging = Path(tempfile.mkdtemp(prefix=f".{product_id}.", dir=folder))
            try:
                for i, upload in enumerate(images):
                    target = staging / f"{i:02d}"
                    with open(target, "wb") as out:
                        size = 0
                        while chunk := upload.file.read(1 << 20):
                            size += len(chunk)
                            if size > settings.max_image_bytes:
                                raise error(413, f"{upload.filename}: over the {settings.max_image_bytes >> 20} MB limit per image")
                            out.write(chunk)
                    if size == 0:
                        raise error(422, f"{upload.filename}: empty file")
                    target.rename(target.with_suffix(check_image(target, settings, upload.filename or f"image {i}")))
                products = store.products(folder)
                existed = product_id in products
                products[product_id] = {"sku": sku or product_id, "name": name or product_id}
                old = folder / f".{product_id}.old"
                if (folder / product_id).exists():
                    os.rename(folder / product_id, old)
                os.rename(staging, folder / product_id)
                store.write_products(folder, products)
                shutil.rmtree(old, ignore_errors=True)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        body = {"product_id": product_id, **products[product_id], "images": store.images(folder, product_id)}
        return JSONResponse(body, status_code=200 if existed else 201)

    @app.delete("/api/v1/catalogs/{catalog_id}/products/{product_id}", status_code=204, dependencies=[Depends(authorised)])
    def delete_product(catalog_id: str, product_id: str) -> Response:
        check_product_id(product_id)
        with store.lock:
            folder = store.folder(catalog_id)
            products = store.products(folder)
            if product_id not in products:
                raise error(404, f"catalog {catalog_id!r} has no product {product_id!r}")
            del products[product_id]
            store.write_products(folder, products)
            shutil.rmtree(folder / product_id, ignore_errors=True)
        return Response(status_code=204)

    @app.post("/api/v1/catalogs/{catalog_id}/publish", status_code=201, dependencies=[Depends(authorised)])
    def publish_catalog(catalog_id: str) -> dict:
        with store.lock:
            folder = store.folder(catalog_id)
            if not store.products(folder):
                raise error(409, f"catalog {catalog_id!r} has no products to publish")
            m = models_once()
            version = published_version(storage, catalog_id) + 1
            with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
                try:
                    report = build_catalog(folder, Path(tmp) / "catalog", m["embedder"], m["verifier"], m["detector"], catalog_id, version)
                except ShelfIDError as exc:
                    raise error(422, f"catalog {catalog_id!r} cannot be built: {without_paths(str(exc), store.work, Path(tmp))}") from None
                done = publish(storage, load_catalog(Path(tmp) / "catalog"), catalog_id, key, version, settings.manifest_valid_s)
                skipped = [without_paths(line, store.work, Path(tmp)) for line in report.skipped]
        if settings.announce:
            announce(settings.config.mqtt, done)
        return {"catalog_id": catalog_id, "version": done.version, "blobs": done.blobs, "new_blobs": done.new_blobs,
                "products": report.products, "images": report.images, "skipped": skipped}

    if isinstance(storage, LocalStorage):
        for top in ("catalogs", "blobs"):
            (storage.root / top).mkdir(parents=True, exist_ok=True)
            app.mount(f"/{top}", StaticFiles(directory=storage.root / top), name=top)
    return app


def resign_loop(storage: Storage, key: Ed25519PrivateKey, lock: threading.Lock, settings: ServerSettings, stop: threading.Event) -> None:
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


def announce(mqtt_config: MQTTConfig, published: Published) -> None:
    """Retained `<prefix>/catalogs/<id>/latest`: devices pull at once instead of at their next poll."""
    from sync_agent.announce import publish_announcement

    try:
        publish_announcement(mqtt_config, published.catalog_id, published.version)
    except (OSError, ShelfIDError) as exc:  # the bundle is published; devices still find it by polling
        log.warning("catalog %s v%d published, MQTT announcement failed: %s", published.catalog_id, published.version, exc)
