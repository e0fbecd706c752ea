"""The catalog server's records in SQLite (through sqlite-utils): catalogs, products, images, published versions,
access tokens and the audit trail. The image files themselves stay in the work area (server.store).

    catalogs  (catalog_id PK, name, created_at, created_by, updated_at, updated_by, generation (schema v3))
    products  (catalog_id, product_id) PK, sku, name, updated_at, updated_by     cascade from catalogs
    images    (catalog_id, product_id, file) PK, position, sha256, bytes         cascade from products
    versions  (catalog_id, version) PK, published_at, published_by, products, images, blobs   cascade from catalogs
    tokens    token_id PK, name, sha256 UNIQUE, catalog_id, scope read|upload|write, created_at, created_by   (v2; upload: v4)
    audit     id PK, at, actor, action, catalog_id, detail                                          (schema v2)
    field_references  reference_id PK, catalog_id, product_id, sku, name, new_product, device_id, track_id, confirmed_at,
              confirmed_by, guess, state pending|disputed|accepted|rejected, reason, check_json, file, sha256, bytes,
              width, height, uploaded_at, uploaded_by, reviewed_at, reviewed_by, review_note, override   cascade from catalogs (v4)

The schema's version is `PRAGMA user_version`; `migrate` applies the missing steps of MIGRATIONS in order, in one
BEGIN IMMEDIATE transaction, so several workers starting on one database migrate it once. Every connection runs
in WAL mode (readers never wait for the writer) with synchronous=FULL and foreign keys on; each request opens its
own. Writes go through `transaction`: BEGIN IMMEDIATE takes the one write lock at once (across threads and
processes), so a read-modify-write never loses another's update; a writer waits up to BUSY_TIMEOUT_S for it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

BUSY_TIMEOUT_S = 30.0


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Connection(sqlite3.Connection):
    """sqlite-utils wraps each write in `with conn:`, which would COMMIT an open BEGIN IMMEDIATE half-way; here that
    block does nothing, and `transaction` alone begins, commits and rolls back (the connection is in autocommit mode)."""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> bool:
        return False


def connect(path: Path) -> Database:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False, factory=Connection)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return Database(conn)


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the block raises: all of it or nothing."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def schema_version(db: Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def v1_catalog_records(db: Database) -> None:
    """Catalogs, their products and images, published versions."""
    db["catalogs"].create({"catalog_id": str, "name": str, "created_at": str, "created_by": str,
                           "updated_at": str, "updated_by": str}, pk="catalog_id", not_null={"name", "created_at"})
    db.execute("""CREATE TABLE products (
        catalog_id TEXT NOT NULL REFERENCES catalogs(catalog_id) ON DELETE CASCADE,
        product_id TEXT NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL,
        PRIMARY KEY (catalog_id, product_id))""")
    db.execute("""CREATE TABLE images (
        catalog_id TEXT NOT NULL, product_id TEXT NOT NULL, file TEXT NOT NULL, position INTEGER NOT NULL,
        sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (catalog_id, product_id, file),
        FOREIGN KEY (catalog_id, product_id) REFERENCES products(catalog_id, product_id) ON DELETE CASCADE)""")
    db.execute("""CREATE TABLE versions (
        catalog_id TEXT NOT NULL REFERENCES catalogs(catalog_id) ON DELETE CASCADE, version INTEGER NOT NULL,
        published_at TEXT NOT NULL, published_by TEXT NOT NULL, products INTEGER NOT NULL, images INTEGER NOT NULL,
        blobs INTEGER NOT NULL, PRIMARY KEY (catalog_id, version))""")


def v2_access(db: Database) -> None:
    """Per-catalog tokens (stored as sha256) and the audit trail."""
    db.execute("""CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE,
        catalog_id TEXT NOT NULL REFERENCES catalogs(catalog_id) ON DELETE CASCADE,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'write')), created_at TEXT NOT NULL, created_by TEXT NOT NULL)""")
    db.execute("""CREATE TABLE audit (
        id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, catalog_id TEXT,
        detail TEXT NOT NULL DEFAULT '')""")
    db.execute("CREATE INDEX audit_catalog ON audit (catalog_id, id)")


def v3_generation(db: Database) -> None:
    """A random id per catalog row, new each time a catalog is created: a catalog deleted and created again under the
    same id (within the same second, even) is another generation, so a publish that snapshotted the old one can tell."""
    db.execute("ALTER TABLE catalogs ADD COLUMN generation TEXT NOT NULL DEFAULT ''")
    db.execute("UPDATE catalogs SET generation = lower(hex(randomblob(16)))")


def v4_field_references(db: Database) -> None:
    """Crops a device's installer confirmed, uploaded for review (server.references), and the `upload` token scope a
    device's token may carry (SQLite cannot change a CHECK: the tokens table is copied into a new one)."""
    db.execute("""CREATE TABLE tokens_v4 (
        token_id TEXT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE,
        catalog_id TEXT NOT NULL REFERENCES catalogs(catalog_id) ON DELETE CASCADE,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'upload', 'write')), created_at TEXT NOT NULL, created_by TEXT NOT NULL)""")
    db.execute("INSERT INTO tokens_v4 SELECT token_id, name, sha256, catalog_id, scope, created_at, created_by FROM tokens")
    db.execute("DROP TABLE tokens")
    db.execute("ALTER TABLE tokens_v4 RENAME TO tokens")
    db.execute("""CREATE TABLE field_references (
        reference_id TEXT PRIMARY KEY, catalog_id TEXT NOT NULL REFERENCES catalogs(catalog_id) ON DELETE CASCADE,
        product_id TEXT NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL, new_product INTEGER NOT NULL,
        device_id TEXT NOT NULL, track_id INTEGER NOT NULL, confirmed_at TEXT NOT NULL, confirmed_by TEXT NOT NULL,
        guess TEXT, state TEXT NOT NULL CHECK (state IN ('pending', 'disputed', 'accepted', 'rejected')),
        reason TEXT NOT NULL DEFAULT '', check_json TEXT NOT NULL DEFAULT '{}', file TEXT NOT NULL, sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, uploaded_at TEXT NOT NULL,
        uploaded_by TEXT NOT NULL, reviewed_at TEXT, reviewed_by TEXT, review_note TEXT NOT NULL DEFAULT '',
        override INTEGER NOT NULL DEFAULT 0)""")
    db.execute("CREATE INDEX field_references_queue ON field_references (catalog_id, state, uploaded_at)")


# step i takes the schema from i to i + 1
MIGRATIONS: list[Callable[[Database], None]] = [v1_catalog_records, v2_access, v3_generation, v4_field_references]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: Database, to: int = SCHEMA_VERSION) -> tuple[int, int]:
    """The schema brought to version `to`, each missing step in order, all in one transaction; (before, after)."""
    with transaction(db):
        before = schema_version(db)
        if before > SCHEMA_VERSION:
            raise RuntimeError(f"the catalog database is at schema version {before}; this server knows up to {SCHEMA_VERSION}")
        for step in MIGRATIONS[before:to]:
            step(db)
        db.execute(f"PRAGMA user_version = {max(before, to)}")  # PRAGMA takes no parameters; an int from here
    return before, max(before, to)
