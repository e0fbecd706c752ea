"""Catalog search: exact search as the oracle, LSH + re-rank against it on a clustered set."""

from __future__ import annotations

import numpy as np

from edge.core import index as index_module
from edge.core import stored_index
from edge.core.config import IndexConfig
from edge.core.index import CatalogIndex, collapse_to_products, exact_search


def clustered(n_products: int, views: int, dim: int = 512, noise: float = 0.6, seed: int = 0):
    """Several noisy views per product around a random centre, L2-normalised, as float16."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_products, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres.repeat(views, 0) + noise * rng.standard_normal((n_products * views, dim)).astype(np.float32) / np.sqrt(dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float16), centres


def test_exact_search_matches_a_full_sort(monkeypatch):
    monkeypatch.setattr(index_module, "CHUNK", 37)  # several chunks, uneven last one
    vectors, _ = clustered(40, 5, dim=32)
    queries = vectors[[3, 77, 150]].astype(np.float32)
    sims, ids = exact_search(vectors, queries, 10)
    full = queries @ vectors.astype(np.float32).T
    assert np.array_equal(ids, np.argsort(-full, 1, kind="stable")[:, :10])
    assert np.allclose(sims, np.sort(full, 1)[:, ::-1][:, :10], atol=1e-6)


def test_exact_search_with_fewer_vectors_than_k_pads_with_minus_one():
    vectors, _ = clustered(2, 1, dim=8)
    sims, ids = exact_search(vectors, vectors[:1].astype(np.float32), 5)
    assert ids[0, :2].tolist() == [0, 1] and ids[0, 2:].tolist() == [-1, -1, -1]


def test_lsh_with_rerank_recalls_what_exact_search_finds_at_50k():
    vectors, centres = clustered(10_000, 5)  # 50,000 vectors
    index = CatalogIndex(vectors, "lsh", rerank=100)  # the stored index's width: 256 bits
    rng = np.random.default_rng(1)
    picked = rng.choice(10_000, 300, replace=False)
    queries = centres[picked] + 0.6 * rng.standard_normal((300, 512)).astype(np.float32) / np.sqrt(512)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    _, exact_ids = exact_search(vectors, queries, 10)
    _, lsh_ids = index.search(queries, 10)
    # 1-recall@10 (faiss's convention): the exact nearest neighbour is among the approximate top 10
    recall_at_10 = np.mean([a[0] in b for a, b in zip(exact_ids, lsh_ids)])
    assert recall_at_10 >= 0.99
    assert np.mean(exact_ids[:, 0] == lsh_ids[:, 0]) >= 0.95
    assert index.resident_bytes == 50_000 * 256 // 8 + 256 * 512 * 4  # the codes and the rotation


def test_lsh_built_at_load_is_the_stored_recipe():
    vectors, _ = clustered(300, 4, dim=64)
    queries = vectors[::7].astype(np.float32)
    model = stored_index.train_model(vectors, "lsh")
    stored = CatalogIndex(vectors, "stored", rerank=50, stored=(model, stored_index.encode(model, vectors)))
    at_load = CatalogIndex(vectors, "lsh", rerank=50)
    assert at_load.short.code_size * 8 == stored_index.LSH_BITS == stored.short.code_size * 8
    assert np.array_equal(at_load.short.search(queries, 50)[1], stored.short.search(queries, 50)[1])
    assert np.array_equal(at_load.search(queries, 10)[1], stored.search(queries, 10)[1])
    assert IndexConfig().lsh_bits == stored_index.LSH_BITS  # one width, unless a config asks for another


def test_small_catalogs_are_searched_exactly():
    vectors, _ = clustered(10, 3, dim=16)
    index = CatalogIndex(vectors, "lsh", bits=64, rerank=100)
    sims, ids = index.search(vectors[:2].astype(np.float32), 4)
    exact = exact_search(vectors, vectors[:2].astype(np.float32), 4)
    assert np.array_equal(ids, exact[1])


def test_empty_index_returns_no_candidates():
    index = CatalogIndex(np.zeros((0, 16), np.float16), "lsh", bits=64)
    _, ids = index.search(np.ones((1, 16), np.float32), 3)
    assert (ids == -1).all()


def test_collapse_keeps_best_image_per_product():
    image_product = np.array([0, 0, 1, 2, 2])
    cands = collapse_to_products(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 0, 3, 4, -1]), image_product, 5)
    assert [(c.product_index, c.image_index) for c in cands] == [(0, 1), (2, 3)]
    assert collapse_to_products(np.array([0.9, 0.8]), np.array([1, 3]), image_product, 1)[0].product_index == 0


def test_exact_kind_keeps_float32_in_memory_and_matches_the_oracle():
    vectors, _ = clustered(50, 4, dim=32)
    index = CatalogIndex(vectors, "exact")
    queries = vectors[:5].astype(np.float32)
    assert np.array_equal(index.search(queries, 7)[1], exact_search(vectors, queries, 7)[1])
    assert index.resident_bytes == 200 * 32 * 4


def test_building_an_index_leaves_the_process_thread_count_alone():
    """The index benchmark's --threads used to be reset to 1 by every index it built."""
    import faiss

    faiss.omp_set_num_threads(2)
    CatalogIndex(np.random.default_rng(0).standard_normal((300, 16)).astype(np.float16), "lsh", bits=64, rerank=10)
    assert faiss.omp_get_max_threads() == 2
