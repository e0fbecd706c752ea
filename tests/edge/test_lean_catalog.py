"""Lean catalogs: a catalog image keeps verifier.catalog_keypoints keypoints, the strongest spread over the image,
and the bytes a catalog carries per image stay within 32 KB."""

from __future__ import annotations

import shutil

import numpy as np

from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import VerifierConfig
from edge.core.verifier import Features, open_verifier, strongest
from models.backends import open_backend
from models.embedder import Embedder
from tests.conftest import REPO

PER_IMAGE_BUDGET = 32 * 1024
CATALOG_FILES = ("embeddings.npy", "keypoints.npy", "descriptors.npy", "scores.npy", "offsets.npy", "image_table.npy", "images.json")


def test_strongest_keeps_the_strongest_of_every_part_of_the_image():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 400, (1000, 2)).astype(np.float32)
    scores = rng.uniform(0, 1, 1000).astype(np.float32)
    scores[points[:, 0] < 100] += 10  # the left quarter is far stronger: strength alone would keep only it
    features = Features(points, rng.integers(0, 255, (1000, 128)).astype(np.uint8), (400, 400), scores)
    kept = strongest(features, 160)
    assert len(kept.keypoints) == 160 and (np.diff(kept.scores) <= 0).all()  # strongest first
    cells = {(int(x // 100), int(y // 100)) for x, y in kept.keypoints}
    assert len(cells) == 16  # every cell of the 4 x 4 grid keeps some
    chosen = [int(np.flatnonzero((points == p).all(1))[0]) for p in kept.keypoints]
    assert np.array_equal(kept.descriptors, features.descriptors[chosen])  # rows travel together
    for cell in cells:  # within a cell, the strongest are the ones kept
        inside = [i for i in range(1000) if (int(points[i, 0] // 100), int(points[i, 1] // 100)) == cell]
        kept_here = sorted(i for i in chosen if i in inside)
        assert kept_here == sorted(sorted(inside, key=lambda i: -scores[i])[: len(kept_here)])
    assert strongest(features, 5000) is features


def test_a_built_catalog_carries_at_most_32_kb_per_image(tmp_path, small_embedder):
    shutil.copytree(REPO / "samples" / "shelf-catalog", tmp_path / "products")
    verifier = open_verifier(VerifierConfig(kind="sift"))
    build_catalog(tmp_path / "products", tmp_path / "catalog", Embedder(open_backend(small_embedder, "onnxruntime")), verifier)
    catalog = load_catalog(tmp_path / "catalog")
    counts = np.diff(catalog.offsets)
    assert counts.max() == verifier.config.catalog_keypoints == 224  # the sample's crops have more than that
    assert catalog.keypoints.dtype == catalog.scores.dtype == np.float16 and catalog.descriptors.dtype == np.uint8
    per_image = sum((tmp_path / "catalog" / name).stat().st_size for name in CATALOG_FILES) / catalog.image_count
    assert per_image <= PER_IMAGE_BUDGET
