"""`shelfid bench index`: catalog search on clustered synthetic 512-d vectors.

Several views per product around a product centre, like a catalog of product
photos; queries are fresh views. Recall is measured against exact search.
Two sets: `families` (products grouped in look-alike families of 100 around
family centres, as a catalog's brands and ranges are) and `uniform` (product
centres spread uniformly over the sphere: no structure beyond the product, the
worst case for any partitioned index).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from edge.core import stored_index
from edge.core.index import CatalogIndex, exact_search

DIM = 512


@dataclass(frozen=True)
class IndexRow:
    n: int
    data: str
    method: str
    build_s: float
    load_s: float  # from the catalog folder's files to a searchable index (what a daemon start or catalog switch pays)
    resident_bytes_per_vector: float
    single_p50_ms: float
    single_p95_ms: float
    batched_ms_per_query: float
    recall_at_1: float
    recall_at_10: float


def clustered_vectors(n: int, views: int = 5, noise: float = 0.6, seed: int = 0, chunk: int = 100_000,
                      families: bool = False, per_family: int = 100, family_spread: float = 0.8):
    """n float16 vectors (n // views products × views), L2-normalised; and a query maker. `families`: product
    centres around family centres (sibling products ~0.6 cosine apart, like one brand's flavours)."""
    rng = np.random.default_rng(seed)
    n_products = n // views
    centres = rng.standard_normal((n_products, DIM)).astype(np.float32)
    if families:
        family = rng.standard_normal((max(1, n_products // per_family), DIM)).astype(np.float32)
        family /= np.linalg.norm(family, axis=1, keepdims=True)
        centres = family[rng.integers(0, len(family), n_products)] + family_spread * centres / np.sqrt(DIM)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n_products * views, DIM), np.float16)
    for start in range(0, len(out), chunk):
        rows = np.arange(start, min(start + chunk, len(out))) // views
        v = centres[rows] + noise * rng.standard_normal((len(rows), DIM)).astype(np.float32) / np.sqrt(DIM)
        out[start:start + len(rows)] = v / np.linalg.norm(v, axis=1, keepdims=True)

    def queries(count: int) -> np.ndarray:
        q_rng = np.random.default_rng(seed + 1)
        q = centres[q_rng.choice(n_products, count, replace=False)]
        q = q + noise * q_rng.standard_normal(q.shape).astype(np.float32) / np.sqrt(DIM)
        return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)

    return out, queries


def _time_queries(search, queries: np.ndarray, k: int) -> tuple[list[float], float, np.ndarray]:
    singles, ids = [], []
    for q in queries:
        start = time.perf_counter()
        _, found = search(q[None], k)
        singles.append((time.perf_counter() - start) * 1000)
        ids.append(found[0])
    start = time.perf_counter()
    search(queries, k)
    batched = (time.perf_counter() - start) * 1000 / len(queries)
    return singles, batched, np.array(ids)


def _recall(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """1-recall@1 and @10 (faiss's convention): the exact nearest neighbour is at rank 1 / in the top 10."""
    r1 = float(np.mean(found[:, 0] == truth[:, 0]))
    r10 = float(np.mean([t in f[:10] for f, t in zip(found, truth[:, 0])]))
    return r1, r10


def bench_index(n: int, lsh_settings: list[tuple[int, int]], queries: int = 200, hnsw: bool = True,
                threads: int = 1, progress=None, data: str = "families", nprobes: tuple[int, ...] = (16, 64, 256),
                rerank: int = 100) -> list[IndexRow]:
    faiss.omp_set_num_threads(threads)
    vectors, make_queries = clustered_vectors(n, families=data == "families")
    q = make_queries(queries)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.npy"
        np.save(path, vectors)
        del vectors
        mapped = np.load(path, mmap_mode="r")  # as on the device: float16 on disk, memory-mapped
        _, truth = exact_search(mapped, q, 10)

        def add(method, build_s, load_s, resident, search):
            singles, batched, found = _time_queries(search, q, 10)
            r1, r10 = _recall(found, truth)
            rows.append(IndexRow(n, data, method, round(build_s, 2), round(load_s, 3), round(resident / n, 1),
                                 round(float(np.median(singles)), 3), round(float(np.percentile(singles, 95)), 3),
                                 round(batched, 3), r1, r10))
            if progress:
                progress(rows[-1])

        start = time.perf_counter()
        exact = CatalogIndex(mapped, "exact")
        add("exact (float32 in memory)", 0.0, time.perf_counter() - start, exact.resident_bytes, exact.search)
        for bits, lsh_rerank in lsh_settings:
            start = time.perf_counter()
            index = CatalogIndex(mapped, "lsh", bits, lsh_rerank)
            took = time.perf_counter() - start
            add(f"LSH {bits} bits built at load + re-rank {lsh_rerank}", took, took, index.resident_bytes, index.search)
            del index
        for kind in ("lsh", "ivfpq"):
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # training and encoding happen once, at catalog build
            start = time.perf_counter()
            model = stored_index.train_model(mapped, kind)
            np.save(Path(tmp) / "codes.npy", stored_index.encode(model, mapped))
            build_s = time.perf_counter() - start
            faiss.omp_set_num_threads(threads)
            codes = np.load(Path(tmp) / "codes.npy", mmap_mode="r")
            for nprobe in nprobes if kind == "ivfpq" else (0,):
                start = time.perf_counter()
                index = CatalogIndex(mapped, "stored", rerank=rerank, stored=(model, codes), nprobe=nprobe)
                load_s = time.perf_counter() - start
                name = (f"stored LSH {stored_index.LSH_BITS} bits" if kind == "lsh" else
                        f"stored IVF{index.short.nlist},PQ{index.short.pq.M} nprobe {nprobe}")
                add(f"{name} + re-rank {rerank}", build_s, load_s, index.resident_bytes, index.search)
                del index
        if hnsw:
            start = time.perf_counter()
            graph = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # the build is minutes single-threaded; queries use `threads`
            for s in range(0, n, 100_000):
                graph.add(np.asarray(mapped[s:s + 100_000], np.float32))
            faiss.omp_set_num_threads(threads)
            resident = n * (DIM * 4 + 32 * 2 * 4)  # float32 copy + level-0 links
            took = time.perf_counter() - start
            add("faiss HNSW32 (efSearch 64, built at load)", took, took, resident, lambda x, k: _hnsw_search(graph, x, k))
    return rows


def _hnsw_search(graph, x, k):
    graph.hnsw.efSearch = 64
    return graph.search(x, k)


def format_rows(rows: list[IndexRow]) -> str:
    lines = ["| n | set | method | build s | load s | resident B/vector | single p50 ms | single p95 ms | batched ms/query | "
             "recall@1 | recall@10 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.n:,} | {r.data} | {r.method} | {r.build_s} | {r.load_s} | {r.resident_bytes_per_vector} | {r.single_p50_ms} | "
              f"{r.single_p95_ms} | "
              f"{r.batched_ms_per_query} | {r.recall_at_1:.3f} | {r.recall_at_10:.3f} |" for r in rows]
    return "\n".join(lines)


def progress_line(row: IndexRow) -> str:
    """One finished setting, for stderr while the rest still runs (a 1M-vector run takes minutes)."""
    return f"  {row.n:,} {row.data} {row.method}: p50 {row.single_p50_ms} ms, recall@10 {row.recall_at_10:.3f}"


def rows_as_dicts(rows: list[IndexRow]) -> list[dict]:
    return [asdict(r) for r in rows]
