"""Routes for one product of a catalog: create or replace it with its images (multipart PUT), rename it (PATCH of its
SKU and name, images kept), delete it.

Uploads are checked by content, not by name or declared type: size while they stream, then the format, the pixel
count from the header (per image and for the request's images together), and a full decode, so what reaches the work
area is an image `catalog build` can read. Decoding holds the image's pixels in memory (a 40 MP photo: 40 to 160 MB),
so at most `max_concurrent_image_checks` requests decode at once, server-wide; the others wait for a turn without
holding a thread, up to `image_check_wait_s`, then get 503. A product's name and SKU are plain text: no control or
direction characters (they reach devices, MQTT consumers and operators' terminals).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Annotated, Optional, TypeVar

from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from edge.core.errors import ImageError
from edge.core.images import check_decodes
from sync_agent.server.db import now
from sync_agent.server.settings import ServerSettings
from sync_agent.server.store import CatalogStore, check_product_id, plain_text
from sync_agent.server.tokens import Principal

IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
T = TypeVar("T")


def image_header(path: Path, settings: ServerSettings, filename: str) -> tuple[str, int]:
    """(the extension its content shows, its pixels), from the header alone: 415 for other types, 413 over the pixel
    cap, 422 when too small."""
    try:
        with Image.open(path) as image:
            kind, size = image.format, image.size
    except Image.DecompressionBombError:
        raise HTTPException(413, f"{filename}: over the limit of {settings.max_pixels:,} pixels (decompression bomb)") from None
    except (OSError, ValueError) as exc:
        raise HTTPException(415, f"{filename}: not an image ({exc.__class__.__name__}); send JPEG, PNG or WebP") from None
    if kind not in IMAGE_FORMATS:
        raise HTTPException(415, f"{filename}: {kind} images are not accepted; send JPEG, PNG or WebP")
    side = settings.min_image_side
    if min(size) < side:
        raise HTTPException(422, f"image {filename!r} is {size[0]}×{size[1]} px; at least {side}×{side} is needed")
    if size[0] * size[1] > settings.max_pixels:
        raise HTTPException(413, f"{filename}: {size[0]}×{size[1]} pixels is over the limit of {settings.max_pixels:,} pixels")
    return IMAGE_FORMATS[kind], size[0] * size[1]


def image_refused(exc: ImageError, filename: str) -> HTTPException:
    """What a decode's ImageError says, as the client's error: 413 for too many pixels, 422 for a broken file."""
    status = 413 if "pixels" in str(exc) else 422
    return HTTPException(status, f"{filename}: {str(exc).split(': ', 1)[-1]}")


def decodes(path: Path, settings: ServerSettings, filename: str) -> None:
    """The whole file decoded and dropped: truncation, decompression and JPEG scan bombs show here."""
    try:
        check_decodes(path, settings.max_pixels)
    except ImageError as exc:
        raise image_refused(exc, filename) from None


def save_upload(upload: UploadFile, target: Path, settings: ServerSettings, filename: str) -> tuple[Path, int]:
    """`upload` copied to `target` + the extension its header shows, within the per-image size cap: (the final path,
    its pixels). Nothing is decoded yet."""
    with open(target, "wb") as out:
        size = 0
        while chunk := upload.file.read(1 << 20):
            size += len(chunk)
            if size > settings.max_image_bytes:
                raise HTTPException(413, f"{upload.filename}: over the {settings.max_image_bytes >> 20} MB limit per image")
            out.write(chunk)
    if size == 0:
        raise HTTPException(422, f"{upload.filename}: empty file")
    suffix, pixels = image_header(target, settings, filename)
    return target.rename(target.with_suffix(suffix)), pixels


class Turns:
    """At most `size` holders at once; the others wait in the event loop (no thread) up to `wait_s`, then 503."""

    def __init__(self, size: int, wait_s: float, what: str):
        self.semaphore = asyncio.Semaphore(size)
        self.size, self.wait_s, self.what = size, wait_s, what

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self.semaphore.acquire(), self.wait_s)
        except asyncio.TimeoutError:
            raise HTTPException(503, f"busy: {self.size} {self.what} in progress; retry shortly", headers={"Retry-After": "5"}) from None
        try:
            yield
        finally:
            self.semaphore.release()


@asynccontextmanager
async def entered_in_threads(manager: AbstractContextManager[T]) -> AsyncIterator[T]:
    """A blocking context manager (file and database work) entered and left in the thread pool, so the event loop never
    waits on it; an exception of the block reaches its __exit__ as it would in a `with`."""
    value = await run_in_threadpool(manager.__enter__)
    try:
        yield value
    except BaseException as exc:
        if not await run_in_threadpool(manager.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await run_in_threadpool(manager.__exit__, None, None, None)


PlainText = AfterValidator(plain_text)
PUT_NEEDS_IMAGES = ("PUT replaces the product with the images it sends: send them as the multipart field 'images' "
                    "(1 to {most} files); to change only the SKU or name, PATCH the product with JSON "
                    '{{"sku": ..., "name": ...}}')


class ProductChange(BaseModel):
    """A PATCH body: what changes; what is left out stays."""

    model_config = ConfigDict(extra="forbid")
    sku: Optional[Annotated[str, Field(min_length=1, max_length=64), PlainText]] = None
    name: Optional[Annotated[str, Field(min_length=1, max_length=200), PlainText]] = None


def rename_product(store: CatalogStore, catalog_id: str, product_id: str, change: ProductChange, actor: str) -> dict:
    """The product's row with `change` applied (its images untouched); 404 when the catalog or product is unknown."""
    with store.writing() as tx:
        store.catalog(tx.db, catalog_id)
        row = tx.db.execute("SELECT sku, name FROM products WHERE catalog_id = ? AND product_id = ?",
                            [catalog_id, product_id]).fetchone()
        if row is None:
            raise HTTPException(404, f"catalog {catalog_id!r} has no product {product_id!r}; PUT it with its images first")
        sku, name = change.sku or row[0], change.name or row[1]
        tx.db.execute("UPDATE products SET sku = ?, name = ?, updated_at = ?, updated_by = ? WHERE catalog_id = ? AND "
                      "product_id = ?", [sku, name, now(), actor, catalog_id, product_id])
        tx.audit(actor, "rename_product", catalog_id, f"{product_id}: sku={sku!r}, name={name!r}")
    return {"product_id": product_id, "sku": sku, "name": name}


def product_routes(store: CatalogStore, settings: ServerSettings, access: Callable[[str], Callable[..., Principal]]) -> APIRouter:
    """`access(need)`: the dependency that checks the request's token (here: write on the path's catalog)."""
    router = APIRouter()
    checks = Turns(settings.max_concurrent_image_checks, settings.image_check_wait_s, "image check(s)")

    @router.put("/api/v1/catalogs/{catalog_id}/products/{product_id}")
    async def put_product(catalog_id: str, product_id: str,
                          images: Annotated[Optional[list[UploadFile]], File(description="JPEG, PNG or WebP")] = None,
                          sku: Annotated[str, Form(max_length=64), PlainText] = "",
                          name: Annotated[str, Form(max_length=200), PlainText] = "",
                          principal: Principal = Depends(access("write"))) -> JSONResponse:
        """Create or replace a product: its images are replaced by the ones sent."""
        check_product_id(product_id)
        if not images:
            raise HTTPException(422, PUT_NEEDS_IMAGES.format(most=settings.max_images_per_product))
        if not 1 <= len(images) <= settings.max_images_per_product:
            raise HTTPException(422, f"send 1 to {settings.max_images_per_product} images, got {len(images)}")
        sku, name = sku or product_id, name or product_id
        async with entered_in_threads(store.staging(catalog_id, product_id)) as staging:  # checked without the write lock
            saved = [await run_in_threadpool(save_upload, upload, staging / f"{i:02d}", settings, upload.filename or f"image {i}")
                     for i, upload in enumerate(images)]
            if (pixels := sum(p for _, p in saved)) > settings.max_pixels_per_request:
                raise HTTPException(413, f"the images sent total {pixels:,} pixels; at most {settings.max_pixels_per_request:,} "
                                         "per request (send smaller photos: a few megapixels each is plenty to match)")
            async with checks.turn():  # the decodes hold pixels in memory: a few requests at once, server-wide
                for (path, _), upload in zip(saved, images):
                    await run_in_threadpool(decodes, path, settings, upload.filename or path.name)
            existed = await run_in_threadpool(store.replace_product, catalog_id, product_id, staging, sku, name, principal.actor)
        body = {"product_id": product_id, "sku": sku, "name": name, "images": sorted(path.name for path, _ in saved)}
        return JSONResponse(body, status_code=200 if existed else 201)

    @router.patch("/api/v1/catalogs/{catalog_id}/products/{product_id}")
    def patch_product(catalog_id: str, product_id: str, change: ProductChange,
                      principal: Principal = Depends(access("write"))) -> dict:
        """Change a product's SKU and/or name; its images stay (the next publish rebuilds its shard)."""
        check_product_id(product_id)
        if change.sku is None and change.name is None:
            raise HTTPException(422, 'send "sku", "name" or both, as JSON')
        return rename_product(store, catalog_id, product_id, change, principal.actor)

    @router.delete("/api/v1/catalogs/{catalog_id}/products/{product_id}", status_code=204)
    def delete_product(catalog_id: str, product_id: str, principal: Principal = Depends(access("write"))) -> Response:
        check_product_id(product_id)
        store.delete_product(catalog_id, product_id, principal.actor)
        return Response(status_code=204)

    return router
