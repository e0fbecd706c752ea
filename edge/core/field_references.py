"""Field references on the device: product crops an installer confirmed on the page, kept until the catalog has them.

    references/<reference_id>/crop.jpg         the confirmed crop (a product box only, never the frame)
    references/<reference_id>/reference.json   what it is and where it came from (FieldReference's fields)

A reference is written to a hidden folder beside the others, fsynced, and renamed into place, so after a power cut it
is there whole or not at all; its state (`pending` until the catalog server has it, then `uploaded`, or `refused` with
the server's reason when it will not take it) is rewritten atomically. The identifier reads every reference here (the
device names the product from the next frame on; a refused one it skips), the sync agent uploads the pending ones
(sync_agent/uploader.py), and a reference leaves once the installed catalog holds it (its `reference_id` in the
catalog's images.json: `field-<reference_id>.jpg`) or `shelfid catalog references remove` takes it away.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

from edge.core.errors import CatalogError
from edge.core.ids import PRODUCT_ID
from models.safe_write import fsync_dir, fsync_tree, make_dirs, write_json_atomic

FIELD_PREFIX = "field-"  # an accepted reference's image in a catalog: field-<reference_id>.jpg (catalog build keeps it whole)


def catalog_file_name(reference_id: str) -> str:
    return f"{FIELD_PREFIX}{reference_id}.jpg"


@dataclass(frozen=True)
class FieldReference:
    reference_id: str  # uuid4 hex: the upload's idempotency key too
    catalog_id: str  # the catalog the installer confirmed against
    product_id: str
    sku: str
    name: str
    new_product: bool  # the installer named a product the catalog lacks
    device_id: str
    track_id: int
    confirmed_at: str  # ISO 8601 UTC
    confirmed_by: str  # who confirmed it (the page's user, or "evaluate" for the tools)
    guess: str | None = None  # the product the device thought most likely, for the reviewer
    state: str = "pending"  # -> "uploaded" (the server has it), or "refused" (the server will not take it: refused_reason)
    uploaded_at: str | None = None
    refused_reason: str | None = None  # the server's words; a refused reference is not used to identify (disputed: it
    # verifies better as another product) and is not sent again


def new_reference(catalog_id: str, product_id: str, sku: str, name: str, *, new_product: bool, device_id: str, track_id: int,
                  confirmed_by: str, guess: str | None = None) -> FieldReference:
    if not PRODUCT_ID.fullmatch(product_id):
        raise ValueError(f"product id {product_id!r}: letters, digits, '.', '_' and '-' only, starting with a letter or digit")
    return FieldReference(uuid.uuid4().hex, catalog_id, product_id, sku, name, new_product, device_id, track_id,
                          datetime.now(timezone.utc).isoformat(timespec="seconds"), confirmed_by, guess)


class ReferenceStore:
    """The `references/` folder of a device's data folder."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def add(self, reference: FieldReference, jpeg: bytes) -> None:
        """Keep a confirmed crop, durable once this returns."""
        make_dirs(self.root)
        staging = self.root / f".{reference.reference_id}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        (staging / "crop.jpg").write_bytes(jpeg)
        (staging / "reference.json").write_text(json.dumps(asdict(reference), indent=1))
        fsync_tree(staging)
        os.replace(staging, self.root / reference.reference_id)
        fsync_dir(self.root)

    def all(self) -> list[FieldReference]:
        """Every complete reference, oldest first (a half-written one, hidden, is not listed)."""
        if not self.root.is_dir():
            return []
        found = [self._read(p) for p in self.root.iterdir() if not p.name.startswith(".") and (p / "reference.json").is_file()]
        return sorted(found, key=lambda r: (r.confirmed_at, r.reference_id))

    def pending(self) -> list[FieldReference]:
        return [r for r in self.all() if r.state == "pending"]

    def crop(self, reference_id: str) -> bytes:
        return (self._folder(reference_id) / "crop.jpg").read_bytes()

    def mark_uploaded(self, reference_id: str) -> FieldReference:
        reference = replace(self._read(self._folder(reference_id)), state="uploaded",
                            uploaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_json_atomic(self._folder(reference_id) / "reference.json", asdict(reference))
        return reference

    def mark_refused(self, reference_id: str, reason: str) -> FieldReference:
        reference = replace(self._read(self._folder(reference_id)), state="refused", refused_reason=reason[:1000])
        write_json_atomic(self._folder(reference_id) / "reference.json", asdict(reference))
        return reference

    def remove(self, reference_id: str) -> None:
        folder = self._folder(reference_id)
        hidden = self.root / f".{reference_id}.removing"
        os.replace(folder, hidden)  # gone from listings in one step; the files after
        fsync_dir(self.root)
        shutil.rmtree(hidden)

    def clean(self) -> None:
        """Remove what a cut-short add or remove left (hidden folders)."""
        if self.root.is_dir():
            for leftover in self.root.glob(".*"):
                shutil.rmtree(leftover, ignore_errors=True)

    def _folder(self, reference_id: str) -> Path:
        if not reference_id or "/" in reference_id or reference_id.startswith("."):
            raise KeyError(reference_id)
        folder = self.root / reference_id
        if not (folder / "reference.json").is_file():
            raise KeyError(reference_id)
        return folder

    @staticmethod
    def _read(folder: Path) -> FieldReference:
        try:
            data = json.loads((folder / "reference.json").read_text(encoding="utf-8"))
            known = {f.name for f in fields(FieldReference)}
            return FieldReference(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError) as exc:
            raise CatalogError(f"{folder}/reference.json: unreadable field reference: {exc}") from None
