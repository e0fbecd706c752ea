"""The catalog server's store across a power cut in the middle of a change: its records and its work area agree
afterwards (every image row names a file with those bytes), and a created catalog takes uploads.

The cut is placed exactly: `fsync_dir` in sync_agent.server.store is replaced by one that cuts the power (before or after
making the folder durable), so the moment between a rename and its fsync, or between the fsync and the commit,
is hit every time."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3

import pytest
from fastapi import HTTPException

import sync_agent.server.store as server_store
from models.safe_write import fsync_dir
from tests.conftest import REPO
from tests.power.conftest import needs_fuse

pytestmark = needs_fuse
IMAGES = sorted((REPO / "samples" / "shelf-catalog").glob("*/*.jpg"))


class PowerCut(Exception):
    pass


def cut_at_fsync(monkeypatch, power, after_fsync: bool, calls: int = 1) -> None:
    """The `calls`-th fsync_dir of the store cuts the power (after doing its fsync, with `after_fsync`)."""
    seen = []

    def fsync_then_maybe_cut(folder):
        seen.append(folder)
        if len(seen) < calls:
            return fsync_dir(folder)
        if after_fsync:
            fsync_dir(folder)
        power.cut()
        raise PowerCut(folder)

    monkeypatch.setattr(server_store, "fsync_dir", fsync_then_maybe_cut)


def store_of(power) -> server_store.CatalogStore:
    root = power.mountpoint / "server"
    return server_store.CatalogStore(root / "work", root / "catalog.db")


def upload(store: server_store.CatalogStore, images: list) -> None:
    with store.staging("shelf", "p1") as staging:
        for i, image in enumerate(images):
            shutil.copy(image, staging / f"{i:02d}.jpg")
        store.replace_product("shelf", "p1", staging, "sku1", "P1", "admin")


def disagreements(store: server_store.CatalogStore) -> list[str]:
    with store.connected() as db:
        rows = list(db["images"].rows)
    out = []
    for row in rows:
        path = store.work / row["catalog_id"] / row["product_id"] / row["file"]
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != row["sha256"]:
            out.append(f"{row['product_id']}/{row['file']}")
    return out


def test_a_catalog_created_just_before_a_cut_takes_uploads_after_it(power, monkeypatch):
    store = store_of(power)
    cut_at_fsync(monkeypatch, power, after_fsync=False)
    with pytest.raises((PowerCut, OSError, sqlite3.Error)):  # the cut, or what the dead mount answers after it
        store.create("shelf", "Shelf", "admin")
    monkeypatch.undo()
    power.start()
    store = store_of(power)
    try:
        store.create("shelf", "Shelf", "admin")
    except Exception as exc:  # recorded before the cut: then it must work as recorded
        assert getattr(exc, "status_code", None) == 409
    upload(store, IMAGES[:1])  # 404 "was deleted meanwhile" when the row outlived its folder
    assert disagreements(store) == []


@pytest.mark.parametrize("after_fsync", [False, True], ids=["rename-not-durable", "rename-durable"])
def test_a_product_replaced_across_a_cut_keeps_records_and_files_in_agreement(power, monkeypatch, after_fsync):
    store = store_of(power)
    store.create("shelf", "Shelf", "admin")
    upload(store, IMAGES[:2])
    cut_at_fsync(monkeypatch, power, after_fsync)
    with pytest.raises((PowerCut, OSError, sqlite3.Error, HTTPException)):  # the cut, or what the dead mount leads to
        upload(store, IMAGES[2:3])  # fewer images, other bytes
    monkeypatch.undo()
    power.start()
    store = store_of(power)
    assert disagreements(store) == []
    assert not [p for p in (store.work / "shelf").iterdir() if ".old-" in p.name]  # the leftover is resolved at start
