"""The catalog's stored search index: built once with the catalog, shipped per shard, loaded in milliseconds.

Two pieces, so a one-product change touches one shard:
  the model  a trained, empty faiss index, serialised: for `lsh` (the default) the random rotation whose signs
             make 256-bit codes (0.5 MB); for `ivfpq` the coarse centroids and PQ codebooks (~4.5 MB at 2,048
             lists). It describes the embedder's space, not the catalog's contents, so a new version reuses the
             previous one's model (same bytes, same blob: nothing to download) — an LSH model for ever, an IVF-PQ
             model until the catalog outgrows it.
  the codes  one row per catalog image, computed with the model (faiss's standalone code: 32 bytes of signs for
             lsh; the list number and 32 PQ bytes for ivfpq) and stored beside the image in its shard.
Loading hands the codes to faiss (add_sa_codes): nothing is trained or encoded on the device (a catalog
without a stored index gets the same LSH recipe run at load: lsh_index). The index proposes
a short list; the caller re-ranks it by exact cosine over the memory-mapped float16 vectors.

Why LSH by default (measured, `shelfid bench index`, README "Catalog search"): at 1M images a scan of all 256-bit
codes answers in ~1.3 ms p50 on one core here and finds the exact neighbour on both synthetic sets, while IVF-PQ,
faster on a catalog with family structure (0.3–0.7 ms), loses the neighbour on a set without it (recall@10 0.87
at nprobe 64) and needs ~40 s of training at 1M. `ivfpq` is there for catalogs well past 1M images, where a
full scan grows linearly.
"""

from __future__ import annotations

import logging

import faiss
import numpy as np

log = logging.getLogger(__name__)

KINDS = ("lsh", "ivfpq")
# below this a catalog ships no index (its bundles stay without a model): the device runs the same LSH recipe at
# load instead (lsh_index: ~0.1 s at 4,096 images on one core here); catalogs of at most index.rerank images are
# searched exactly
MIN_IMAGES = 4096
LSH_BITS = 256
SUBQUANTIZERS = 32  # bytes per PQ code; divides the embedding dimension (or the largest power of two that does)
OUTGROW = 4  # an IVF-PQ model trained on n images is reused until the catalog holds OUTGROW * n
CHUNK = 65536


def lists_for(n: int) -> int:
    """Coarse lists for n images: a power of two near 2 * sqrt(n) (~500 images per list at 1M), 64 to 4,096."""
    return int(min(4096, max(64, 2 ** round(np.log2(2 * np.sqrt(max(n, 1)))))))


def train_model(vectors: np.ndarray, kind: str = "lsh", seed: int = 0, bits: int = LSH_BITS) -> bytes:
    """A trained, empty index of `kind` for `vectors` (L2-normalised; inner product), serialised; `bits`: an LSH code's."""
    n, dim = vectors.shape
    if kind == "lsh":
        index = faiss.IndexLSH(dim, bits, True, False)  # a random rotation (seeded in faiss); its signs are the code
        index.train(np.asarray(vectors[: min(n, 1000)], np.float32))  # the rotation does not depend on the data
        return bytes(faiss.serialize_index(index))
    if kind != "ivfpq":
        raise ValueError(f"stored index kind {kind!r}: expected one of {', '.join(KINDS)}")
    nlist = lists_for(n)
    m = SUBQUANTIZERS if dim % SUBQUANTIZERS == 0 else next(d for d in (16, 8, 4, 2, 1) if dim % d == 0)
    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    for params in (index.cp, index.pq.cp):
        params.seed = seed
        params.min_points_per_centroid = 1  # small catalogs: train on what there is, without faiss's warnings on stderr
        params.max_points_per_centroid = 64  # k-means on at most 64 points a centroid: minutes at 1M otherwise
    sample = np.random.default_rng(seed).choice(n, min(n, 64 * nlist), replace=False)
    index.train(np.asarray(vectors[np.sort(sample)], np.float32))
    log.info("index model: IVF%d,PQ%d trained on %d of %d vectors", nlist, m, len(sample), n)
    return bytes(faiss.serialize_index(index))


def open_model(model: bytes) -> faiss.Index:
    """The model as a faiss index; ValueError when the bytes are not a trained, empty LSH or IVF-PQ index."""
    try:
        index = faiss.deserialize_index(np.frombuffer(model, np.uint8))
    except RuntimeError as exc:
        raise ValueError(f"index model is not a faiss index: {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(index, (faiss.IndexLSH, faiss.IndexIVFPQ)) or not index.is_trained or index.ntotal:
        raise ValueError(f"index model is a {type(index).__name__}, not a trained, empty LSH or IVF-PQ index")
    return index


def model_info(model: bytes, trained_on: int) -> dict:
    """What catalog.json and the manifest say of a model."""
    index = open_model(model)
    info = {"kind": "lsh" if isinstance(index, faiss.IndexLSH) else "ivfpq", "code_size": int(index.sa_code_size()),
            "trained_on": trained_on}
    return info | ({"bits": int(index.nbits)} if info["kind"] == "lsh" else {"lists": int(index.nlist)})


def encode(model: bytes, vectors: np.ndarray) -> np.ndarray:
    """[n x code_size] uint8: each vector's code under `model`."""
    index = open_model(model)
    if not len(vectors):
        return np.zeros((0, index.sa_code_size()), np.uint8)
    return np.concatenate([index.sa_encode(np.ascontiguousarray(vectors[s:s + CHUNK], np.float32))
                           for s in range(0, len(vectors), CHUNK)])


def model_fits(model: bytes | None, info: dict | None, kind: str, dim: int, n: int) -> bool:
    """Whether a previous version's model can serve this catalog (reused: unchanged shards stay unchanged)."""
    if model is None or not info or info.get("kind") != kind:
        return False
    try:
        index = open_model(model)
    except ValueError:
        return False
    return index.d == dim and (kind == "lsh" or n <= OUTGROW * int(info.get("trained_on", 0)))


def build_codes(vectors: np.ndarray, kind: str = "lsh", previous: bytes | None = None,
                previous_info: dict | None = None) -> tuple[bytes, dict, np.ndarray] | None:
    """(model, its info, codes) for a catalog's vectors: the previous model when it still fits (whatever the
    catalog's size: a version, or the part of one an incremental publish builds, stays with its model), else a new
    one; None for a catalog without a fitting model that is too small to need one."""
    n = len(vectors)
    if model_fits(previous, previous_info, kind, vectors.shape[1], n):
        model, info = previous, dict(previous_info)
    elif n < MIN_IMAGES:
        return None
    else:
        model = train_model(vectors, kind)
        info = model_info(model, n)
    return model, info, encode(model, vectors)


def load_index(model: bytes, codes: np.ndarray, nprobe: int = 64) -> faiss.Index:
    """The searchable index: the model filled with the stored codes, ids = image indices."""
    index = open_model(model)
    if codes.ndim != 2 or codes.shape[1] != index.sa_code_size():
        raise ValueError(f"index codes are {codes.shape}, the model's code size is {index.sa_code_size()}")
    if isinstance(index, faiss.IndexLSH):
        index.add_sa_codes(np.ascontiguousarray(codes), None)  # ids are the positions: image indices
        return index
    list_bytes = index.sa_code_size() - index.code_size
    for start in range(0, len(codes), CHUNK * 4):
        block = np.ascontiguousarray(codes[start:start + CHUNK * 4])
        # faiss trusts the list number in a code (an assert, compiled out): a bad one would write outside its lists
        lists = block[:, :list_bytes].astype(np.int64) @ (256 ** np.arange(list_bytes, dtype=np.int64))
        if len(lists) and lists.max() >= index.nlist:
            raise ValueError(f"index code {start + int(lists.argmax())} names list {lists.max()} of {index.nlist}")
        index.add_sa_codes(block, np.arange(start, start + len(block), dtype=np.int64))
    index.nprobe = min(nprobe, index.nlist)
    return index


def lsh_index(vectors: np.ndarray, bits: int = LSH_BITS) -> faiss.Index:
    """The stored LSH recipe run at load, for a catalog that carries no stored index: the same model, codes and
    searchable index a stored one gives (one recipe, one width by default: LSH_BITS)."""
    model = train_model(vectors, "lsh", bits=bits)
    return load_index(model, encode(model, vectors))


def resident_bytes(index: faiss.Index) -> int:
    """What a loaded index keeps in memory: codes (and ids, for IVF) plus the model."""
    if isinstance(index, faiss.IndexLSH):
        return int(index.codes.size() + index.rrot.A.size() * 4)
    return int(index.ntotal * (index.code_size + 8) + index.nlist * index.d * 4 + index.pq.centroids.size() * 4)
