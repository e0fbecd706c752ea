"""Building and opening local catalogs: real images, bad input reported, nothing half-written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import VerifierConfig
from edge.core.errors import CatalogError
from edge.core.verifier import open_verifier
from models.backends import open_backend
from models.embedder import Embedder
from tests.conftest import REPO

SOURCE = REPO / "samples" / "shelf-catalog"


@pytest.fixture(scope="module")
def parts(small_embedder):
    return Embedder(open_backend(small_embedder, "onnxruntime")), open_verifier(VerifierConfig(kind="sift"))


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "products"
    shutil.copytree(SOURCE, folder)
    return folder


def leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_build_and_open_a_catalog(source, tmp_path, parts):
    embedder, verifier = parts
    report = build_catalog(source, tmp_path / "catalog", embedder, verifier, catalog_id="shelf", version=3)
    assert (report.products, report.images, report.skipped) == (3, 3, [])
    catalog = load_catalog(tmp_path / "catalog", embedder.model_id, verifier.id)
    assert catalog.catalog_id == "shelf" and catalog.version == 3
    assert [p.product_id for p in catalog.products] == ["cha-mate-limao", "cha-mate-natural", "coca-cola-can"]
    assert catalog.products[0].name == "Chá Mate Limão Orgânico 1.25 L"
    assert catalog.products[0].attributes == {"brand": "Campo Largo", "size": "1.25 L"}
    assert catalog.embeddings.dtype == np.float16 and catalog.embeddings.shape == (3, 512)
    assert isinstance(catalog.embeddings, np.memmap)
    assert len(catalog.features(0).keypoints) > 50
    assert leftovers(tmp_path) == []


def test_bad_images_and_folders_are_reported_and_skipped(source, tmp_path, parts):
    (source / "cha-mate-limao" / "empty.jpg").write_bytes(b"")
    good = (source / "coca-cola-can" / "frame0300.jpg").read_bytes()
    (source / "coca-cola-can" / "cut.jpg").write_bytes(good[:2000])
    (source / "coca-cola-can" / "readme.txt").write_text("hello")
    (source / "bad name!").mkdir()
    (source / "bad name!" / "x.jpg").write_bytes(good)
    report = build_catalog(source, tmp_path / "catalog", *parts)
    assert report.images == 3
    text = "\n".join(report.skipped)
    assert "empty.jpg: empty file" in text and "cut.jpg: not a readable image" in text
    assert "readme.txt: not an image file" in text and "bad name!: folder name is not a valid product id" in text


def test_folder_without_images_leaves_nothing_behind(tmp_path, parts):
    empty = tmp_path / "products"
    (empty / "some-product").mkdir(parents=True)
    with pytest.raises(CatalogError, match="no readable product images"):
        build_catalog(empty, tmp_path / "catalog", *parts)
    assert not (tmp_path / "catalog").exists() and leftovers(tmp_path) == []


def test_missing_source_folder(tmp_path, parts):
    with pytest.raises(CatalogError, match="no such folder of product images"):
        build_catalog(tmp_path / "nope", tmp_path / "catalog", *parts)


def test_duplicate_product_in_csv(source, tmp_path, parts):
    with open(source / "products.csv", "a") as f:
        f.write("coca-cola-can,1,again,x,y\n")
    with pytest.raises(CatalogError, match=r"products.csv:5: duplicate product_id 'coca-cola-can'"):
        build_catalog(source, tmp_path / "catalog", *parts)


def test_existing_catalog_is_replaced_only_with_force(source, tmp_path, parts):
    out = tmp_path / "catalog"
    build_catalog(source, out, *parts, version=1)
    with pytest.raises(CatalogError, match="already exists"):
        build_catalog(source, out, *parts, version=2)
    assert load_catalog(out).version == 1
    build_catalog(source, out, *parts, version=2, force=True)
    assert load_catalog(out).version == 2 and leftovers(tmp_path) == []


def test_catalog_from_another_embedder_is_refused(source, tmp_path, parts):
    build_catalog(source, tmp_path / "catalog", *parts)
    with pytest.raises(CatalogError, match="built with embedder .* this device runs .*rebuild the catalog"):
        load_catalog(tmp_path / "catalog", embedder_id="0" * 64)
    with pytest.raises(CatalogError, match="built with verifier sift-n1024-s512-up, this device runs sift-n512-s512"):
        load_catalog(tmp_path / "catalog", verifier_id="sift-n512-s512")


def test_incomplete_or_inconsistent_catalogs_are_refused(source, tmp_path, parts):
    out = tmp_path / "catalog"
    build_catalog(source, out, *parts)
    (out / "offsets.npy").unlink()
    with pytest.raises(CatalogError, match="not a complete catalog, missing offsets.npy"):
        load_catalog(out)
    build_catalog(source, out, *parts, force=True)
    table = np.load(out / "image_table.npy")
    np.save(out / "image_table.npy", table[:2])
    with pytest.raises(CatalogError, match="embeddings has 3 rows for 2 images"):
        load_catalog(out)
    np.save(out / "image_table.npy", table + np.array([7, 0, 0, 0], np.int32))
    with pytest.raises(CatalogError, match="image_table names products outside 0..2"):
        load_catalog(out)
    np.save(out / "image_table.npy", table.astype(np.float32))
    with pytest.raises(CatalogError, match="image_table.npy is float32"):
        load_catalog(out)
    (out / "image_table.npy").unlink()  # a catalog written before the table: computed from images.json
    assert load_catalog(out).image_product.tolist() == table[:, 0].tolist()
    images = json.loads((out / "images.json").read_text())
    (out / "images.json").write_text(json.dumps(images[:1] + [images[1] | {"product_id": "nobody"}] + images[2:]))
    with pytest.raises(CatalogError, match="images.json names product 'nobody' that products.json lacks"):
        load_catalog(out)
    with pytest.raises(CatalogError, match="no catalog folder here"):
        load_catalog(tmp_path / "nowhere")


def test_retrieval_variants_are_embedded_but_never_verified(source, tmp_path, parts):
    embedder, verifier = parts
    report = build_catalog(source, tmp_path / "catalog", embedder, verifier, variants=4)
    catalog = load_catalog(tmp_path / "catalog")
    assert report.images == 3 and catalog.info["variants"] == 12 and len(catalog.images) == 15
    assert catalog.embeddings.shape == (15, 512)
    for product in range(3):
        [original] = catalog.images_of(product)
        assert not catalog.images[original].get("variant") and len(catalog.features(original).keypoints) > 0
    variant = next(i for i, row in enumerate(catalog.images) if row.get("variant"))
    assert len(catalog.features(variant).keypoints) == 0
    assert catalog.original_of(variant) == catalog.images_of(int(catalog.image_product[variant]))[0]


def test_sift_descriptors_are_stored_as_uint8_without_loss_and_learned_ones_as_float16():
    from edge.core.catalog import compact_descriptors

    sift_like = np.random.default_rng(0).integers(0, 256, (50, 128)).astype(np.float32)
    stored = compact_descriptors(sift_like)
    assert stored.dtype == np.uint8 and np.array_equal(stored.astype(np.float32), sift_like)
    learned = np.random.default_rng(0).standard_normal((50, 128)).astype(np.float32)
    assert compact_descriptors(learned).dtype == np.float16
