"""Build a local catalog from product images: `<product_id>/*.jpg` plus an optional products.csv.

For each image: find the product (the detector's best box when it covers
enough of the image, else the whole image), embed the crop, compute verifier
keypoints. Everything is written to a temporary folder beside the output and
renamed into place, so a failed or interrupted build leaves nothing behind; a
full disk is a CatalogError that says so, and the previous catalog stays.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge.core.annotate import thumbnail_jpeg
from edge.core.appearance import is_packshot
from edge.core.catalog import SCHEMA, Product, compact_descriptors, image_table
from edge.core.errors import CatalogError, ImageError
from edge.core.field_references import FIELD_PREFIX
from edge.core.ids import PRODUCT_ID
from edge.core.images import IMAGE_SUFFIXES, read_image
from edge.core.stored_index import build_codes
from edge.core.verifier import Features, Verifier, strongest
from models.augment import catalog_variant
from models.detector import Detector
from models.embedder import Embedder
from models.metadata import sha256_file
from models.safe_write import fsync_dir, fsync_tree

log = logging.getLogger(__name__)
MIN_BOX_AREA = 0.2  # a detection smaller than this share of a catalog image is not "the product"
LOW_SPACE_BYTES = 1024 * 1024  # below this free on the filesystem, a write error without errno counts as a full disk
StoredIndex = tuple[bytes, dict, np.ndarray]  # the index model, what catalog.json says of it, the images' codes


@dataclass
class BuildReport:
    products: int = 0
    images: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: why", one per skipped image or folder
    reused: int = 0  # images whose features came from the previous build (same product, same bytes)


@dataclass(frozen=True)
class Computed:
    """What a build computed for one catalog image: the next build of the same bytes for the same product reuses it."""
    row: dict
    embedding: np.ndarray
    features: Features
    thumbnail: bytes | None = None  # its crop, small (the appearance check's pixels of a product's later image)


def read_products_csv(path: Path) -> dict[str, Product]:
    """product_id, sku, name, and any further columns kept as attributes."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "product_id" not in reader.fieldnames:
            raise CatalogError(f"{path}: needs a header with product_id (and optionally sku, name, more columns)")
        products = {}
        for line, row in enumerate(reader, start=2):
            pid = (row.pop("product_id") or "").strip()
            if not PRODUCT_ID.fullmatch(pid):
                raise CatalogError(f"{path}:{line}: product_id {pid!r} — use letters, digits, '.', '_', '-' (max 128)")
            if pid in products:
                raise CatalogError(f"{path}:{line}: duplicate product_id {pid!r}")
            sku, name = (row.pop("sku", "") or pid).strip(), (row.pop("name", "") or pid).strip()
            products[pid] = Product(pid, sku, name, {k: v for k, v in row.items() if k})
    return products


def crop_product(image: np.ndarray, detector: Detector | None) -> tuple[np.ndarray, list[float]]:
    """The product's crop and its box: the best detection if it is big enough, else the whole image."""
    h, w = image.shape[:2]
    if detector is not None:
        for det in sorted(detector.detect(image), key=lambda d: -d.score):
            x1, y1, x2, y2 = det.bbox
            if (x2 - x1) * (y2 - y1) >= MIN_BOX_AREA * w * h:
                box = [int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2))]
                return image[box[1]:box[3], box[0]:box[2]], box
    return image, [0, 0, w, h]


def scan(images_dir: Path, report: BuildReport) -> list[tuple[str, Path]]:
    """(product_id, image path) pairs; bad folder names and non-images are reported and skipped."""
    if not images_dir.is_dir():
        raise CatalogError(f"{images_dir}: no such folder of product images")
    pairs = []
    for folder in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        if not PRODUCT_ID.fullmatch(folder.name):
            report.skipped.append(f"{folder}: folder name is not a valid product id (letters, digits, '.', '_', '-')")
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file())
        for path in files:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                pairs.append((folder.name, path))
            else:
                report.skipped.append(f"{path}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
    return pairs


def build_catalog(images_dir: Path | str, out: Path | str, embedder: Embedder, verifier: Verifier,
                  detector: Detector | None = None, catalog_id: str | None = None, version: int = 1,
                  force: bool = False, variants: int = 0, seed: int = 0,
                  index_kind: str = "lsh", index_model: tuple[bytes, dict] | None = None,
                  reuse: dict[tuple[str, str], Computed] | None = None, reuse_thumbnails: dict[str, bytes] | None = None,
                  ) -> BuildReport:
    """`variants`: extra shelf-like views per image, embedded for retrieval only (the verifier uses originals).
    `index_kind`: the stored search index (edge.core.stored_index); `index_model`: the previous version's model and
    info, reused while it fits (unchanged shards stay unchanged). `reuse`: (product id, image sha256) -> what an
    earlier build computed for those bytes, taken instead of detecting, embedding and finding keypoints again
    (images with variants are always computed); `reuse_thumbnails`: the earlier build's thumbnails."""
    images_dir, out = Path(images_dir), Path(out)
    report = BuildReport()
    if out.exists() and any(out.iterdir()) and not force:
        raise CatalogError(f"{out}: already exists and is not empty (use --force to replace it)")
    csv_path = images_dir / "products.csv"
    table = read_products_csv(csv_path) if csv_path.is_file() else {}
    pairs = scan(images_dir, report)

    rows, crops_features, embeddings = [], [], []
    thumbnails: dict[str, bytes | None] = {}  # product id -> its first image's crop, small, for people (the installer's page)
    later: dict[int, bytes] = {}  # row index -> a product's later image's crop, small: its own colours to compare with
    batch: list[tuple[dict, np.ndarray, bytes | None]] = []  # (the image's row without its features' size, its crop,
    # its thumbnail when it is not its product's first)
    rng = np.random.default_rng(seed)

    def flush():
        vectors = embedder.embed([crop for _, crop, _ in batch])
        for (row, crop, small), vector in zip(batch, vectors):
            features = strongest(verifier.features(crop), verifier.config.catalog_keypoints)
            row = row | {"feature_size": list(features.image_size)}
            if small is not None:
                later[len(rows)] = small
            rows.append(row)
            crops_features.append(features)
            embeddings.append(vector)
            if variants:
                for extra in embedder.embed([catalog_variant(crop, rng) for _ in range(variants)]):
                    rows.append(row | {"variant": True, "feature_size": [0, 0]})
                    crops_features.append(Features.empty(verifier.descriptor_dim))
                    embeddings.append(extra)
        batch.clear()

    for pid, path in tqdm(pairs, desc="catalog images", unit="img", disable=None):
        file, sha = str(path.relative_to(images_dir)), sha256_file(path)
        earlier = reuse.get((pid, sha)) if reuse and not variants else None
        if earlier is not None:
            if batch:  # rows stay in the images' order: a product's first row is the image its thumbnail shows
                flush()
            if pid not in thumbnails:
                thumbnails[pid] = (reuse_thumbnails or {}).get(pid)
            elif earlier.thumbnail is not None:
                later[len(rows)] = earlier.thumbnail
            rows.append(earlier.row | {"file": file})
            crops_features.append(earlier.features)
            embeddings.append(earlier.embedding)
            report.reused += 1
            continue
        try:
            image = read_image(path)
        except ImageError as exc:
            report.skipped.append(str(exc))
            continue
        # a field reference (field-<reference id>.jpg, filed by the catalog server) is the box the device's detector cut
        # already: detected again it would lose a margin, and its embedding and keypoints would no longer be the device's
        crop, box = crop_product(image, None if path.name.startswith(FIELD_PREFIX) else detector)
        small = thumbnail_jpeg(crop)
        # packshot: judged on the whole image (the crop loses the backdrop)
        batch.append(({"product_id": pid, "file": file, "bbox": box, "packshot": is_packshot(image), "sha256": sha}, crop,
                      small if pid in thumbnails else None))
        thumbnails.setdefault(pid, small)
        if len(batch) >= 16:
            flush()
    if batch:
        flush()
    if not rows:
        raise CatalogError(f"{images_dir}: no readable product images (expected <product_id>/*.jpg); "
                           f"{len(report.skipped)} skipped")

    used = sorted({r["product_id"] for r in rows})
    originals = sum(not r.get("variant") for r in rows)
    products = [table.get(pid, Product(pid, pid, pid)) for pid in used]
    for pid in sorted(set(table) - set(used)):
        report.skipped.append(f"{csv_path}: product {pid} has no readable images")
    info = catalog_info(catalog_id or images_dir.name, version, embedder, verifier, len(products), originals, len(rows) - originals)
    vectors = np.stack(embeddings).astype(np.float16)
    index = build_codes(vectors, index_kind, *(index_model or (None, None)))
    _write(out, info, products, rows, vectors, crops_features, force,
           {p.product_id: thumbnails[p.product_id] for p in products if thumbnails.get(p.product_id)}, index, later)
    report.products, report.images = len(products), originals
    log.info("catalog %s v%d: %d products, %d images (+%d variants, %d reused), %d skipped -> %s", info["catalog_id"], version,
             len(products), originals, len(rows) - originals, report.reused, len(report.skipped), out)
    return report


def catalog_info(catalog_id: str, version: int, embedder: Embedder, verifier: Verifier, products: int, images: int,
                 variants: int) -> dict:
    """catalog.json: what the catalog is and which models its vectors and features belong to."""
    return {
        "schema": SCHEMA, "catalog_id": catalog_id, "version": version,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "embedder": {"model_id": embedder.model_id, "dim": embedder.dim, "input_size": embedder.input_size},
        "verifier": {"id": verifier.id, "descriptor_dim": verifier.descriptor_dim},
        "products": products, "images": images, "variants": variants,
    }


def write_catalog_files(folder: Path, info: dict, products: list[Product], rows: list[dict], embeddings: np.ndarray,
                        features: list[Features], thumbnails: dict[str, bytes] | None = None,
                        index: StoredIndex | None = None, image_thumbnails: dict[int, bytes] | None = None) -> None:
    """The catalog's files in `folder` (which the caller renames into place)."""
    offsets = np.cumsum([0] + [len(f.keypoints) for f in features]).astype(np.int64)
    dim = features[0].descriptors.shape[1] if features else 0
    keypoints = np.concatenate([f.keypoints for f in features]) if features else np.zeros((0, 2))
    descriptors = np.concatenate([f.descriptors.reshape(-1, dim) for f in features]) if features else np.zeros((0, dim))
    scores = [f.scores if f.scores is not None else np.zeros(len(f.keypoints)) for f in features]
    scores = np.concatenate(scores) if scores else np.zeros(0)
    write_catalog_arrays(folder, info, [p.__dict__ for p in products], rows, embeddings, keypoints, descriptors, scores, offsets,
                         thumbnails, index, image_thumbnails)


def write_catalog_arrays(folder: Path, info: dict, products: list[dict], rows: list[dict], embeddings: np.ndarray,
                         keypoints: np.ndarray, descriptors: np.ndarray, scores: np.ndarray, offsets: np.ndarray,
                         thumbnails: dict[str, bytes] | None = None, index: StoredIndex | None = None,
                         image_thumbnails: dict[int, bytes] | None = None) -> None:
    """Every file of a catalog folder, fsynced, catalog.json last (its presence marks a complete folder).
    `image_thumbnails`: image index (a row of `rows`) -> its crop, small, for a product's images after its first."""
    if thumbnails:
        unsafe = [pid for pid in thumbnails if not (isinstance(pid, str) and PRODUCT_ID.fullmatch(pid))]
        if unsafe:  # a product id names a file: nothing may write outside the folder
            raise CatalogError(f"{folder}: thumbnail names {unsafe[:3]!r} are not product ids; nothing written")
        (folder / "thumbnails").mkdir()
        for pid, jpeg in thumbnails.items():
            (folder / "thumbnails" / f"{pid}.jpg").write_bytes(jpeg)
    if image_thumbnails:
        outside = [i for i in image_thumbnails if not (isinstance(i, int) and 0 <= i < len(rows))]
        if outside:
            raise CatalogError(f"{folder}: image thumbnails for images {outside[:3]!r}, the catalog has {len(rows)}; nothing written")
        (folder / "image-thumbnails").mkdir()
        for i, jpeg in image_thumbnails.items():
            (folder / "image-thumbnails" / f"{i}.jpg").write_bytes(jpeg)
    (folder / "products.json").write_text(json.dumps(products, indent=1, ensure_ascii=False))
    (folder / "images.json").write_text(json.dumps(rows, indent=1))
    np.save(folder / "image_table.npy", image_table(rows, [p["product_id"] for p in products], folder))
    np.save(folder / "embeddings.npy", embeddings.astype(np.float16))
    np.save(folder / "keypoints.npy", keypoints.astype(np.float16))  # pixels of a <= input_size image: 0.25 px steps at 512
    np.save(folder / "descriptors.npy", compact_descriptors(descriptors))
    np.save(folder / "offsets.npy", offsets.astype(np.int64))
    np.save(folder / "scores.npy", scores.astype(np.float16))
    if index is not None:
        model, index_info, codes = index
        (folder / "index.faiss").write_bytes(model)
        np.save(folder / "index_codes.npy", np.ascontiguousarray(codes, np.uint8))
        info = info | {"index": index_info}
    (folder / "catalog.json").write_text(json.dumps(info, indent=1))
    fsync_tree(folder)  # before the caller's rename publishes the folder


def no_space(exc: OSError, folder: Path) -> bool:
    """Whether a failed write in `folder` was a full disk: ENOSPC/EDQUOT, or numpy's short write
    ('N requested and 0 written', no errno) on a filesystem with almost nothing free."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return exc.errno is None and shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


def _write(out: Path, info, products, rows, embeddings, features, force: bool, thumbnails: dict[str, bytes],
           index: StoredIndex | None, image_thumbnails: dict[int, bytes]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the daemon may run as another user
    try:
        try:
            write_catalog_files(tmp, info, products, rows, embeddings, features, thumbnails, index, image_thumbnails)
        except OSError as exc:
            if not no_space(exc, out.parent):
                raise
            free = shutil.disk_usage(out.parent).free
            raise CatalogError(f"{out}: no space left on its filesystem to write the catalog ({free} bytes free; "
                               f"{'the previous catalog there is kept' if out.exists() else 'nothing was written'}): "
                               "free space and build again") from None
        old = out.with_name(f".{out.name}.old-{os.getpid()}") if out.exists() else None
        if old:
            os.replace(out, old)
        os.replace(tmp, out)
        fsync_dir(out.parent)
        if old:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
