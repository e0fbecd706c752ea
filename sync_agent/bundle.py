"""Catalog bundles: a local catalog split into content-addressed shards, a manifest naming them, and back.

    catalogs/<catalog_id>/manifest.json       schema, catalog id, version, created_at, embedder, verifier,
                                              shards (each part's sha256 + size), blobs (all of them)
    catalogs/<catalog_id>/manifest.json.sig   base64 ed25519 signature of manifest.json's bytes
    blobs/sha256/<hex>                        immutable: one shard part each

A catalog of 4,096 images or more carries its search index (edge.core.stored_index): the manifest's `index` names the
model's blob, which stays the same from version to version while it fits, and each shard carries its images'
codes (`index_codes`).

A product lives in shard sha256(product_id) mod 16, so adding, replacing or
removing one product changes the parts of one shard and leaves every other
blob byte-identical: a device downloads that shard and the manifest, nothing
else. Parts are serialised deterministically (sorted JSON, .npy without pickle).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.core.catalog import SCHEMA as CATALOG_SCHEMA
from edge.core.catalog import Catalog, compact_descriptors
from edge.core.catalog_build import write_catalog_arrays
from edge.core.ids import PRODUCT_ID
from sync_agent.errors import BundleError

MANIFEST_SCHEMA = 1
SHARDS = 16
JSON_PARTS = ("products", "images")  # and, optional, "thumbnails": {product_id: base64 JPEG} (a product's first image)
# and "image_thumbnails": {image sha256: base64 JPEG} (a product's later images)
ARRAY_PARTS = ("embeddings", "keypoints", "descriptors", "scores", "offsets")
SCHEMA_FILE = Path(__file__).resolve().parent / "manifest.schema.json"


MAX_VERSION_STEP = 100_000  # most a published version may jump above the one before (devices refuse more)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def index_info(entry: dict) -> dict:
    """What catalog.json says of a search index model, from the manifest's `index` entry (less the blob's hash and size)."""
    return {k: v for k, v in entry.items() if k not in ("sha256", "size")}


def manifest_key(catalog_id: str) -> str:
    return f"catalogs/{catalog_id}/manifest.json"


def blob_key(sha: str) -> str:
    return f"blobs/sha256/{sha}"


def shard_of(product_id: str) -> int:
    return int(sha256_hex(product_id.encode())[:8], 16) % SHARDS


def json_bytes(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class Bundle:
    manifest: dict
    blobs: dict[str, bytes]  # sha256 hex -> content

    @property
    def manifest_bytes(self) -> bytes:
        return json_bytes(self.manifest)


def images_by_product(catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Every image (variants too) grouped by product: image indices, and where each product's run starts."""
    order = np.argsort(catalog.image_product, kind="stable")
    return order, np.searchsorted(catalog.image_product[order], np.arange(len(catalog.products) + 1))


def shard_parts(catalog: Catalog, product_indices: list[int], grouped: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, bytes]:
    """The serialised parts of one shard: its products, their image rows, embeddings and keypoints."""
    order, starts = grouped or images_by_product(catalog)
    images = [int(i) for p in product_indices for i in order[starts[p]:starts[p + 1]]]
    features = [catalog.features(i) for i in images]
    offsets = np.cumsum([0] + [len(f.keypoints) for f in features]).astype(np.int64)
    dim = catalog.descriptors.shape[1]
    thumbnails = {catalog.products[p].product_id: catalog.thumbnail(catalog.products[p].product_id) for p in product_indices}
    parts = {} if not any(thumbnails.values()) else {
        "thumbnails": json_bytes({pid: base64.b64encode(t).decode() for pid, t in thumbnails.items() if t})}
    later = {}
    for p in product_indices:
        for i in catalog.images_of(p)[1:]:
            sha, jpeg = catalog.images[i].get("sha256"), catalog.image_thumbnail(i)
            if sha and jpeg:
                later[sha] = base64.b64encode(jpeg).decode()
    if later:
        parts["image_thumbnails"] = json_bytes(later)
    return parts | {
        "products": json_bytes([asdict(catalog.products[p]) for p in product_indices]),
        "images": json_bytes([catalog.images[i] for i in images]),
        "embeddings": npy_bytes(np.asarray(catalog.embeddings[images], np.float16).reshape(len(images), -1)),
        "keypoints": npy_bytes(np.concatenate([f.keypoints for f in features]).astype(np.float16) if features else np.zeros((0, 2), np.float16)),
        "descriptors": npy_bytes(compact_descriptors(np.concatenate([f.descriptors for f in features])) if features
                                 else np.zeros((0, dim), np.float16)),
        "scores": npy_bytes(np.concatenate([f.scores for f in features]).astype(np.float16) if features else np.zeros(0, np.float16)),
        "offsets": npy_bytes(offsets),
    } | ({} if catalog.index_codes is None else {"index_codes": npy_bytes(np.asarray(catalog.index_codes[images], np.uint8))})


def shard_entries(catalog: Catalog, blobs: dict[str, bytes]) -> list[dict]:
    """The manifest entries of every shard the catalog's products fall in; their parts join `blobs`."""
    by_shard: dict[int, list[int]] = defaultdict(list)
    for index, product in enumerate(catalog.products):
        by_shard[shard_of(product.product_id)].append(index)
    shards = []
    grouped = images_by_product(catalog)
    for shard in sorted(by_shard):
        indices = sorted(by_shard[shard], key=lambda i: catalog.products[i].product_id)
        parts = {}
        for name, data in shard_parts(catalog, indices, grouped).items():
            sha = sha256_hex(data)
            blobs[sha] = data
            parts[name] = {"sha256": sha, "size": len(data)}
        shards.append({"name": f"{shard:02x}", "products": len(indices), "parts": parts})
    return shards


def bundle_of(catalog_id: str, version: int, models: dict, shards: list[dict], blobs: dict[str, bytes],
              index: tuple[bytes, dict] | None, created_at: str | None = None, expires: str | None = None) -> Bundle:
    """A bundle from its shard entries. `models`: the manifest's embedder and verifier; `blobs`: the content this
    bundle brings (a manifest may name blobs a previous version already published); `index`: model and its info."""
    manifest = {
        "schema": MANIFEST_SCHEMA, "catalog_id": catalog_id, "version": version,
        "created_at": created_at or datetime.now(timezone.utc).isoformat(timespec="seconds"), **models,
        "shards": sorted(shards, key=lambda s: s["name"]),
    }
    listed = {p["sha256"]: p["size"] for s in shards for p in s["parts"].values()}
    if index is not None:
        model, info = index
        sha = sha256_hex(model)
        blobs[sha] = model
        manifest["index"] = info | {"sha256": sha, "size": len(model)}
        listed[sha] = len(model)
    manifest["blobs"] = [{"sha256": sha, "size": size} for sha, size in sorted(listed.items())]
    if expires:
        manifest["expires"] = expires
    return Bundle(manifest, blobs)


def make_bundle(catalog: Catalog, catalog_id: str, version: int, created_at: str | None = None, expires: str | None = None) -> Bundle:
    """`expires`: when devices stop trusting this manifest unless the server re-signs it (publish.resign)."""
    blobs: dict[str, bytes] = {}
    shards = shard_entries(catalog, blobs)
    index = None if catalog.index_model is None else (catalog.index_model, catalog.info["index"])
    models = {"embedder": catalog.info["embedder"], "verifier": catalog.info["verifier"]}
    return bundle_of(catalog_id, version, models, shards, blobs, index, created_at, expires)


def parse_manifest(data: bytes) -> dict:
    """JSON + the manifest's JSON Schema; BundleError says what is wrong."""
    import jsonschema

    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"manifest is not JSON: {exc}") from None
    schema = json.loads(SCHEMA_FILE.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(top)"
        raise BundleError(f"manifest does not match {SCHEMA_FILE.name}: {where}: {errors[0].message}")
    listed = {b["sha256"] for b in manifest["blobs"]}
    missing = [p["sha256"] for s in manifest["shards"] for p in s["parts"].values() if p["sha256"] not in listed]
    missing += [manifest["index"]["sha256"]] if "index" in manifest and manifest["index"]["sha256"] not in listed else []
    if missing:
        raise BundleError(f"manifest: shard parts {missing[:3]} are not in its blob list")
    return manifest


def assemble(manifest: dict, read_blob, out: Path) -> None:
    """Write the catalog folder a manifest describes into `out` (an empty staging folder), from its verified blobs."""
    products, rows, arrays, thumbnails, later = [], [], {name: [] for name in ARRAY_PARTS}, {}, {}
    codes = []
    keypoint_base = 0
    for shard in manifest["shards"]:
        parts = {name: read_blob(part["sha256"]) for name, part in shard["parts"].items()}
        shard_products, shard_rows = json.loads(parts["products"]), json.loads(parts["images"])
        shard_thumbnails = json.loads(parts["thumbnails"]) if "thumbnails" in parts else {}
        shard_later = json.loads(parts["image_thumbnails"]) if "image_thumbnails" in parts else {}
        check_names(shard["name"], shard_products, shard_rows, shard_thumbnails, shard_later)
        # keyed by sha256, which a retrieval variant shares with its image: the image's own (its variants are verified
        # as it, edge.core.identify)
        later |= {len(rows) + n: base64.b64decode(shard_later[r["sha256"]], validate=True) for n, r in enumerate(shard_rows)
                  if not r.get("variant") and isinstance(r.get("sha256"), str) and r["sha256"] in shard_later}
        products += shard_products
        rows += shard_rows
        thumbnails |= {pid: base64.b64decode(t, validate=True) for pid, t in shard_thumbnails.items()}
        loaded = {name: np.load(io.BytesIO(parts[name]), allow_pickle=False) for name in ARRAY_PARTS}
        for name in ("embeddings", "keypoints", "descriptors", "scores"):
            arrays[name].append(loaded[name])
        if "index" in manifest:
            if "index_codes" not in parts:
                raise BundleError(f"shard {shard['name']}: the manifest has an index, the shard no index codes")
            shard_codes = np.load(io.BytesIO(parts["index_codes"]), allow_pickle=False)
            if shard_codes.dtype != np.uint8 or shard_codes.shape != (len(shard_rows), manifest["index"]["code_size"]):
                raise BundleError(f"shard {shard['name']}: index codes are {shard_codes.dtype} {shard_codes.shape}, expected "
                                  f"uint8 ({len(shard_rows)}, {manifest['index']['code_size']}): one code per image")
            codes.append(shard_codes)
        offsets = loaded["offsets"]
        arrays["offsets"].append(offsets[:-1] + keypoint_base)  # each shard's offsets start at 0
        keypoint_base += int(offsets[-1])
    if not rows:
        raise BundleError(f"manifest {manifest['catalog_id']} v{manifest['version']}: no images in any shard")
    originals = sum(not r.get("variant") for r in rows)
    info = {"schema": CATALOG_SCHEMA, "catalog_id": manifest["catalog_id"], "version": manifest["version"],
            "created_at": manifest["created_at"], "embedder": manifest["embedder"], "verifier": manifest["verifier"],
            "products": len(products), "images": originals, "variants": len(rows) - originals}
    index = None
    if "index" in manifest:
        index = read_blob(manifest["index"]["sha256"]), index_info(manifest["index"]), np.concatenate(codes)
    write_catalog_arrays(out, info, products, rows, np.concatenate(arrays["embeddings"]), np.concatenate(arrays["keypoints"]),
                         np.concatenate(arrays["descriptors"]), np.concatenate(arrays["scores"]),
                         np.concatenate(arrays["offsets"] + [np.array([keypoint_base], np.int64)]), thumbnails, index, later)


def check_names(shard: str, products, rows, thumbnails, image_thumbnails) -> None:
    """Every id in a shard is a product id, every row and thumbnail names one of the shard's products, and every
    image thumbnail one of its images (by sha256).

    Even a signed bundle is untrusted here (the signing key lives on an online server): ids become file
    names during assembly, so `../x` or `/abs/x` must never get that far.
    """
    if not (isinstance(products, list) and isinstance(rows, list) and isinstance(thumbnails, dict)
            and isinstance(image_thumbnails, dict)):
        raise BundleError(f"shard {shard}: products and images must be lists, thumbnails and image thumbnails objects")
    ids = [p.get("product_id") if isinstance(p, dict) else None for p in products]
    bad = [i for i in ids if not (isinstance(i, str) and PRODUCT_ID.fullmatch(i))]
    bad += [k for k in thumbnails if k not in ids]
    bad += [r.get("product_id") if isinstance(r, dict) else r for r in rows if not (isinstance(r, dict) and r.get("product_id") in ids)]
    if bad:
        raise BundleError(f"shard {shard}: {len(bad)} names are not product ids of the shard, e.g. {bad[0]!r}; refused")
    shas = {r["sha256"] for r in rows if isinstance(r.get("sha256"), str)}
    strays = [k for k in image_thumbnails if k not in shas or not isinstance(image_thumbnails[k], str)]
    if strays:
        raise BundleError(f"shard {shard}: {len(strays)} image thumbnails name no image of the shard, e.g. {strays[0][:16]!r}; "
                          "refused")


def encode_signature(signature: bytes) -> bytes:
    return base64.b64encode(signature) + b"\n"


def decode_signature(data: bytes) -> bytes:
    try:
        return base64.b64decode(data.strip(), validate=True)
    except ValueError as exc:
        raise BundleError(f"manifest signature is not base64: {exc}") from None
