"""The catalog server's records in real SQLite: the schema migrated from v1, WAL, several writers (threads over real
HTTP, processes against the store) losing nothing, a failed request changing nothing, a busy database answered 503,
and a work area from before the database imported once."""

from __future__ import annotations

import csv
import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from edge.core.config import Config
from sync_agent.server import db as server_db
from sync_agent.server.app import ServerSettings, create_app
from sync_agent.server.db import SCHEMA_VERSION, connect, migrate, schema_version
from sync_agent.server.storage import LocalStorage
from sync_agent.server.store import CatalogStore
from tests.sync.conftest import TOKEN
from tests.sync.test_server import AUTH, jpeg, put
from tools.http_harness import ServerThread


def settings_for(root: Path, keys, **kw) -> ServerSettings:
    return ServerSettings(root=root, signing_key=keys[0], token=TOKEN, config=Config(), **kw)


@pytest.fixture
def api(tmp_path, keys):
    thread = ServerThread(create_app(settings_for(tmp_path / "server", keys))).start()
    requests.post(f"{thread.url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).raise_for_status()
    yield thread.url, tmp_path / "server"
    thread.stop()


def rows(root: Path, sql: str, *args) -> list[tuple]:
    db = connect(root / "catalog.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.conn.close()


def test_a_v1_database_is_migrated_to_the_current_schema_keeping_its_rows(tmp_path):
    db = connect(tmp_path / "catalog.db")
    assert migrate(db, to=1) == (0, 1)
    db["catalogs"].insert({"catalog_id": "shelf", "name": "Drinks", "created_at": "2026-01-01T00:00:00+00:00",
                           "created_by": "admin", "updated_at": "x", "updated_by": "admin"})
    db.execute("INSERT INTO products VALUES ('shelf', 'p1', 'sku1', 'P one', 'x', 'admin')")
    assert "tokens" not in db.table_names()
    db.conn.close()

    store = CatalogStore(tmp_path / "work", tmp_path / "catalog.db")  # what a server does at start
    with store.connected() as db:
        assert schema_version(db) == SCHEMA_VERSION == 4
        assert {"tokens", "audit", "field_references"} <= set(db.table_names())
        assert store.products(db, "shelf") == [{"product_id": "p1", "sku": "sku1", "name": "P one", "images": []}]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert len(db.execute("SELECT generation FROM catalogs").fetchone()[0]) == 32  # the v3 step gave the old row one
        assert migrate(db) == (4, 4)  # nothing left to do


def test_the_v4_step_keeps_every_token_and_lets_a_token_carry_the_upload_scope(tmp_path):
    db = connect(tmp_path / "catalog.db")
    assert migrate(db, to=3) == (0, 3)
    db["catalogs"].insert({"catalog_id": "shelf", "name": "", "created_at": "x", "created_by": "admin", "updated_at": "x",
                           "updated_by": "admin", "generation": "g"})
    token = {"token_id": "t1", "name": "shop", "sha256": "ab" * 32, "catalog_id": "shelf", "scope": "write", "created_at": "x",
             "created_by": "admin"}
    db["tokens"].insert(token)
    assert migrate(db) == (3, 4)
    assert list(db["tokens"].rows) == [token]
    db["tokens"].insert(token | {"token_id": "t2", "sha256": "cd" * 32, "scope": "upload"})
    with pytest.raises(Exception, match="CHECK"):
        db["tokens"].insert(token | {"token_id": "t3", "sha256": "ef" * 32, "scope": "admin"})
    db["catalogs"].delete("shelf")  # the copied table still cascades from its catalog
    assert list(db["tokens"].rows) == []


def test_a_database_newer_than_the_server_is_refused(tmp_path):
    db = connect(tmp_path / "catalog.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match=f"schema version {SCHEMA_VERSION + 1}"):
        migrate(db)


def add_products(database: str, work: str, worker: int, count: int) -> None:
    store = CatalogStore(Path(work), Path(database))  # its own process, its own migration check and connections
    for i in range(count):
        with store.staging("shelf", f"w{worker}-p{i}") as staging:
            (staging / "00.jpg").write_bytes(f"{worker}/{i}".encode())
            store.replace_product("shelf", f"w{worker}-p{i}", staging, "", f"P {i}", f"worker-{worker}")


def test_several_processes_writing_at_once_lose_no_update(tmp_path):
    store = CatalogStore(tmp_path / "work", tmp_path / "catalog.db")
    store.create("shelf", "", "admin")
    context = multiprocessing.get_context("spawn")  # no threads of this process copied into the children
    workers = [context.Process(target=add_products, args=(str(tmp_path / "catalog.db"), str(tmp_path / "work"), w, 15))
               for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with store.connected() as db:
        products = store.products(db, "shelf")
        assert len(products) == 60 and all(p["images"] == ["00.jpg"] for p in products)
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'add_product'").fetchone()[0] == 60
    assert sorted(p.name for p in (tmp_path / "work" / "shelf").iterdir()) == sorted(p["product_id"] for p in products)


def test_many_requests_at_once_over_http_are_all_answered_and_all_kept(api):
    url, root = api

    def upload(i: int) -> int:
        return put(url, [("a.jpg", jpeg())], product=f"p{i}").status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(upload, range(40)))
    assert statuses == [201] * 40
    products = requests.get(f"{url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).json()["products"]
    assert sorted(p["product_id"] for p in products) == sorted(f"p{i}" for i in range(40))


def test_an_upload_whose_image_check_fails_leaves_neither_a_row_nor_a_file(api):
    url, root = api
    assert put(url, [("good.jpg", jpeg())], product="p1").status_code == 201
    assert put(url, [("a.jpg", jpeg()), ("notes.txt", b"just text")], product="p2").status_code == 415
    assert rows(root, "SELECT product_id FROM products") == [("p1",)]
    assert rows(root, "SELECT product_id, file FROM images") == [("p1", "00.jpg")]
    assert [a for (a,) in rows(root, "SELECT action FROM audit ORDER BY id")] == ["create_catalog", "add_product"]
    assert sorted(p.name for p in (root / "work" / "shelf").iterdir()) == ["p1"]


class StorageDown(LocalStorage):
    def put(self, key: str, data: bytes) -> None:
        if key.endswith("manifest.json"):
            raise OSError(28, "No space left on device")
        super().put(key, data)


def test_a_publish_that_fails_in_storage_leaves_no_version_row(tmp_path, keys):
    root = tmp_path / "server"
    server = ServerThread(create_app(settings_for(root, keys, storage=StorageDown(root / "public")))).start()
    try:
        requests.post(f"{server.url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).raise_for_status()
        assert put(server.url, [("a.jpg", jpeg())]).status_code == 201
        r = requests.post(f"{server.url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120)
        assert r.status_code == 503 and "nothing was recorded" in r.json()["error"] and str(root) not in r.text, r.text
    finally:
        server.stop()
    assert rows(root, "SELECT * FROM versions") == []
    assert "publish" not in [a for (a,) in rows(root, "SELECT action FROM audit")]
    assert not list((root / "work").glob(".publish-*"))


def test_a_database_locked_past_the_busy_timeout_is_a_503_and_changes_nothing(api, monkeypatch):
    url, root = api
    monkeypatch.setattr(server_db, "BUSY_TIMEOUT_S", 0.2)
    holder = connect(root / "catalog.db")
    holder.execute("BEGIN IMMEDIATE")  # another worker in a long write
    try:
        r = put(url, [("a.jpg", jpeg())])
        assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "busy" in r.json()["error"], r.text
    finally:
        holder.execute("ROLLBACK")
        holder.conn.close()
    assert rows(root, "SELECT * FROM products") == []
    assert not list((root / "work" / "shelf").iterdir())
    assert put(url, [("a.jpg", jpeg())]).status_code == 201  # free again


def old_work_area(work: Path) -> None:
    """A work area as servers before the database kept it."""
    shelf = work / "shelf"
    (shelf / "p1").mkdir(parents=True)
    (shelf / "p1" / "00.jpg").write_bytes(jpeg())
    (shelf / "p1" / "01.png").write_bytes(jpeg(kind="PNG"))
    (shelf / "catalog.json").write_text(json.dumps({"catalog_id": "shelf", "name": "Drinks", "created_at": "2026-01-02T03:04:05+00:00"}))
    with open(shelf / "products.csv", "w", newline="") as f:
        csv.writer(f).writerows([["product_id", "sku", "name"], ["p1", "sku-1", "Cola, 33 cl"]])


def test_a_work_area_from_before_the_database_is_imported_once(tmp_path, keys):
    root = tmp_path / "server"
    old_work_area(root / "work")
    for _ in range(2):  # an upgrade, then a restart
        server = ServerThread(create_app(settings_for(root, keys))).start()
        try:
            got = requests.get(f"{server.url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).json()
        finally:
            server.stop()
        assert got["name"] == "Drinks" and got["created_at"] == "2026-01-02T03:04:05+00:00"
        assert got["products"] == [{"product_id": "p1", "sku": "sku-1", "name": "Cola, 33 cl", "images": ["00.jpg", "01.png"]}]
    assert rows(root, "SELECT actor, action, catalog_id FROM audit") == [("import", "import_catalog", "shelf")]
    assert sorted(p.name for p in (root / "work" / "shelf").iterdir()) == ["p1"]  # its records now live in the database
