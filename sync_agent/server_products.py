"""Routes for one product of a catalog: create or replace it with its images (multipart), delete it.

Uploads are checked by content, not by name or declared type: size while they stream, then the format, the
pixel count and a full decode, so what reaches the work area is an image `catalog build` can read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image

from edge.core.errors import ImageError
from edge.core.images import read_image
from sync_agent.server_settings import ServerSettings
from sync_agent.server_store import CatalogStore, check_product_id
from sync_agent.server_tokens import Principal

IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


def check_image(path: Path, settings: ServerSettings, filename: str) -> str:
    """The file's extension by its content; 415 for other types, 413 over the pixel cap, 422 when broken or too small."""
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
    try:
        read_image(path, settings.max_pixels)  # decodes it all: truncation and decompression bombs show here
    except ImageError as exc:
        status = 413 if "pixels" in str(exc) else 422
        raise HTTPException(status, f"{filename}: {str(exc).split(': ', 1)[-1]}") from None
    return IMAGE_FORMATS[kind]


def save_upload(upload: UploadFile, target: Path, settings: ServerSettings, filename: str) -> Path:
    """`upload` copied to `target` + the extension its content shows, within the per-image size cap; the final path."""
    with open(target, "wb") as out:
        size = 0
        while chunk := upload.file.read(1 << 20):
            size += len(chunk)
            if size > settings.max_image_bytes:
                raise HTTPException(413, f"{upload.filename}: over the {settings.max_image_bytes >> 20} MB limit per image")
            out.write(chunk)
    if size == 0:
        raise HTTPException(422, f"{upload.filename}: empty file")
    return target.rename(target.with_suffix(check_image(target, settings, filename)))


def product_routes(store: CatalogStore, settings: ServerSettings, access: Callable[[str], Callable[..., Principal]]) -> APIRouter:
    """`access(need)`: the dependency that checks the request's token (here: write on the path's catalog)."""
    router = APIRouter()

    @router.put("/api/v1/catalogs/{catalog_id}/products/{product_id}")
    def put_product(catalog_id: str, product_id: str, images: Annotated[list[UploadFile], File(description="JPEG, PNG or WebP")],
                    sku: Annotated[str, Form(max_length=64)] = "", name: Annotated[str, Form(max_length=200)] = "",
                    principal: Principal = Depends(access("write"))) -> JSONResponse:
        """Create or replace a product: its images are replaced by the ones sent."""
        check_product_id(product_id)
        if not 1 <= len(images) <= settings.max_images_per_product:
            raise HTTPException(422, f"send 1 to {settings.max_images_per_product} images, got {len(images)}")
        sku, name = sku or product_id, name or product_id
        with store.staging(catalog_id, product_id) as staging:  # checked without the write lock; switched in under it
            saved = [save_upload(upload, staging / f"{i:02d}", settings, upload.filename or f"image {i}").name
                     for i, upload in enumerate(images)]
            existed = store.replace_product(catalog_id, product_id, staging, sku, name, principal.actor)
        body = {"product_id": product_id, "sku": sku, "name": name, "images": sorted(saved)}
        return JSONResponse(body, status_code=200 if existed else 201)

    @router.delete("/api/v1/catalogs/{catalog_id}/products/{product_id}", status_code=204)
    def delete_product(catalog_id: str, product_id: str, principal: Principal = Depends(access("write"))) -> Response:
        check_product_id(product_id)
        store.delete_product(catalog_id, product_id, principal.actor)
        return Response(status_code=204)

    return router
