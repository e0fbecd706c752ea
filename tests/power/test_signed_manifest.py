"""A manifest and its signature are two files: a power cut (or a kill) between the two writes leaves the new
manifest beside the old signature, and every device refuses it. The server's start (its re-sign pass) must repair
that, not wait for the manifest's expiry."""

from __future__ import annotations

import pytest

from sync_agent.bundle import decode_signature, manifest_key
from sync_agent.server.publisher import publish, resign_due
from sync_agent.server.storage import LocalStorage
from sync_agent.signing import generate_keypair, load_private_key, load_public_key, verify
from tests.power.conftest import needs_fuse

pytestmark = needs_fuse


class PowerCut(Exception):
    pass


def test_a_cut_between_manifest_and_signature_is_repaired_at_the_servers_start(power, tmp_path, monkeypatch, sample_catalog_dir):
    from edge.core.catalog import load_catalog

    private, public = generate_keypair(tmp_path / "keys")
    key, catalog = load_private_key(private), load_catalog(sample_catalog_dir)
    storage = LocalStorage(power.mountpoint / "public")
    publish(storage, catalog, "shelf", key, 1)
    put = LocalStorage.put

    def cut_after_manifest(self, name, data):
        put(self, name, data)
        if name == manifest_key("shelf"):
            power.cut()
            raise PowerCut(name)

    monkeypatch.setattr(LocalStorage, "put", cut_after_manifest)
    with pytest.raises(PowerCut):
        publish(storage, catalog, "shelf", key, 2)
    monkeypatch.undo()
    power.start()
    storage = LocalStorage(power.mountpoint / "public")
    resign_due(storage, key)  # what the server's re-sign thread does first at start
    manifest = storage.get(manifest_key("shelf"))
    verify(load_public_key(public), manifest, decode_signature(storage.get(manifest_key("shelf") + ".sig")))
