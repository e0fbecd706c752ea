"""`shelfid bench catalog-load`: how long a daemon start (or a catalog switch) takes to open an n-image catalog, and
what the daemon then holds in memory.

A synthetic catalog folder is written as a build would (products, image rows, float16 embeddings from the index
benchmark's clustered set, the stored IVF-PQ index; verification features left empty: their arrays are
memory-mapped and cost nothing to open). A fresh interpreter then imports the daemon's code, opens the catalog and
its index as `shelfid run` does, answers one query, and reports its times and RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.bench.index import clustered_vectors
from edge.core.catalog import SCHEMA
from edge.core.catalog_build import write_catalog_arrays
from edge.core.stored_index import build_codes

IMAGES_PER_PRODUCT = 3
EMBEDDER_ID = "synthetic-embedder"
VERIFIER_ID = "sift-synthetic"


def write_synthetic_catalog(folder: Path, vectors: np.ndarray, version: int = 1, previous: tuple[bytes, dict] | None = None,
                            catalog_id: str = "synthetic", first_product: int = 0, index_kind: str = "lsh") -> None:
    """A complete catalog folder over `vectors` (IMAGES_PER_PRODUCT rows per product), its stored index trained (or
    `previous` reused) as a catalog build does."""
    n = len(vectors)
    product_ids = [f"p{first_product + i // IMAGES_PER_PRODUCT:07d}" for i in range(n)]
    products = [{"product_id": pid, "sku": pid, "name": f"Product {pid}", "attributes": {}} for pid in dict.fromkeys(product_ids)]
    rows = [{"product_id": pid, "file": f"{pid}/{i % IMAGES_PER_PRODUCT}.jpg", "bbox": [0, 0, 400, 600],
             "feature_size": [0, 0], "packshot": True} for i, pid in enumerate(product_ids)]
    info = {"schema": SCHEMA, "catalog_id": catalog_id, "version": version, "created_at": "2026-11-30T00:00:00+00:00",
            "embedder": {"model_id": EMBEDDER_ID, "dim": vectors.shape[1], "input_size": 224},
            "verifier": {"id": VERIFIER_ID, "descriptor_dim": 128}, "products": len(products), "images": n, "variants": 0}
    folder.mkdir(parents=True)
    write_catalog_arrays(folder, info, products, rows, vectors, np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8),
                         np.zeros(0, np.float32), np.zeros(n + 1, np.int64), index=build_codes(vectors, index_kind, *(previous or (None, None))))


LOAD_SCRIPT = """
import json, resource, sys, time
start = time.perf_counter()
import numpy as np
from edge.core.catalog import load_catalog
from edge.core.config import Config
from edge.core.assembly import Models, catalog_index
from edge.core.index import search_one_query_at_a_time
imported = time.perf_counter()
search_one_query_at_a_time()
rss0 = int(open('/proc/self/statm').read().split()[1]) * 4096
catalog = load_catalog(sys.argv[1], sys.argv[2], sys.argv[3])
opened = time.perf_counter()
index = catalog_index(catalog, Config().index)
indexed = time.perf_counter()
index.search(np.asarray(catalog.embeddings[:1], np.float32), 15)
catalog.images_of(0)
done = time.perf_counter()
rss = int(open('/proc/self/statm').read().split()[1]) * 4096
models = Models.open(Config())  # the daemon's detector, embedder and verifier beside the catalog
daemon_rss = int(open('/proc/self/statm').read().split()[1]) * 4096
print(json.dumps({"daemon_rss_mb": round(daemon_rss / 2**20, 1), "open_s": round(opened - imported, 3), "index_s": round(indexed - opened, 3),
                  "first_query_s": round(done - indexed, 3), "load_s": round(done - imported, 3), "kind": index.kind,
                  "index_resident_bytes": index.resident_bytes, "rss_mb": round(rss / 2**20, 1),
                  "catalog_rss_mb": round((rss - rss0) / 2**20, 1)}))
"""


def bench_catalog_load(n: int, data: str = "families", index_kind: str = "lsh") -> dict:
    """Write an n-image catalog, open it in a fresh process as the daemon does; times, sizes, RSS."""
    vectors, _ = clustered_vectors(n, views=IMAGES_PER_PRODUCT, families=data == "families")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "catalog"
        start = time.perf_counter()
        write_synthetic_catalog(folder, vectors, index_kind=index_kind)
        build_s = time.perf_counter() - start
        del vectors
        disk = {f.name: f.stat().st_size for f in folder.iterdir() if f.is_file()}
        out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(folder), EMBEDDER_ID, VERIFIER_ID], check=True,
                             capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    result = json.loads(out.stdout)
    return {"n": n, "data": data, "index": index_kind, "build_s": round(build_s, 1), "disk_bytes_per_image": round(sum(disk.values()) / n, 1),
            "index_bytes_per_image": round((disk["index_codes.npy"] + disk["index.faiss"]) / n, 1)} | result


def format_rows(rows: list[dict]) -> str:
    lines = ["| images | build s | open s | index s | load s (open + index + first query) | index resident B/image | "
             "catalog RSS MB | process RSS MB | with the models MB | disk B/image (index share) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']:,} | {r['build_s']} | {r['open_s']} | {r['index_s']} | {r['load_s']} | "
              f"{round(r['index_resident_bytes'] / r['n'], 1)} | {r['catalog_rss_mb']} | {r['rss_mb']} | {r['daemon_rss_mb']} | "
              f"{r['disk_bytes_per_image']} ({r['index_bytes_per_image']}) |" for r in rows]
    return "\n".join(lines)
