"""The stored search index (LSH and IVF-PQ): recall against exact search, a model reused across versions, a catalog
folder that carries it, and refusals of broken or tampered index files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.bench.catalog_load import EMBEDDER_ID, VERIFIER_ID, write_synthetic_catalog
from edge.bench.index import clustered_vectors
from edge.core import stored_index
from edge.core.assembly import Models, identifier_for
from edge.core.catalog import load_catalog
from edge.core.config import Config, IndexConfig
from edge.core.errors import CatalogError
from edge.core.index import CatalogIndex, exact_search

NO_MODELS = Models(None, None, None)  # the index is all these tests look at


@pytest.fixture(scope="module")
def vectors():
    return clustered_vectors(30_000, families=True)  # 6,000 products x 5 views, in look-alike families


@pytest.mark.parametrize("kind,code_size", [("lsh", 32), ("ivfpq", 33)])
def test_a_stored_index_recalls_what_exact_search_finds(vectors, kind, code_size):
    data, make_queries = vectors
    model, info, codes = stored_index.build_codes(data, kind)
    assert info["kind"] == kind and codes.shape == (len(data), code_size) == (len(data), info["code_size"])
    queries = make_queries(200)
    _, truth = exact_search(data, queries, 10)
    index = CatalogIndex(data, "stored", rerank=100, stored=(model, codes), nprobe=64)
    _, found = index.search(queries, 10)
    recall_at_10 = np.mean([t in f for f, t in zip(found, truth[:, 0])])
    assert recall_at_10 >= 0.99
    assert np.mean(found[:, 0] == truth[:, 0]) >= 0.99  # re-ranked exactly: the neighbour comes first
    assert index.resident_bytes / len(data) < 100  # codes + ids, and the model's share


def test_a_fitting_model_is_reused_and_codes_are_deterministic(vectors):
    data, _ = vectors
    model, info, codes = stored_index.build_codes(data[:5_000], "ivfpq")
    again = stored_index.build_codes(data[:6_000], "ivfpq", model, info)  # grew a little: same model, same codes
    assert again[0] == model and again[1] == info and np.array_equal(again[2][:5_000], codes)
    outgrown = stored_index.build_codes(data[:20_001], "ivfpq", model, info)  # 20,001 > 4 x 5,000: trained anew
    assert outgrown[0] != model and outgrown[1]["trained_on"] == 20_001
    lsh = stored_index.build_codes(data[:5_000], "lsh")
    assert stored_index.build_codes(np.concatenate([data] * 3), "lsh", *lsh[:2])[0] == lsh[0]  # LSH never outgrows
    assert not stored_index.model_fits(*lsh[:2], "ivfpq", data.shape[1], 5_000)  # another kind: not reused (build_codes
    # asks model_fits, as the grown and outgrown cases above show; training IVF-PQ again to see it took 8 s of CPU)
    assert stored_index.build_codes(data[: stored_index.MIN_IMAGES - 1]) is None  # small: exact or LSH at load


def test_a_catalog_folder_carries_its_index_and_the_daemon_uses_it(vectors, tmp_path):
    data, make_queries = vectors
    write_synthetic_catalog(tmp_path / "c", data[:9_000])
    catalog = load_catalog(tmp_path / "c", EMBEDDER_ID, VERIFIER_ID)
    assert json.loads((tmp_path / "c" / "catalog.json").read_text())["index"]["trained_on"] == 9_000
    assert catalog.index_codes.shape[0] == 9_000 and isinstance(catalog.index_codes, np.memmap)
    identifier = identifier_for(Config(), catalog, NO_MODELS)
    assert identifier.index.kind == "stored"
    [candidates] = identifier.candidates(np.asarray(data[[4_242]], np.float32))
    assert candidates[0].image_index == 4_242 and candidates[0].product_index == 4_242 // 3
    lsh = identifier_for(Config(index=IndexConfig(kind="lsh")), catalog, NO_MODELS)
    assert lsh.index.kind == "lsh"


def test_kind_stored_on_a_catalog_without_an_index_says_so(vectors, tmp_path):
    data, _ = vectors
    write_synthetic_catalog(tmp_path / "small", data[:300])
    catalog = load_catalog(tmp_path / "small")
    assert catalog.stored_index is None
    assert identifier_for(Config(), catalog, NO_MODELS).index.kind == "lsh"
    with pytest.raises(CatalogError, match="carries no stored index"):
        identifier_for(Config(index=IndexConfig(kind="stored")), catalog, NO_MODELS)


@pytest.fixture(scope="module")
def indexed_catalog(vectors, tmp_path_factory) -> Path:
    """A catalog folder with a stored index, built once (training IVF-PQ takes seconds); tests damage copies of it."""
    folder = tmp_path_factory.mktemp("indexed") / "c"
    write_synthetic_catalog(folder, vectors[0][:5_000])
    return folder


@pytest.mark.parametrize("damage,message", [
    (lambda folder: (folder / "index.faiss").write_bytes(b"not faiss"), "not a faiss index"),
    (lambda folder: np.save(folder / "index_codes.npy", np.load(folder / "index_codes.npy")[:, :-1]), "code size"),
    (lambda folder: np.save(folder / "index_codes.npy", np.load(folder / "index_codes.npy")[:-5]), "index_codes has shape"),
    (lambda folder: (folder / "index.faiss").unlink(), "without the other"),
])
def test_a_broken_index_is_a_catalog_error_naming_the_folder(indexed_catalog, tmp_path, damage, message):
    shutil.copytree(indexed_catalog, tmp_path / "c")
    identifier_for(Config(), load_catalog(tmp_path / "c"), NO_MODELS)  # whole, the copy loads
    damage(tmp_path / "c")
    with pytest.raises(CatalogError, match=message) as caught:
        identifier_for(Config(), load_catalog(tmp_path / "c"), NO_MODELS)
    assert str(tmp_path / "c") in str(caught.value)


def test_a_code_naming_a_list_the_model_lacks_is_refused_before_faiss_sees_it(vectors):
    data, _ = vectors
    model, info, codes = stored_index.build_codes(data[:5_000], "ivfpq")
    assert info["lists"] < 256  # one byte of list number
    codes = codes.copy()
    codes[17, 0] = 255
    with pytest.raises(ValueError, match="index code 17 names list 255"):
        stored_index.load_index(model, codes, 8)
