"""The catalog server's state: records in SQLite (server.db: catalogs, products, images, versions, tokens, audit) and
the product images in the work area on disk, in the layout `shelfid catalog build` reads:

    <root>/catalog.db                       the records (WAL: also catalog.db-wal, catalog.db-shm)
    <work>/<catalog_id>/<product_id>/*.jpg  a product's images, as the images table lists them

A change is one BEGIN IMMEDIATE transaction (`writing`): its rows, its file renames and its audit row go together.
New images are written and checked in a staging folder first (no lock held), then renamed into place inside the
transaction; if the transaction fails the rename is undone, so a failed request leaves neither a row nor a file.
The database's write lock is the one writer lock for every thread and every worker process on this root, publishing
and re-signing included. Folders starting with '.' are staging or trash.

A publish holds a lock file per catalog (`<work>/.publishing/<catalog_id>`, flock) for its whole length, build
included, so a second publish of the catalog, from any thread or worker process, is refused at once.

A work area from before the database (`<work>/<id>/catalog.json` + `products.csv`) is imported at start, once per
catalog (its two files are removed once its rows are committed).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException
from sqlite_utils import Database

from edge.core.ids import CATALOG_ID, PRODUCT_ID
from edge.core.text import printable
from models.safe_write import fsync_dir, fsync_tree, make_dirs
from sync_agent.server.db import connect, migrate, now, transaction

# Characters a name or SKU never needs and that change what a terminal, a log or a page shows around them: C0 and C1
# controls (ESC starts terminal sequences, CR/LF forge lines), the bidi controls (U+202E shows the rest reversed), the
# line and paragraph separators, lone surrogates. Joiners (U+200C/D) stay: Persian, Indic scripts and emoji need them.
UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
log = logging.getLogger(__name__)


def plain_text(value: str) -> str:
    """`value` when it holds no control or direction character (a pydantic validator: ValueError otherwise)."""
    if found := UNSAFE_TEXT.search(value):
        raise ValueError(f"{ascii(found.group())[1:-1]} at position {found.start()} is a control or direction character; "
                         "send plain text (names are shown on terminals, in logs and on pages)")
    return value


def check_catalog_id(catalog_id: str) -> None:
    if not CATALOG_ID.fullmatch(catalog_id):
        raise HTTPException(422, f"catalog id {catalog_id!r}: use letters, digits, '.', '_', '-' (at most 64)")


def check_product_id(product_id: str) -> None:
    if not PRODUCT_ID.fullmatch(product_id):  # the whole id: with match and `$`, "a\n" would pass
        raise HTTPException(422, f"product id {product_id!r}: use letters, digits, '.', '_', '-' (at most 128)")


@dataclass
class Change:
    """One write transaction: its connection, and the audit lines logged once it commits."""

    db: Database
    lines: list[str] = field(default_factory=list)

    def audit(self, actor: str, action: str, catalog_id: str | None, detail: str = "") -> None:
        self.db["audit"].insert({"at": now(), "actor": actor, "action": action, "catalog_id": catalog_id, "detail": detail})
        self.lines.append(printable(f"audit: {actor} {action} {catalog_id or '-'} {detail}".rstrip()))


class CatalogStore:
    def __init__(self, work: Path, database: Path):
        self.work, self.database = work, database
        make_dirs(work)  # durable names: a root never fsynced into its parent is lost at a power cut, records and all
        make_dirs(database.parent)
        with self.connected() as db:
            before, after = migrate(db)
        if before != after:
            log.info("catalog database %s: schema v%d -> v%d", database, before, after)
        self.import_work_area()
        self.finish_switches()
        self.lock = WriteLock(self)

    @contextmanager
    def connected(self) -> Iterator[Database]:
        """A connection of its own (one per request), closed afterwards."""
        db = connect(self.database)
        try:
            yield db
        finally:
            db.conn.close()

    @contextmanager
    def writing(self) -> Iterator[Change]:
        """One BEGIN IMMEDIATE transaction; a database still locked after the busy timeout is a 503, not a 500."""
        with self.connected() as db:
            change = Change(db)
            try:
                with transaction(db):
                    yield change
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                raise HTTPException(503, "the catalog database is busy; retry shortly", headers={"Retry-After": "1"}) from None
        for line in change.lines:
            log.info("%s", line)

    # reads

    def folder(self, catalog_id: str) -> Path:
        return self.work / catalog_id

    def catalog(self, db: Database, catalog_id: str) -> dict:
        check_catalog_id(catalog_id)
        rows = list(db["catalogs"].rows_where("catalog_id = ?", [catalog_id]))
        if not rows:
            raise HTTPException(404, f"no catalog {catalog_id!r}")
        return rows[0]

    def catalogs(self, db: Database) -> list[dict]:
        counts = dict(db.execute("SELECT catalog_id, count(*) FROM products GROUP BY catalog_id").fetchall())
        return [row | {"products": counts.get(row["catalog_id"], 0)} for row in db["catalogs"].rows_where(order_by="catalog_id")]

    def products(self, db: Database, catalog_id: str) -> list[dict]:
        """The catalog's products, each with its image files in order."""
        return [p | {"images": [file for file, _ in p["images"]]} for p in self.fingerprint_rows(db, catalog_id)]

    def fingerprint_rows(self, db: Database, catalog_id: str) -> list[dict]:
        """The catalog's products with (file, sha256) of each image in order: what an incremental publish compares."""
        images: dict[str, list[tuple[str, str]]] = {}
        for row in db["images"].rows_where("catalog_id = ?", [catalog_id], order_by="product_id, position"):
            images.setdefault(row["product_id"], []).append((row["file"], row["sha256"]))
        return [{"product_id": p["product_id"], "sku": p["sku"], "name": p["name"], "images": images.get(p["product_id"], [])}
                for p in db["products"].rows_where("catalog_id = ?", [catalog_id], order_by="product_id")]

    # changes

    def create(self, catalog_id: str, name: str, actor: str) -> dict:
        check_catalog_id(catalog_id)
        at = now()
        row = {"catalog_id": catalog_id, "name": name, "created_at": at, "created_by": actor, "updated_at": at, "updated_by": actor,
               "generation": uuid.uuid4().hex}
        with self.writing() as change:
            try:
                change.db["catalogs"].insert(row)
            except sqlite3.IntegrityError:
                raise HTTPException(409, f"catalog {catalog_id!r} already exists") from None
            shutil.rmtree(self.folder(catalog_id), ignore_errors=True)  # left by a crash mid-delete: not this catalog's
            self.folder(catalog_id).mkdir()
            fsync_dir(self.work)  # before the commit: a row must never outlive a power cut without its folder
            change.audit(actor, "create_catalog", catalog_id, f"name={name!r}")
        return {"catalog_id": catalog_id, "name": name, "created_at": at}

    @contextmanager
    def deleting(self, catalog_id: str, actor: str) -> Iterator[None]:
        """The catalog's rows (products, images, versions, tokens) and folder gone together with what the caller's block
        removes from storage; the folder comes back if the block fails."""
        with self.writing() as change:
            self.catalog(change.db, catalog_id)
            change.db["catalogs"].delete(catalog_id)  # cascades to products, images, versions, tokens
            trash = self.work / f".{catalog_id}.deleted-{uuid.uuid4().hex[:8]}"
            os.rename(self.folder(catalog_id), trash)
            try:
                yield
                change.audit(actor, "delete_catalog", catalog_id)
            except BaseException:
                os.rename(trash, self.folder(catalog_id))
                raise
        shutil.rmtree(trash, ignore_errors=True)

    @contextmanager
    def staging(self, catalog_id: str, product_id: str) -> Iterator[Path]:
        """An empty folder in the catalog's, for a product's new images; gone afterwards unless `replace_product` took it.
        A block that fails because the folder went away (the catalog was deleted meanwhile: its folder with it) is a 404."""
        with self.connected() as db:
            self.catalog(db, catalog_id)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{product_id}.", dir=self.folder(catalog_id)))
        except FileNotFoundError:
            raise self.deleted_meanwhile(catalog_id) from None
        try:
            yield staging
        except Exception:
            if not staging.is_dir():
                raise self.deleted_meanwhile(catalog_id) from None
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def deleted_meanwhile(catalog_id: str) -> HTTPException:
        return HTTPException(404, f"catalog {catalog_id!r} was deleted while the images were being checked; nothing was stored")

    @contextmanager
    def publishing(self, catalog_id: str) -> Iterator[None]:
        """Held for a whole publish of the catalog: a second one, from this process or another worker on this root, gets
        409 at once instead of building for minutes to lose at the end. An flock on a file that is never removed (so it
        cannot be unlinked under its holder); the kernel releases it when its holder dies."""
        check_catalog_id(catalog_id)
        folder = self.work / ".publishing"
        folder.mkdir(exist_ok=True)
        with open(folder / catalog_id, "ab") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise HTTPException(409, f"catalog {catalog_id!r} is being published already; publish again once that "
                                         "one is done", headers={"Retry-After": "10"}) from None
            yield

    def replace_product(self, catalog_id: str, product_id: str, staging: Path, sku: str, name: str, actor: str) -> bool:
        """The product's images become those in `staging`, its row (sku, name) is written; whether it existed before."""
        fsync_tree(staging)
        files = sorted(p.name for p in staging.iterdir())
        images = [{"catalog_id": catalog_id, "product_id": product_id, "file": f, "position": i,
                   "sha256": hashlib.sha256((staging / f).read_bytes()).hexdigest(), "bytes": (staging / f).stat().st_size}
                  for i, f in enumerate(files)]
        target, old = self.folder(catalog_id) / product_id, self.folder(catalog_id) / f".{product_id}.old-{uuid.uuid4().hex[:8]}"
        moved = None
        try:
            with self.writing() as change:
                self.catalog(change.db, catalog_id)  # deleted while the images were checked: 404
                existed = change.db.execute("SELECT 1 FROM products WHERE catalog_id = ? AND product_id = ?",
                                            [catalog_id, product_id]).fetchone() is not None
                change.db.execute("""INSERT INTO products VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (catalog_id, product_id)
                                     DO UPDATE SET sku = excluded.sku, name = excluded.name, updated_at = excluded.updated_at,
                                     updated_by = excluded.updated_by""", [catalog_id, product_id, sku, name, now(), actor])
                # (not sqlite-utils' upsert: its INSERT OR IGNORE of the key alone hits NOT NULL and is ignored)
                change.db["images"].delete_where("catalog_id = ? AND product_id = ?", [catalog_id, product_id])
                change.db["images"].insert_all(images)
                change.audit(actor, "replace_product" if existed else "add_product", catalog_id,
                             f"{product_id}: {len(files)} image(s), sku={sku!r}, name={name!r}")
                moved = self.switch(target, staging, old)
                fsync_dir(target.parent)  # the renames on disk before the commit (a cut in between: finish_switches)
        except BaseException:
            if moved is not None:  # the commit failed after the files switched: they switch back
                os.rename(target, staging)
                if moved:
                    os.rename(old, target)
            raise
        if moved:
            shutil.rmtree(old, ignore_errors=True)
        return existed

    def finish_switches(self) -> None:
        """After a power cut in replace_product, between its renames reaching the disk and its commit: the product
        folder holds the new images, the records the old ones, which wait in `.<product>.old-*`. The records decide
        (the commit is the change): the old folder comes back when they name its files, and goes when they name the
        product folder's. Under the write lock, so no switch of another worker on this root is half-way."""
        with self.writing() as change:
            for old in sorted(self.work.glob("*/.*.old-*")):
                catalog_id, product_id = old.parent.name, old.name[1:].rsplit(".old-", 1)[0]
                rows = {(r["file"], r["sha256"]) for r in change.db["images"].rows_where(
                    "catalog_id = ? AND product_id = ?", [catalog_id, product_id])}
                target = old.parent / product_id
                if rows and holds(old, rows) and not holds(target, rows):
                    log.warning("catalog %s: product %s was cut off mid-change; its recorded images are restored", catalog_id,
                                product_id)
                    if target.exists():
                        os.rename(target, old.parent / f".{product_id}.deleted-{uuid.uuid4().hex[:8]}")
                    os.rename(old, target)
                    fsync_dir(old.parent)
                else:
                    shutil.rmtree(old, ignore_errors=True)
            for trash in self.work.glob("*/.*.deleted-*"):
                shutil.rmtree(trash, ignore_errors=True)

    def switch(self, target: Path, staging: Path, old: Path) -> bool:
        """`staging` renamed to `target`, the previous `target` (if any) to `old`; whether there was one. Called last in
        a transaction, so the commit is the only step left that can fail (the caller then switches back)."""
        moved = target.exists()
        if moved:
            os.rename(target, old)
        try:
            os.rename(staging, target)
        except OSError:
            if moved:
                os.rename(old, target)
            raise
        return moved

    def delete_product(self, catalog_id: str, product_id: str, actor: str) -> None:
        trash = self.folder(catalog_id) / f".{product_id}.deleted-{uuid.uuid4().hex[:8]}"
        with self.writing() as change:
            self.catalog(change.db, catalog_id)
            if change.db.execute("DELETE FROM products WHERE catalog_id = ? AND product_id = ?", [catalog_id, product_id]).rowcount == 0:
                raise HTTPException(404, f"catalog {catalog_id!r} has no product {product_id!r}")
            change.audit(actor, "delete_product", catalog_id, product_id)
            if (self.folder(catalog_id) / product_id).exists():
                os.rename(self.folder(catalog_id) / product_id, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def snapshot(self, change: Change, catalog_id: str, into: Path, only: set[str] | None = None) -> int:
        """The catalog as its rows say, under the write lock, into `into` (images hard-linked, products.csv written),
        for a build that then runs without the lock; the number of products. 422 when an image file is missing.
        `only`: just these products (an incremental publish builds the changed shards' products)."""
        products = [p for p in self.products(change.db, catalog_id) if only is None or p["product_id"] in only]
        into.mkdir(parents=True)
        for product in products:
            (into / product["product_id"]).mkdir()
            for file in product["images"]:
                source = self.folder(catalog_id) / product["product_id"] / file
                try:
                    os.link(source, into / product["product_id"] / file)
                except FileNotFoundError:
                    raise HTTPException(422, f"catalog {catalog_id!r} cannot be built: image {catalog_id}/{product['product_id']}/"
                                             f"{file} is missing from the work area; upload the product again") from None
                except OSError:  # another file system, no hard links: a copy
                    shutil.copyfile(source, into / product["product_id"] / file)
        with open(into / "products.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["product_id", "sku", "name"])
            writer.writerows([p["product_id"], p["sku"], p["name"]] for p in products)
        return len(products)

    # the work area from before the database

    def import_work_area(self) -> None:
        for meta_file in sorted(self.work.glob("*/catalog.json")):
            folder = meta_file.parent
            if folder.name.startswith(".") or not CATALOG_ID.fullmatch(folder.name):
                continue
            with self.writing() as change:
                if not list(change.db["catalogs"].rows_where("catalog_id = ?", [folder.name])):
                    self.import_catalog(change, folder)
            for name in ("catalog.json", "products.csv"):  # in the database now (or already were: a crash before this)
                (folder / name).unlink(missing_ok=True)
            fsync_dir(folder)

    def import_catalog(self, change: Change, folder: Path) -> None:
        meta = json.loads((folder / "catalog.json").read_text())
        catalog_id, at = folder.name, meta.get("created_at") or now()
        change.db["catalogs"].insert({"catalog_id": catalog_id, "name": meta.get("name", ""), "created_at": at,
                                      "created_by": "import", "updated_at": now(), "updated_by": "import",
                                      "generation": uuid.uuid4().hex})
        rows: dict[str, dict] = {}
        if (folder / "products.csv").is_file():
            with open(folder / "products.csv", newline="", encoding="utf-8") as f:
                rows = {r["product_id"]: r for r in csv.DictReader(f) if PRODUCT_ID.fullmatch(r.get("product_id") or "")}
        for sub in folder.iterdir():  # a product folder without a row was built all the same: it comes too
            if sub.is_dir() and PRODUCT_ID.fullmatch(sub.name) and not sub.name.startswith("."):
                rows.setdefault(sub.name, {"product_id": sub.name, "sku": sub.name, "name": sub.name})
        images = 0
        for pid, row in sorted(rows.items()):
            change.db["products"].insert({"catalog_id": catalog_id, "product_id": pid, "sku": row.get("sku") or pid,
                                          "name": row.get("name") or pid, "updated_at": now(), "updated_by": "import"})
            files = sorted(p for p in (folder / pid).iterdir() if p.is_file()) if (folder / pid).is_dir() else []
            change.db["images"].insert_all({"catalog_id": catalog_id, "product_id": pid, "file": p.name, "position": i,
                                            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
                                           for i, p in enumerate(files))
            images += len(files)
        change.audit("import", "import_catalog", catalog_id, f"{len(rows)} product(s), {images} image(s) from the work area")


def holds(folder: Path, files: set[tuple[str, str]]) -> bool:
    """Whether `folder` holds exactly these (name, sha256) files."""
    if not folder.is_dir():
        return False
    return {(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in folder.iterdir() if p.is_file()} == files


class WriteLock:
    """The database's write lock held as a plain lock (re-signing holds it so it never falls between a publish's blobs
    and its manifest, in this process or another)."""

    def __init__(self, store: CatalogStore):
        self.store = store
        self.held: list = []

    def __enter__(self) -> None:
        context = self.store.writing()
        context.__enter__()
        self.held.append(context)

    def __exit__(self, *exc) -> bool:
        return bool(self.held.pop().__exit__(*exc))

