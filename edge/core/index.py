"""Catalog search, four kinds (`index.kind`): stored, the catalog's stored index (edge.core.stored_index: LSH or
IVF-PQ); lsh, the same LSH recipe run at load, for a catalog that carries none (under stored_index.MIN_IMAGES
images, or built before stored indexes); auto (the default), stored when the catalog has one, else lsh; exact,
every vector (the oracle). stored and lsh propose `rerank` candidates, re-ranked by exact cosine; a catalog of at
most `rerank` images is searched exactly whatever the kind.

Vectors are L2-normalised, so cosine = dot product. The float16 vectors stay memory-mapped: stored and lsh keep
only their codes and model resident (32 bytes per vector for 256-bit LSH; 40 for IVF-PQ, 32 PQ bytes and an
8-byte id), and re-ranking reads just the candidates' rows. exact keeps a float32 copy (4 bytes per dimension).
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from edge.core import stored_index

CHUNK = 65536  # rows converted to float32 at a time


@dataclass(frozen=True)
class Candidate:
    product_index: int
    image_index: int
    similarity: float


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by dot product over every vector: [Q x k] similarities and ids (-1 where fewer than k)."""
    q = np.ascontiguousarray(queries, np.float32)
    n = len(vectors)
    k_eff = min(k, n)
    best_s = np.full((len(q), k), -np.inf, np.float32)
    best_i = np.full((len(q), k), -1, np.int64)
    for start in range(0, n, CHUNK):
        block = np.asarray(vectors[start:start + CHUNK], np.float32)
        sims = q @ block.T
        s = np.concatenate((best_s, sims), 1)
        i = np.concatenate((best_i, np.arange(start, start + len(block))[None].repeat(len(q), 0)), 1)
        top = np.argpartition(-s, k_eff - 1, axis=1)[:, :k] if s.shape[1] > k else np.argsort(-s, 1)
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    order = np.argsort(-best_s, 1, kind="stable")
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


class CatalogIndex:
    """`kind` stored: the catalog's stored index (`stored` = model, codes); lsh: the same LSH recipe run here, at load
    (stored_index.lsh_index: random rotation + sign bits, `bits` of them); auto: stored when the catalog carries one,
    else lsh; exact: every vector. Stored and lsh re-rank `rerank` candidates exactly."""

    def __init__(self, vectors: np.ndarray, kind: str = "auto", bits: int = stored_index.LSH_BITS, rerank: int = 100,
                 stored: tuple[bytes, np.ndarray] | None = None, nprobe: int = 64):
        if kind == "auto":
            kind = "stored" if stored is not None else "lsh"
        if kind == "stored" and stored is None:
            raise ValueError("index kind stored: this catalog carries no stored index (catalogs under "
                             f"{stored_index.MIN_IMAGES} images have none); use kind auto or lsh")
        self.vectors, self.kind, self.rerank = vectors, kind, rerank
        self.short = None  # the faiss index that proposes candidates
        # exact search keeps a float32 copy in memory: converting the float16 memory map per query costs
        # ~2 ms per 1,000 vectors here
        self.dense = np.asarray(vectors, np.float32) if kind == "exact" else None
        if kind == "stored":
            self.short = stored_index.load_index(*stored, nprobe)
        elif kind == "lsh" and len(vectors):
            self.short = stored_index.lsh_index(vectors, bits)

    @property
    def resident_bytes(self) -> int:
        """Bytes the index itself keeps in memory (for LSH the float16 vectors stay on disk)."""
        if self.dense is not None:
            return self.dense.nbytes
        if self.short is None:
            return 0
        return stored_index.resident_bytes(self.short)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """[Q x k] similarities and image ids, best first; ids are -1 where fewer than k exist."""
        queries = np.ascontiguousarray(queries, np.float32)
        if self.dense is not None:
            return exact_search(self.dense, queries, k)
        if self.short is None or len(self.vectors) <= self.rerank:
            return exact_search(self.vectors, queries, k)
        _, candidates = self.short.search(queries, self.rerank)
        sims_out = np.full((len(queries), k), -np.inf, np.float32)
        ids_out = np.full((len(queries), k), -1, np.int64)
        for row, (query, ids) in enumerate(zip(queries, candidates)):
            ids = np.unique(ids[ids >= 0])  # sorted: sequential reads from the memory map
            sims = np.asarray(self.vectors[ids], np.float32) @ query
            top = np.argsort(-sims, kind="stable")[:k]
            sims_out[row, : len(top)], ids_out[row, : len(top)] = sims[top], ids[top]
        return sims_out, ids_out


def search_one_query_at_a_time() -> None:
    """faiss's OpenMP threads for a process that searches one crop's query at a time (the daemon, `shelfid detect`):
    workers would only spin against the models' own threads. Process-wide, so it is called once where a process
    loads its identifier, never by an index (the index benchmark sets its own `--threads`)."""
    faiss.omp_set_num_threads(1)


def collapse_to_products(sims: np.ndarray, ids: np.ndarray, image_product: np.ndarray, k: int) -> list[Candidate]:
    """Best image per product, top-k products, from one query's image-level results."""
    seen: dict[int, Candidate] = {}
    for sim, image in zip(sims, ids):
        if image < 0:
            continue
        product = int(image_product[image])
        if product not in seen:
            seen[product] = Candidate(product, int(image), float(sim))
            if len(seen) == k:
                break
    return list(seen.values())
