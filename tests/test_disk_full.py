"""A full disk, on a real small filesystem: the outbox, the sync agent and the catalog build.

Each test mounts its own 16 MiB ext4 image (1 KiB blocks, a journal, no blocks reserved for root) and
puts the component's data there. ext4 rather than tmpfs: it is what a device's SD card holds, and
it runs out the way a card does — metadata and journal take their share, a new directory needs a
block, delayed allocation reserves space at write() — where tmpfs only counts pages. `-m 0`: we run
as root, and root would otherwise write on into the 5 % that ext4 keeps for it, as it can on a device.
The disk is filled with a filler file written until ENOSPC; truncating or deleting it gives space back.
16 MiB rather than less: SQLite's WAL grows to about 4 MB before its automatic checkpoint, and on a
4 MiB disk the acknowledgements after a full disk fill it again by themselves.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config, MQTTConfig
from edge.core.errors import CatalogError
from edge.reporting.outbox import Outbox
from tests.conftest import REPO

DISK_BYTES = 16 * 1024 * 1024


@pytest.fixture
def disk(tmp_path) -> Path:
    """A fresh 16 MiB ext4 filesystem mounted for this test; unmounted afterwards, also when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed (e2fsprogs)")
    image, mountpoint = tmp_path / "disk.img", tmp_path / "disk"
    with open(image, "wb") as f:
        f.truncate(DISK_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-b", "1024", str(image)], check=True, capture_output=True)
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a loop device is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True)  # a file still open: detach now, free when closed


def fill(folder: Path) -> Path:
    """Write a filler file into `folder` until its filesystem refuses; returns the filler."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (b"\0" * 65536, b"\0" * 1024, b"\0"):
            try:
                while True:
                    f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def free(filler: Path, nbytes: int | None = None) -> None:
    """Give `nbytes` of the filler back (all of it when None)."""
    if nbytes is None:
        filler.unlink()
    else:
        os.truncate(filler, max(filler.stat().st_size - nbytes, 0))


def integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


# --- the outbox ---------------------------------------------------------------------------------


def test_outbox_on_a_full_disk_drops_and_counts_events_then_stores_and_delivers_again(disk, caplog):
    box = Outbox(disk / "outbox.sqlite")
    stored = {box.add(f"before-{i}", "t", b"x" * 300): f"before-{i}" for i in range(20)}
    filler = fill(disk)
    refused = 0
    with caplog.at_level(logging.WARNING, logger="edge.reporting.outbox"):
        for i in range(300):  # the WAL reuses its own blocks for a while: some of these may still be stored
            seq = box.add(f"full-{i}", "t", b"y" * 300)
            if seq is None:
                refused += 1
            else:
                stored[seq] = f"full-{i}"
    assert refused > 0
    assert box.disk_full and box.dropped == refused
    full_lines = [r for r in caplog.records if "no space left" in r.getMessage()]
    assert len(full_lines) == 1 and str(disk / "outbox.sqlite") in full_lines[0].getMessage()
    assert box.size == len(stored)  # reads work on a full disk

    free(filler)
    seq = box.add("after", "t", b"z")
    assert seq is not None and not box.disk_full
    stored[seq] = "after"
    pending = box.pending(limit=100_000)
    assert {p.seq: p.event_id for p in pending} == stored  # every event add() returned a seq for is there
    for p in pending:  # delivered: the broker's acknowledgements delete them
        box.ack(p.seq)
    assert box.size == 0
    box.close()
    assert integrity(disk / "outbox.sqlite") == "ok"
    assert Outbox(disk / "outbox.sqlite").dropped == refused  # the drops are counted persistently once space is back


def test_outbox_acknowledgements_on_a_full_disk_keep_the_event_for_a_resend(disk):
    box = Outbox(disk / "outbox.sqlite")
    seqs = [box.add(f"id-{i}", "t", b"x" * 300) for i in range(200)]
    filler = fill(disk)
    for seq in seqs:  # the MQTT thread acknowledges; a delete may fail: the event stays and is sent again
        box.ack(seq)
    left = {p.seq for p in box.pending(limit=100_000)}
    assert left and left <= set(seqs)
    free(filler)
    for seq in left:
        box.ack(seq)
    assert box.size == 0
    box.close()
    assert integrity(disk / "outbox.sqlite") == "ok"


def test_the_daemons_event_sink_keeps_taking_events_on_a_full_disk(disk):
    """What the daemon's pipeline calls for every identification: it must not raise, the daemon keeps identifying."""
    from edge.reporting.events import make_event
    from edge.reporting.mqtt import MQTTReporter
    from edge.reporting.sinks import OutboxSink

    def event(seq: int) -> dict:
        return make_event(kind="unknown", seq=seq, device="dev", camera="cam", ts=0.0, first_seen=0.0, track_id=seq,
                          product=None, guess=None, similarity=0.0, inliers=0, inlier_ratio=0.0, confidence=0.0,
                          bbox_norm=(0.1, 0.1, 0.2, 0.2), catalog_id="shelf", catalog_version=1)

    box = Outbox(disk / "outbox.sqlite")
    sink = OutboxSink(box, MQTTReporter(MQTTConfig(), "dev", box))  # not started: no broker needed to store
    filler = fill(disk)
    for _ in range(100):
        sink.emit(event(sink.next_seq()))
    assert box.dropped > 0
    free(filler)
    last = event(sink.next_seq())
    sink.emit(last)
    assert box.pending(limit=100_000)[-1].event_id == last["event_id"]
    box.close()


# --- the sync agent -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    from sync_agent.signing import generate_keypair, load_private_key

    private, public = generate_keypair(tmp_path_factory.mktemp("keys"))
    return private, load_private_key(private), public


@pytest.fixture
def sync_bench(tmp_path, disk, signing, sample_catalog_dir):
    """A catalog server on loopback with v1 published, a device whose data_dir is on the small disk, v1 synced."""
    from sync_agent.agent import Agent
    from sync_agent.server.app import ServerSettings, create_app
    from sync_agent.server.publisher import publish
    from sync_agent.server.storage import LocalStorage
    from tests.sync.conftest import device_config
    from tools.http_harness import ServerThread

    private, key, public = signing
    storage = LocalStorage(tmp_path / "server" / "public")
    server = ServerThread(create_app(ServerSettings(root=tmp_path / "server", signing_key=private, token="t"))).start()
    catalog = load_catalog(sample_catalog_dir)
    publish(storage, catalog, "shelf", key, 1)
    config = device_config(disk, server.url, public)  # data_dir: <disk>/device
    agent = Agent(config)
    agent.sync_once()
    # v2 with new blobs (other descriptors: every shard's descriptor part must be downloaded), or with v1's blobs
    changed = dataclasses.replace(catalog, descriptors=catalog.descriptors[:, ::-1].copy())
    yield agent, config.device.data_dir, lambda new_blobs=True: publish(storage, changed if new_blobs else catalog, "shelf", key, 2)
    server.stop()


def assert_v1_current_and_nothing_half_installed(data_dir: Path) -> None:
    catalogs = data_dir / "catalogs"
    assert load_catalog(catalogs / "current").version == 1  # loads as the daemon loads it
    assert sorted(p.name for p in catalogs.iterdir()) == ["current", "v1"]  # no v2, no .staging-*, no .current-*.tmp
    assert not [p.name for p in (data_dir / "sync").iterdir() if p.name != "status.json"]  # no status temp file left


def test_sync_of_a_catalog_that_does_not_fit_keeps_the_old_one_says_why_and_completes_once_space_returns(sync_bench):
    from sync_agent.agent import read_status
    from sync_agent.errors import SyncError

    agent, data_dir, publish_v2 = sync_bench
    published = publish_v2()
    filler = fill(data_dir.parent)
    free(filler, 32 * 1024)  # room for the status file, far from room for v2's new blobs
    needed = sum(b["size"] for b in published.manifest["blobs"])
    assert needed > 3 * 32 * 1024
    with pytest.raises(SyncError, match="(?i)no space left") as failed:
        agent.sync_once()
    assert str(data_dir) in str(failed.value)
    assert_v1_current_and_nothing_half_installed(data_dir)
    status = read_status(data_dir)
    assert "no space left" in status["last_error"] and status["active_version"] == 1

    free(filler)
    assert agent.sync_once().outcome == "updated"
    assert load_catalog(data_dir / "catalogs" / "current").version == 2
    assert read_status(data_dir)["last_error"] is None


def test_sync_on_a_disk_with_no_byte_free_fails_cleanly_and_leaves_the_status_file_whole(sync_bench):
    from sync_agent.agent import read_status
    from sync_agent.errors import SyncError

    agent, data_dir, publish_v2 = sync_bench
    publish_v2()
    before = json.loads((data_dir / "sync" / "status.json").read_text())
    filler = fill(data_dir.parent)
    with pytest.raises(SyncError, match="(?i)no space left"):
        agent.sync_once()
    assert_v1_current_and_nothing_half_installed(data_dir)
    status = read_status(data_dir)  # whole JSON: the old content, or the new error when cleaning made room for it
    assert status["active_version"] == 1
    assert status == before or "no space left" in status["last_error"]

    free(filler)
    assert agent.sync_once().outcome == "updated"
    assert load_catalog(data_dir / "catalogs" / "current").version == 2


def test_sync_whose_download_fits_but_whose_assembly_does_not_removes_the_staging_folder(sync_bench):
    from sync_agent.agent import read_status
    from sync_agent.errors import SyncError

    agent, data_dir, publish_v2 = sync_bench
    publish_v2(new_blobs=False)  # every blob is already here: only the assembled folder needs room
    filler = fill(data_dir.parent)
    free(filler, 64 * 1024)  # the catalog folder is ~110 kB
    with pytest.raises(SyncError, match="(?i)no space left.*cannot assemble catalog v2"):
        agent.sync_once()
    assert_v1_current_and_nothing_half_installed(data_dir)
    assert "no space left" in read_status(data_dir)["last_error"]

    free(filler)
    assert agent.sync_once().outcome == "updated"
    assert load_catalog(data_dir / "catalogs" / "current").version == 2


# --- the catalog build --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models():
    from edge.core.assembly import Models

    return Models.open(Config())


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_catalog_build_on_a_full_disk_is_a_clear_error_and_the_previous_catalog_stays(disk, models):
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    images, out = REPO / "samples" / "shelf-catalog", disk / "catalog"
    build_catalog(images, out, embedder, verifier, detector, "shelf", version=1)
    filler = fill(disk)
    free(filler, 16 * 1024)  # room for a few files of the new catalog, not for its descriptors
    with pytest.raises(CatalogError, match="(?i)no space left") as failed:
        build_catalog(images, out, embedder, verifier, detector, "shelf", version=2, force=True)
    assert str(out) in str(failed.value)
    assert load_catalog(out).version == 1 and not leftovers(disk)

    free(filler)
    build_catalog(images, out, embedder, verifier, detector, "shelf", version=2, force=True)
    assert load_catalog(out).version == 2 and not leftovers(disk)
