"""Bundles: deterministic shards, one product → one shard, schema and signature checks, assembly back to a catalog."""

from __future__ import annotations

import json

import pytest

from edge.core.assembly import Models
from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from sync_agent.bundle import assemble, make_bundle, parse_manifest, sha256_hex, shard_of
from sync_agent.errors import BundleError, SignatureError, SyncError
from sync_agent.signing import generate_keypair, load_private_key, load_public_key, verify
from tests.sync.conftest import copy_sample


@pytest.fixture(scope="module")
def two_catalogs(tmp_path_factory):
    """The sample with two products, and with a third one added."""
    tmp = tmp_path_factory.mktemp("bundle")
    models = Models.open(Config())
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    out = []
    for name, products in (("two", ["cha-mate-limao", "cha-mate-natural"]), ("three", ["cha-mate-limao", "cha-mate-natural", "coca-cola-can"])):
        images = copy_sample(tmp / f"images-{name}", products)
        build_catalog(images, tmp / name, embedder, verifier, detector, "shelf")
        out.append(load_catalog(tmp / name))
    return out


def test_adding_a_product_changes_only_its_shard(two_catalogs):
    two, three = (make_bundle(c, "shelf", 1, created_at="2026-01-01T00:00:00+00:00") for c in two_catalogs)
    assert make_bundle(two_catalogs[0], "shelf", 1, created_at="2026-01-01T00:00:00+00:00").blobs.keys() == two.blobs.keys()
    new = set(three.blobs) - set(two.blobs)
    [added] = [s for s in three.manifest["shards"] if s["name"] == f"{shard_of('coca-cola-can'):02x}"]
    assert new == {p["sha256"] for p in added["parts"].values()} and len(new) == 8
    assert set(two.blobs) <= set(three.blobs)


def test_a_bundle_assembles_into_the_same_catalog(two_catalogs, tmp_path):
    catalog = two_catalogs[1]
    bundle = make_bundle(catalog, "shelf", 4)
    out = tmp_path / "assembled"
    out.mkdir()
    assemble(parse_manifest(bundle.manifest_bytes), bundle.blobs.__getitem__, out)
    again = load_catalog(out, catalog.info["embedder"]["model_id"], catalog.info["verifier"]["id"])
    assert again.version == 4 and sorted(p.product_id for p in again.products) == sorted(p.product_id for p in catalog.products)
    for product in catalog.products:  # same keypoints per product image, whatever the order
        i = [p.product_id for p in catalog.products].index(product.product_id)
        j = [p.product_id for p in again.products].index(product.product_id)
        a, b = catalog.features(catalog.images_of(i)[0]), again.features(again.images_of(j)[0])
        assert (a.keypoints == b.keypoints).all() and (a.descriptors == b.descriptors).all()
        assert again.thumbnail(product.product_id) == catalog.thumbnail(product.product_id) is not None


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.pop("shards"), "'shards' is a required property"),
    (lambda m: m.update(version=0), "version"),
    (lambda m: m["blobs"].pop(), "not in its blob list"),
    (lambda m: m.update(catalog_id="../x"), "catalog_id"),
])
def test_a_manifest_that_breaks_the_schema_is_refused(two_catalogs, edit, message):
    manifest = make_bundle(two_catalogs[0], "shelf", 1).manifest
    edit(manifest)
    with pytest.raises(BundleError, match=message):
        parse_manifest(json.dumps(manifest).encode())
    with pytest.raises(BundleError, match="not JSON"):
        parse_manifest(b"\xff{")


def test_signatures_verify_only_the_signed_bytes_with_the_right_key(tmp_path):
    private, public = generate_keypair(tmp_path / "a")
    other, _ = generate_keypair(tmp_path / "b")
    data = b'{"version":1}'
    signature = load_private_key(private).sign(data)
    verify(load_public_key(public), data, signature)
    with pytest.raises(SignatureError):
        verify(load_public_key(public), data.replace(b"1", b"2"), signature)
    with pytest.raises(SignatureError):
        verify(load_public_key(public), data, load_private_key(other).sign(data))
    with pytest.raises(SyncError, match="already there"):
        generate_keypair(tmp_path / "a")
    assert oct(private.stat().st_mode & 0o777) == "0o600"


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    """A product with a second catalog image (another edition of its pack: its colours turned), and one without."""
    import cv2

    tmp = tmp_path_factory.mktemp("editions")
    images = copy_sample(tmp / "images", ["cha-mate-limao", "coca-cola-can"])
    first = cv2.imread(str(images / "cha-mate-limao" / "frame0000.jpg"))
    cv2.imwrite(str(images / "cha-mate-limao" / "frame0001-edition.jpg"), first[..., ::-1])
    models = Models.open(Config())
    build_catalog(images, tmp / "catalog", models.embedder, models.verifier, models.detector, "shelf")
    return load_catalog(tmp / "catalog")


def test_a_later_catalog_image_keeps_its_own_pixels_through_a_bundle(two_images, tmp_path):
    catalog = two_images
    limao = [p.product_id for p in catalog.products].index("cha-mate-limao")
    first, later = catalog.images_of(limao)
    assert catalog.image_thumbnail(first) == catalog.thumbnail("cha-mate-limao")  # the first: the product's thumbnail
    assert catalog.image_thumbnail(later) not in (None, catalog.thumbnail("cha-mate-limao"))
    assert sorted(p.name for p in (catalog.path / "image-thumbnails").iterdir()) == [f"{later}.jpg"]
    bundle = make_bundle(catalog, "shelf", 2)
    assert sum("image_thumbnails" in s["parts"] for s in bundle.manifest["shards"]) == 1  # the can's shard has none
    out = tmp_path / "assembled"
    out.mkdir()
    assemble(parse_manifest(bundle.manifest_bytes), bundle.blobs.__getitem__, out)
    again = load_catalog(out)
    j = [p.product_id for p in again.products].index("cha-mate-limao")
    assert [again.image_thumbnail(i) for i in again.images_of(j)] == [catalog.image_thumbnail(i) for i in (first, later)]


def test_a_shard_part_this_version_does_not_know_is_ignored(two_catalogs, tmp_path):
    """A later catalog server may add a part to its shards (as image_thumbnails was added): a device assembles the
    catalog from the parts it knows, so a fleet keeps syncing while its devices are updated. Only names of the parts'
    own shape, and not unboundedly many."""
    catalog = two_catalogs[0]
    bundle = make_bundle(catalog, "shelf", 3)
    manifest, blobs = json.loads(bundle.manifest_bytes), dict(bundle.blobs)
    future = b"a part from a later version"
    blobs[sha256_hex(future)] = future
    for shard in manifest["shards"]:
        shard["parts"]["future_part"] = {"sha256": sha256_hex(future), "size": len(future)}
    manifest["blobs"].append({"sha256": sha256_hex(future), "size": len(future)})
    out = tmp_path / "assembled"
    out.mkdir()
    assemble(parse_manifest(json.dumps(manifest).encode()), blobs.__getitem__, out)
    again = load_catalog(out)
    assert sorted(p.product_id for p in again.products) == sorted(p.product_id for p in catalog.products)
    for name in ("../x", "Future", "x" * 33):
        bad = json.loads(json.dumps(manifest))
        bad["shards"][0]["parts"][name] = bad["shards"][0]["parts"].pop("future_part")
        with pytest.raises(BundleError, match="does not match"):
            parse_manifest(json.dumps(bad).encode())
