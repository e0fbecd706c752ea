"""The catalog server's work area: catalogs, their products and images on local disk, in the layout
`shelfid catalog build` reads.

    <work>/<catalog_id>/catalog.json        id, name, created_at
    <work>/<catalog_id>/products.csv        product_id, sku, name
    <work>/<catalog_id>/<product_id>/*.jpg  its images (validated on upload)

Every change is staged beside its target and renamed into place after an fsync, so a power cut leaves each
catalog and product as it was or as it became, never half; folders starting with '.' are staging or trash.
One writer at a time: callers hold `lock`, which publishing and re-signing share.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from fastapi import HTTPException

from edge.core.catalog_build import PRODUCT_ID
from models.safe_write import fsync_dir, fsync_tree, write_json_atomic, write_text_atomic

CATALOG_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # anchored for pydantic's search; checked here with re.fullmatch


def check_product_id(product_id: str) -> None:
    if not PRODUCT_ID.fullmatch(product_id):  # the whole id: with match and `$`, "a\n" would pass
        raise HTTPException(422, f"product id {product_id!r}: use letters, digits, '.', '_', '-' (at most 128)")


class CatalogStore:
    def __init__(self, work: Path):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def folder(self, catalog_id: str) -> Path:
        if not re.fullmatch(CATALOG_ID, catalog_id):
            raise HTTPException(422, f"catalog id {catalog_id!r}: use letters, digits, '.', '_', '-' (at most 64)")
        folder = self.work / catalog_id
        if not (folder / "catalog.json").is_file():
            raise HTTPException(404, f"no catalog {catalog_id!r}")
        return folder

    def catalogs(self) -> list[Path]:
        """Every catalog's folder; not those being created or deleted (their names start with '.')."""
        return sorted(p for p in self.work.iterdir() if not p.name.startswith(".") and (p / "catalog.json").is_file())

    def create(self, catalog_id: str, name: str) -> dict:
        folder = self.work / catalog_id
        if folder.exists():
            raise HTTPException(409, f"catalog {catalog_id!r} already exists")
        tmp = Path(tempfile.mkdtemp(prefix=f".{catalog_id}.", dir=self.work))
        meta = {"catalog_id": catalog_id, "name": name, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_json_atomic(tmp / "catalog.json", meta, indent=None)
        self.write_products(tmp, {})
        os.rename(tmp, folder)
        fsync_dir(self.work)
        return meta

    @contextmanager
    def deleting(self, catalog_id: str) -> Iterator[None]:
        """The catalog out of sight at once (renamed to trash), its files removed once the caller's block succeeds."""
        folder = self.folder(catalog_id)
        trash = folder.with_name(f".{catalog_id}.deleted")
        os.rename(folder, trash)
        fsync_dir(self.work)
        yield
        shutil.rmtree(trash)

    def meta(self, folder: Path) -> dict:
        return json.loads((folder / "catalog.json").read_text())

    def products(self, folder: Path) -> dict[str, dict]:
        with open(folder / "products.csv", newline="", encoding="utf-8") as f:
            return {row["product_id"]: {"sku": row["sku"], "name": row["name"]} for row in csv.DictReader(f)}

    def write_products(self, folder: Path, products: dict[str, dict]) -> None:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["product_id", "sku", "name"])
        for pid in sorted(products):
            writer.writerow([pid, products[pid]["sku"], products[pid]["name"]])
        write_text_atomic(folder / "products.csv", out.getvalue())

    def images(self, folder: Path, product_id: str) -> list[str]:
        path = folder / product_id
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    @contextmanager
    def staging(self, folder: Path, product_id: str) -> Iterator[Path]:
        """An empty folder beside the product's, for its new images; gone afterwards unless `replace_product` took it."""
        staging = Path(tempfile.mkdtemp(prefix=f".{product_id}.", dir=folder))
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def replace_product(self, folder: Path, product_id: str, staging: Path, sku: str, name: str) -> bool:
        """The product's images become those in `staging`, its row (sku, name) is written; whether it existed before."""
        products = self.products(folder)
        existed = product_id in products
        products[product_id] = {"sku": sku, "name": name}
        fsync_tree(staging)
        old = folder / f".{product_id}.old"
        if (folder / product_id).exists():
            os.rename(folder / product_id, old)
        os.rename(staging, folder / product_id)
        self.write_products(folder, products)  # fsyncs the folder, and with it both renames
        shutil.rmtree(old, ignore_errors=True)
        return existed

    def delete_product(self, catalog_id: str, product_id: str) -> None:
        folder = self.folder(catalog_id)
        products = self.products(folder)
        if product_id not in products:
            raise HTTPException(404, f"catalog {catalog_id!r} has no product {product_id!r}")
        del products[product_id]
        self.write_products(folder, products)
        shutil.rmtree(folder / product_id, ignore_errors=True)
