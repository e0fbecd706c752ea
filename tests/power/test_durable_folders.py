"""What a power cut found (tools/fault_power.py): folders made on first use were not durable, so a cut could take
a whole outbox, a device's catalogs or a server's records with them, however carefully each file in them was
fsynced. Each test fails without models.safe_write.make_dirs at the place named."""

from __future__ import annotations

import pytest

from edge.reporting.outbox import Outbox
from sync_agent.server.storage import LocalStorage
from tests.power.conftest import needs_fuse

pytestmark = needs_fuse


def test_an_outbox_in_a_folder_it_made_keeps_its_events_through_a_cut(power):
    path = power.mountpoint / "device" / "outbox" / "events.sqlite"
    outbox = Outbox(path)
    seq = outbox.add("e1", "shelfid/dev/events", b"{}")
    assert seq is not None  # what the camera loop is told: stored
    power.cut()
    power.start()
    assert [e.event_id for e in Outbox(path).pending()] == ["e1"]


def test_a_key_put_into_a_new_folder_of_the_bundle_tree_survives_a_cut(power):
    LocalStorage(power.mountpoint / "server" / "public").put("catalogs/shelf/manifest.json", b"{}")
    power.cut()
    power.start()
    assert LocalStorage(power.mountpoint / "server" / "public").get("catalogs/shelf/manifest.json") == b"{}"


def test_the_catalog_server_keeps_a_created_catalog_through_a_cut(power):
    from sync_agent.server.store import CatalogStore

    root = power.mountpoint / "server"
    CatalogStore(root / "work", root / "catalog.db").create("shelf", "Shelf", "admin")
    power.cut()
    power.start()
    with CatalogStore(root / "work", root / "catalog.db").connected() as db:
        assert [c["catalog_id"] for c in db["catalogs"].rows] == ["shelf"]


@pytest.fixture
def tree(tmp_path, sample_catalog_dir):
    """Catalog v1 published to a bundle tree on the real disk, and its public key."""
    from edge.core.catalog import load_catalog
    from sync_agent.server.publisher import publish
    from sync_agent.signing import generate_keypair, load_private_key

    private, public = generate_keypair(tmp_path / "keys")
    catalog = load_catalog(sample_catalog_dir)
    publish(LocalStorage(tmp_path / "tree"), catalog, "shelf", load_private_key(private), 1)
    return tmp_path / "tree", public, (catalog.info["embedder"]["model_id"], catalog.info["verifier"]["id"])


def test_a_device_keeps_its_first_synced_catalog_through_a_cut(power, tree):
    from edge.core.catalog import load_catalog
    from edge.core.config import Config
    from sync_agent.agent import Agent

    folder, public, model_ids = tree
    config = Config.model_validate({"device": {"id": "dev", "data_dir": str(power.mountpoint / "device")}, "mqtt": {"enabled": False},
                                    "sync": {"server_url": folder.as_uri(), "catalog_id": "shelf", "public_key_file": str(public)}})
    assert Agent(config, model_ids=model_ids).sync_once().outcome == "updated"
    power.cut()
    power.start()
    assert load_catalog(power.mountpoint / "device" / "catalogs" / "current", *model_ids).version == 1
