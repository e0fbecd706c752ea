"""Field references: product crops an installer confirmed on a device, uploaded for a catalog manager to review.

    POST /api/v1/catalogs/{id}/references                     upload (multipart: `reference` JSON, `crop` JPEG); upload scope
    GET  /api/v1/catalogs/{id}/references[?state=]            the review queue (default: pending and disputed); write
    GET  /api/v1/catalogs/{id}/references/{ref}[/crop]        one upload, its crop
    GET  /api/v1/catalogs/{id}/references/{ref}/state         what became of it (upload scope: for the device that sent it)
    POST /api/v1/catalogs/{id}/references/{ref}/accept        {"override": false, "note": ""}: the crop becomes an image
    POST /api/v1/catalogs/{id}/references/{ref}/reject        {"reason": "..."}

States: `pending` (checked, or nothing published to check against) → `accepted` | `rejected`; `disputed` (the crop
verifies better against another product: edge.core.reference_check) → `accepted` only with `override: true`, or
`rejected`. An upload is idempotent on its `reference_id` (the device's uuid4): a second upload of the same id stores
nothing and answers with the stored one (201 the first time, 200 after; 409 each time while it is disputed), so a
device that lost the answer (a cut network, a kill -9) sends it again and the server keeps it once.

The crop is checked by content before anything is stored: JPEG (415), at most `max_reference_bytes` and
`max_reference_pixels` (413: a product box, not a frame), at least `min_image_side` a side (422), decoded whole; the
JSON names a known product, or a new one with its SKU and name (422). It is written to a staging folder, checked
without the write lock, and renamed to `<work>/<catalog>/.references/<reference_id>.jpg` inside the transaction that
adds its row: a refused or failed upload leaves neither. Accepting hard-links it into the product's folder as
`field-<reference_id>.jpg` (an images row; the product created first when the reference names a new one), so the next
publish, incremental, sends it to every device, and a device finds its own reference in images.json by that name.
Every change is an audit row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from edge.core.errors import ImageError, ShelfIDError
from edge.core.field_references import catalog_file_name
from edge.core.ids import CATALOG_ID_PATTERN, DEVICE_ID_PATTERN, PRODUCT_ID_PATTERN
from edge.core.images import read_image
from edge.core.reference_check import Verdict, check_crop
from models.safe_write import fsync_dir
from sync_agent.server.db import now
from sync_agent.server.detect import DetectSlots, PublishedIdentifiers
from sync_agent.server.products import decodes, entered_in_threads, image_refused, save_upload
from sync_agent.server.settings import ServerSettings
from sync_agent.server.store import CatalogStore, Change, plain_text
from sync_agent.server.tokens import Principal

log = logging.getLogger(__name__)
REFERENCE_ID_PATTERN = r"^[0-9a-f]{32}$"
STATES = ("pending", "disputed", "accepted", "rejected")
OPEN = ("pending", "disputed")
FORM_OVERHEAD = 64 * 1024  # boundaries, part headers and the reference's JSON around the crop
MAX_JSON_BYTES = 16 * 1024  # the reference's JSON sent as a file part (a text field is capped by the form parser)
PlainText = AfterValidator(plain_text)
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["reference", "crop"],
    "properties": {"reference": {"type": "string", "description": "the reference's JSON (edge.core.field_references)"},
                   "crop": {"type": "string", "format": "binary", "description": "the product box, JPEG"}}}}}}}


class ReferenceIn(BaseModel):
    """What a device sends about its crop (its own bookkeeping, such as `state`, is ignored)."""

    model_config = ConfigDict(extra="ignore")
    reference_id: str = Field(pattern=REFERENCE_ID_PATTERN, description="The device's uuid4 hex: the upload's idempotency key.")
    catalog_id: str = Field(pattern=CATALOG_ID_PATTERN)
    product_id: str = Field(pattern=PRODUCT_ID_PATTERN)
    sku: Annotated[str, Field(max_length=64), PlainText] = ""
    name: Annotated[str, Field(max_length=200), PlainText] = ""
    new_product: StrictBool = False
    device_id: str = Field(pattern=DEVICE_ID_PATTERN, max_length=64)
    track_id: int = Field(ge=0, le=2 ** 63 - 1)
    confirmed_at: AwareDatetime
    confirmed_by: Annotated[str, Field(min_length=1, max_length=100), PlainText]
    guess: Optional[Annotated[str, Field(max_length=128), PlainText]] = None


class Accept(BaseModel):
    model_config = ConfigDict(extra="forbid")
    override: StrictBool = Field(default=False, description="Accept a disputed upload all the same (audited).")
    note: Annotated[str, Field(max_length=500), PlainText] = ""


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500), PlainText]


def parse_reference(text: str, catalog_id: str) -> ReferenceIn:
    try:
        reference = ReferenceIn.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'reference'}: {e['msg']}" for e in exc.errors())
        raise HTTPException(422, f"the 'reference' field is not a field reference's JSON: {problems}") from None
    if reference.catalog_id != catalog_id:
        raise HTTPException(422, f"the reference is for catalog {reference.catalog_id!r}, uploaded to {catalog_id!r}")
    if reference.new_product and not (reference.sku.strip() and reference.name.strip()):
        raise HTTPException(422, f"new product {reference.product_id!r}: send its 'sku' and 'name' too")
    return reference


def public(row: dict) -> dict:
    """A stored row as the API shows it."""
    shown = {k: v for k, v in row.items() if k not in ("check_json", "file")}
    return shown | {"new_product": bool(row["new_product"]), "override": bool(row["override"]),
                    "check": json.loads(row["check_json"] or "{}")}


def answer(row: dict, created: bool) -> JSONResponse:
    """201 stored now, 200 stored before; 409 while disputed (with the reason), every time it is sent."""
    body = public(row)
    if row["state"] == "disputed":
        return JSONResponse({"error": f"disputed: {row['reason']}; kept for a catalog manager, who may accept it with an "
                                      "override", "status": 409, "reference": body}, 409)
    return JSONResponse(body, 201 if created else 200)


class References:
    """The rows and files of field references, changed under the store's write lock."""

    def __init__(self, store: CatalogStore, settings: ServerSettings):
        self.store, self.settings = store, settings

    def folder(self, catalog_id: str) -> Path:
        return self.store.folder(catalog_id) / ".references"  # a dot: never a product id, never built

    def row(self, db, reference_id: str) -> Optional[dict]:
        rows = list(db["field_references"].rows_where("reference_id = ?", [reference_id]))
        return rows[0] if rows else None

    def get(self, db, catalog_id: str, reference_id: str) -> dict:
        self.store.catalog(db, catalog_id)
        row = self.row(db, reference_id)
        if row is None or row["catalog_id"] != catalog_id:
            raise HTTPException(404, f"catalog {catalog_id!r} has no field reference {reference_id!r}")
        return row

    def stored(self, reference_id: str, catalog_id: str) -> Optional[dict]:
        with self.store.connected() as db:
            row = self.row(db, reference_id)
        if row is not None and row["catalog_id"] != catalog_id:
            raise HTTPException(409, f"reference {reference_id} was uploaded to catalog {row['catalog_id']!r} already")
        return row

    def filed_product(self, reference: ReferenceIn) -> None:
        """404 for an unknown catalog; 422 when the product is unknown and not new, or new but its id taken by another."""
        with self.store.connected() as db:
            self.store.catalog(db, reference.catalog_id)
            found = db.execute("SELECT sku FROM products WHERE catalog_id = ? AND product_id = ?",
                               [reference.catalog_id, reference.product_id]).fetchone()
        if found is None and not reference.new_product:
            raise HTTPException(422, f"catalog {reference.catalog_id!r} has no product {reference.product_id!r}: file the "
                                     "crop under one it has, or as a new product (new_product: true, with sku and name)")
        if found is not None and reference.new_product and found[0] != reference.sku:
            raise HTTPException(422, f"new product {reference.product_id!r}: the catalog has a product with that id already "
                                     f"(SKU {found[0]!r}, not {reference.sku!r}); choose another id or file it under that one")

    def record(self, reference: ReferenceIn, crop: Path, size: tuple[int, int], verdict: Verdict, actor: str) -> tuple[dict, bool]:
        """The upload stored (its row and its crop together); (the row, whether it was stored now)."""
        target = self.folder(reference.catalog_id) / f"{reference.reference_id}.jpg"
        placed = False
        try:
            with self.store.writing() as change:
                self.store.catalog(change.db, reference.catalog_id)
                if (row := self.row(change.db, reference.reference_id)) is not None:  # the same upload, in parallel
                    return row, False
                fresh = not target.parent.is_dir()
                target.parent.mkdir(exist_ok=True)
                os.replace(crop, target)
                placed = True
                fsync_dir(target.parent)
                if fresh:
                    fsync_dir(target.parent.parent)
                data = target.read_bytes()
                row = reference.model_dump() | {
                    "confirmed_at": reference.confirmed_at.isoformat(), "new_product": int(reference.new_product),
                    "state": "disputed" if verdict.disputed else "pending", "reason": verdict.reason,
                    "check_json": json.dumps(verdict.evidence), "file": target.name, "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data), "width": size[0], "height": size[1], "uploaded_at": now(), "uploaded_by": actor,
                    "reviewed_at": None, "reviewed_by": None, "review_note": "", "override": 0}
                change.db["field_references"].insert(row)
                change.audit(actor, "upload_reference", reference.catalog_id,
                             f"{reference.reference_id}: {reference.product_id}{' (new product)' if reference.new_product else ''}"
                             f" from device {reference.device_id}, track {reference.track_id}, confirmed by "
                             f"{reference.confirmed_by!r} at {row['confirmed_at']}: {row['state']} ({verdict.reason})")
        except BaseException:
            if placed:
                target.unlink(missing_ok=True)
            raise
        return self.row_of(reference.reference_id), True

    def row_of(self, reference_id: str) -> dict:
        with self.store.connected() as db:
            return self.row(db, reference_id)

    def accept(self, catalog_id: str, reference_id: str, body: Accept, actor: str) -> dict:
        linked: list[Path] = []
        try:
            with self.store.writing() as change:
                row = self.get(change.db, catalog_id, reference_id)
                if row["state"] == "accepted":
                    return row
                if row["state"] == "rejected":
                    raise HTTPException(409, f"reference {reference_id} was rejected by {row['reviewed_by']} "
                                             f"({row['review_note']!r}); it cannot be accepted now")
                if row["state"] == "disputed" and not body.override:
                    raise HTTPException(409, f"reference {reference_id} is disputed: {row['reason']}. Accept it with "
                                             '{"override": true} only if the crop does show ' f"{row['product_id']!r}")
                detail = self.add_image(change, row, actor, linked)
                change.db.execute("UPDATE field_references SET state = 'accepted', reviewed_at = ?, reviewed_by = ?, "
                                  "review_note = ?, override = ? WHERE reference_id = ?",
                                  [now(), actor, body.note, int(row["state"] == "disputed"), reference_id])
                overridden = f"; OVERRIDE of the dispute: {row['reason']}" if row["state"] == "disputed" else ""
                change.audit(actor, "accept_reference", catalog_id,
                             f"{reference_id}: {detail}{overridden}{f'; note: {body.note}' if body.note else ''}")
        except BaseException:
            for path in linked:  # the image file, then the folder a new product got
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            raise
        return self.row_of(reference_id)

    def add_image(self, change: Change, row: dict, actor: str, linked: list[Path]) -> str:
        """The reference's crop as an image of its product (made first for a new one); what was done, for the audit."""
        catalog_id, product_id = row["catalog_id"], row["product_id"]
        exists = change.db.execute("SELECT 1 FROM products WHERE catalog_id = ? AND product_id = ?",
                                   [catalog_id, product_id]).fetchone() is not None
        made = ""
        if not exists:
            if not row["new_product"]:
                raise HTTPException(409, f"catalog {catalog_id!r} has no product {product_id!r} any more (deleted since "
                                         "the upload): reject the reference, or create the product and accept it again")
            change.db["products"].insert({"catalog_id": catalog_id, "product_id": product_id, "sku": row["sku"],
                                          "name": row["name"], "updated_at": now(), "updated_by": actor})
            made = f"new product sku={row['sku']!r}, name={row['name']!r}; "
        fields = change.db.execute("SELECT count(*) FROM images WHERE catalog_id = ? AND product_id = ? AND file LIKE 'field-%'",
                                   [catalog_id, product_id]).fetchone()[0]
        if fields >= self.settings.max_field_images_per_product:
            raise HTTPException(409, f"product {product_id!r} holds {fields} field references already (at most "
                                     f"{self.settings.max_field_images_per_product}); PUT the product with fewer images first")
        folder, file = self.store.folder(catalog_id) / product_id, catalog_file_name(row['reference_id'])
        fresh = not folder.is_dir()
        folder.mkdir(exist_ok=True)
        if fresh:
            linked.append(folder)
        source = self.folder(catalog_id) / row["file"]
        try:
            os.link(source, folder / file)
        except FileExistsError:
            (folder / file).unlink()
            os.link(source, folder / file)
        except OSError:
            shutil.copyfile(source, folder / file)
        linked.insert(0, folder / file)
        fsync_dir(folder)
        if fresh:
            fsync_dir(folder.parent)
        position = change.db.execute("SELECT coalesce(max(position) + 1, 0) FROM images WHERE catalog_id = ? AND product_id = ?",
                                     [catalog_id, product_id]).fetchone()[0]
        change.db["images"].insert({"catalog_id": catalog_id, "product_id": product_id, "file": file, "position": position,
                                    "sha256": row["sha256"], "bytes": row["bytes"]})
        change.db.execute("UPDATE products SET updated_at = ?, updated_by = ? WHERE catalog_id = ? AND product_id = ?",
                          [now(), actor, catalog_id, product_id])
        return f"{made}image {product_id}/{file}"

    def reject(self, catalog_id: str, reference_id: str, body: Reject, actor: str) -> dict:
        with self.store.writing() as change:
            row = self.get(change.db, catalog_id, reference_id)
            if row["state"] == "rejected":
                return row
            if row["state"] == "accepted":
                raise HTTPException(409, f"reference {reference_id} was accepted by {row['reviewed_by']}: its image is "
                                         f"{row['product_id']}/field-{reference_id}.jpg; PUT the product without it to remove it")
            change.db.execute("UPDATE field_references SET state = 'rejected', reviewed_at = ?, reviewed_by = ?, review_note = ? "
                              "WHERE reference_id = ?", [now(), actor, body.reason, reference_id])
            change.audit(actor, "reject_reference", catalog_id, f"{reference_id}: {row['product_id']}: {body.reason}")
        return self.row_of(reference_id)


def reference_routes(store: CatalogStore, settings: ServerSettings, identifiers: PublishedIdentifiers, slots: DetectSlots,
                     access: Callable[[str], Callable[..., Principal]]) -> APIRouter:
    """`identifiers`, `slots`: detect's (server.detect.detection), so a crop's check shares the models and their slots."""
    router = APIRouter()
    references = References(store, settings)
    limits = replace(settings, max_image_bytes=settings.max_reference_bytes, max_pixels=settings.max_reference_pixels)

    def check(catalog_id: str, crop: Path, product_id: str) -> Verdict:
        try:
            version, identifier, _ = identifiers.latest(catalog_id)
        except HTTPException as exc:  # nothing published yet, or not openable with these models: the manager decides
            return Verdict(False, f"not checked: {exc.detail}", {"checked": False})
        try:
            image = read_image(crop, limits.max_pixels)
        except ImageError as exc:
            raise image_refused(exc, "crop") from None
        try:
            return check_crop(identifier, version, image, product_id)
        except ShelfIDError as exc:
            log.warning("catalog %s: a field reference could not be checked: %s", catalog_id, exc)
            return Verdict(False, f"not checked: {exc}", {"checked": False})

    @router.post("/api/v1/catalogs/{catalog_id}/references", status_code=201, openapi_extra=UPLOAD_BODY)
    async def upload_reference(catalog_id: str, request: Request, principal: Principal = Depends(access("upload"))) -> Response:
        """A crop an installer confirmed, with its provenance; checked, then queued for review (idempotent on its id)."""
        length = request.headers.get("content-length")
        if length is not None and int(length) > settings.max_reference_bytes + FORM_OVERHEAD:
            raise HTTPException(413, f"a field reference carries one crop of at most {settings.max_reference_bytes >> 20} MB")
        try:
            form = await asyncio.wait_for(request.form(max_files=2, max_fields=1), settings.upload_timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(408, f"the upload did not arrive within {settings.upload_timeout_s:g} s") from None
        try:
            text, crop = form.get("reference"), form.get("crop")
            if isinstance(text, UploadFile):  # curl -F reference=@reference.json
                text = (await text.read(MAX_JSON_BYTES + 1)).decode("utf-8", "replace")
                if len(text) > MAX_JSON_BYTES:
                    raise HTTPException(413, f"the reference's JSON is over {MAX_JSON_BYTES} bytes")
            if not isinstance(text, str):
                raise HTTPException(422, "send the reference's JSON as the multipart text field 'reference'")
            if not isinstance(crop, UploadFile):
                raise HTTPException(422, "send the crop as the multipart file field 'crop' (a JPEG of the product box)")
            reference = parse_reference(text, catalog_id)
            if (row := await run_in_threadpool(references.stored, reference.reference_id, catalog_id)) is not None:
                return answer(row, created=False)  # delivered again (the device never heard the answer): kept once
            await run_in_threadpool(references.filed_product, reference)
            async with entered_in_threads(store.staging(catalog_id, "reference")) as staging:
                path, pixels = await run_in_threadpool(save_upload, crop, staging / "crop", limits, "crop")
                if path.suffix != ".jpg":
                    raise HTTPException(415, f"the crop is {path.suffix[1:].upper()}; a field reference's crop is a JPEG")
                await run_in_threadpool(decodes, path, limits, "crop")
                async with slots.slot(catalog_id):
                    verdict = await run_in_threadpool(check, catalog_id, path, reference.product_id)
                size = await run_in_threadpool(image_size, path)
                row, created = await run_in_threadpool(references.record, reference, path, size, verdict, principal.actor)
            return answer(row, created)
        finally:
            await form.close()

    @router.get("/api/v1/catalogs/{catalog_id}/references")
    def list_references(catalog_id: str, state: Annotated[Optional[str], Query(pattern="^(pending|disputed|accepted|rejected|open|all)$")] = "open",
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100, principal: Principal = Depends(access("write"))) -> list[dict]:
        """The review queue, oldest first: `open` (pending and disputed, the default), one state, or `all`."""
        states = {"open": OPEN, "all": STATES}.get(state or "open", (state,))
        with store.connected() as db:
            store.catalog(db, catalog_id)
            rows = db["field_references"].rows_where(
                f"catalog_id = ? AND state IN ({', '.join('?' * len(states))})", [catalog_id, *states],
                order_by="uploaded_at, reference_id", limit=limit)
            return [public(r) for r in rows]

    @router.get("/api/v1/catalogs/{catalog_id}/references/{reference_id}")
    def get_reference(catalog_id: str, reference_id: str, principal: Principal = Depends(access("write"))) -> dict:
        with store.connected() as db:
            return public(references.get(db, catalog_id, reference_id))

    @router.get("/api/v1/catalogs/{catalog_id}/references/{reference_id}/state")
    def reference_state(catalog_id: str, reference_id: str, principal: Principal = Depends(access("upload"))) -> dict:
        """What became of an upload, for the device that sent it (upload scope): a rejected one it stops using."""
        with store.connected() as db:
            row = references.get(db, catalog_id, reference_id)
        return {k: row[k] for k in ("reference_id", "state", "reason", "review_note", "reviewed_at")}

    @router.get("/api/v1/catalogs/{catalog_id}/references/{reference_id}/crop")
    def get_crop(catalog_id: str, reference_id: str, principal: Principal = Depends(access("write"))) -> Response:
        with store.connected() as db:
            row = references.get(db, catalog_id, reference_id)
        return Response((references.folder(catalog_id) / row["file"]).read_bytes(), media_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})

    @router.post("/api/v1/catalogs/{catalog_id}/references/{reference_id}/accept")
    def accept_reference(catalog_id: str, reference_id: str, body: Optional[Accept] = None,
                         principal: Principal = Depends(access("write"))) -> dict:
        """The crop becomes an image of its product (`field-<reference_id>.jpg`), sent to devices by the next publish."""
        return public(references.accept(catalog_id, reference_id, body or Accept(), principal.actor))

    @router.post("/api/v1/catalogs/{catalog_id}/references/{reference_id}/reject")
    def reject_reference(catalog_id: str, reference_id: str, body: Reject, principal: Principal = Depends(access("write"))) -> dict:
        return public(references.reject(catalog_id, reference_id, body, principal.actor))

    return router


def image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size
