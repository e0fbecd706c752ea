"""Catalog hot-swap: the running daemon follows `<data_dir>/catalogs/current` and keeps the old catalog when the new one is broken."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from edge.core.assembly import Models, load_identifier
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from edge.core.datadir import DataDir
from edge.daemon.catalog_watch import CatalogWatcher, catalog_key
from edge.daemon.run import run
from tests.conftest import REPO

SAMPLE = REPO / "samples" / "shelf-catalog"


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    """v1 and v2 of the sample catalog, and a v3 whose embeddings were truncated in transit."""
    root = tmp_path_factory.mktemp("versions")
    models = Models.open(Config())
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    out = {}
    for version in (1, 2, 3):
        out[f"v{version}"] = root / f"v{version}"
        build_catalog(SAMPLE, out[f"v{version}"], embedder, verifier, detector, "shelf", version=version)
    embeddings = out["v3"] / "embeddings.npy"
    embeddings.write_bytes(embeddings.read_bytes()[:100])
    return out


def point_current(data_dir: Path, target: Path) -> Path:
    """What the sync agent does (DataDir.switch_current); the `current` link it moved."""
    layout = DataDir(data_dir)
    layout.switch_current(target)
    return layout.current


def test_the_watcher_loads_a_new_version_and_skips_a_broken_one(tmp_path, versions, caplog):
    current = point_current(tmp_path, versions["v1"])
    config = Config()
    identifier = load_identifier(config, current)
    watcher = CatalogWatcher(current, identifier, config, check_s=1e-6)
    assert watcher.poll() is None  # nothing changed

    point_current(tmp_path, versions["v2"])
    assert watcher.poll() is None  # loading in the background
    watcher.wait_loading(60)
    switched = watcher.poll()
    assert switched is not None and switched.catalog.version == 2 and switched.embedder is identifier.embedder
    assert watcher.key == catalog_key(current)

    point_current(tmp_path, versions["v3"])
    with caplog.at_level(logging.WARNING, logger="edge.daemon.catalog_watch"):
        watcher.poll()
        watcher.wait_loading(60)
        assert watcher.poll() is None and watcher.poll() is None
    assert watcher.active.catalog.version == 2 and watcher.failures == 1  # tried once, not once per frame
    assert "catalog switch failed, keeping shelf v2" in caplog.text and "embeddings.npy" in caplog.text


def test_a_catalog_rebuilt_in_place_is_picked_up(tmp_path, versions):
    folder = tmp_path / "catalog"
    models = Models.open(Config())
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    build_catalog(SAMPLE, folder, embedder, verifier, detector, "shelf", version=1)
    identifier = load_identifier(Config(), folder)
    watcher = CatalogWatcher(folder, identifier, Config(), check_s=1e-6)
    build_catalog(SAMPLE, folder, embedder, verifier, detector, "shelf", version=7, force=True)
    watcher.poll()
    watcher.wait_loading(60)
    assert watcher.poll().catalog.version == 7


def test_the_running_daemon_switches_catalogs_between_frames(tmp_path, versions):
    """The daemon on the sample video (at its own rate): v1 when it starts, v2 once `current` moves, v3 (broken) refused."""
    current = point_current(tmp_path / "data", versions["v1"])
    config = Config.model_validate({
        "device": {"id": "swap", "data_dir": str(tmp_path / "data"), "catalog_check_s": 0.05},
        "camera": {"source": str(REPO / "samples" / "shelf.mp4"), "realtime": True},
        "mqtt": {"enabled": False},
    })
    events: list[dict] = []
    first, seen_v2 = threading.Event(), threading.Event()

    def on_event(event: dict) -> None:
        events.append(event)
        if not first.is_set():  # switch at once, between this frame and the next: the video is only 8 s long, and a
            point_current(tmp_path / "data", versions["v2"])  # busy machine (make test's workers) leaves little of it
            first.set()
        if event["catalog"]["version"] == 2:
            seen_v2.set()

    result: dict = {}
    daemon = threading.Thread(target=lambda: result.update(run(config, on_event=on_event)))
    daemon.start()
    assert first.wait(60), "no event from v1"
    assert seen_v2.wait(60), "no event from v2 after the switch"
    point_current(tmp_path / "data", versions["v3"])
    daemon.join(120)
    assert not daemon.is_alive()
    assert result["catalog_switches"] == 1 and result["catalog_version"] == 2  # v3 was refused, v2 stayed
    versions_seen = [e["catalog"]["version"] for e in events]
    assert versions_seen[0] == 1 and versions_seen == sorted(versions_seen)  # no v1 result reported after the switch
    assert current.resolve() == versions["v3"].resolve()


def test_an_identifier_a_switch_replaced_closes_its_catalog_files_without_waiting_for_the_garbage_collector(sample_catalog_dir):
    """The soak found open files growing by 5 at every catalog switch: a reference cycle kept old catalogs mapped."""
    import gc
    import os

    from edge.core.assembly import identifier_for
    from edge.core.catalog import load_catalog

    config = Config()
    active = load_identifier(config, sample_catalog_dir)
    open_files = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    gc.disable()
    try:
        before = open_files()
        for _ in range(3):
            catalog = load_catalog(sample_catalog_dir, active.embedder.model_id, active.verifier.id)
            replaced = identifier_for(config, catalog, active.models)
            replaced.prepared(0)  # the decoded-thumbnail cache was the cycle
            del catalog, replaced
        assert open_files() == before
    finally:
        gc.enable()
