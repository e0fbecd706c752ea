"""The local catalog folder: what it holds and how it is opened.

    catalog.json      schema, id, version, created_at, embedder and verifier ids, counts
    products.json     [{product_id, sku, name, attributes}]
    images.json       [{product_id, file, bbox, feature_size, packshot}] one row per catalog image (packshot: a plain
                      backdrop, judged on the whole image; decides how the image is verified)
    image_table.npy   [images x 4] int32: product index, feature width, feature height, flags (PACKSHOT, VARIANT,
                      PACKSHOT_KNOWN): what identification needs of images.json, opened without parsing it (1M rows
                      of JSON take seconds and a gigabyte); catalogs written before it have it computed at load
    embeddings.npy    [images x D] float16, memory-mapped
    keypoints.npy     [K x 2] float16 (float32 in catalogs before the lean format), all images' keypoints end to end;
                      at most verifier.catalog_keypoints per image (edge.core.verifier.strongest)
    descriptors.npy   [K x Dk] uint8 where every value is an integer 0..255 (SIFT's are: lossless), else float16
    scores.npy        [K] float16 keypoint scores
    offsets.npy       [images + 1] int64: image i owns rows offsets[i]:offsets[i+1]
    thumbnails/       <product_id>.jpg, 160 px: the product's first image, for people (the installer's page) and the
                      appearance check after alignment
    image-thumbnails/ <image index>.jpg, 160 px: each later image of a product (another view, another edition of the
                      pack), for the appearance check of a match on that image; catalogs built before have none
    index.faiss       optional (catalogs of 4,096 images and more): the trained, empty search index, LSH or IVF-PQ
                      (edge.core.stored_index); catalog.json's "index" says which and how many vectors it was trained on
    index_codes.npy   [images x code size] uint8: each image's code under index.faiss

Arrays are memory-mapped, so resident memory stays small and a catalog opens fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from edge.core.errors import CatalogError
from edge.core.verifier import Features

SCHEMA = 1
PACKSHOT, VARIANT, PACKSHOT_KNOWN = 1, 2, 4  # image_table flags
FILES = ("catalog.json", "products.json", "images.json", "embeddings.npy", "keypoints.npy", "descriptors.npy", "offsets.npy",
         "scores.npy")


def compact_descriptors(descriptors: np.ndarray) -> np.ndarray:
    """How keypoint descriptors are stored: uint8 when every value is an integer in 0..255 (OpenCV's SIFT
    descriptors are, so nothing is lost and they take half of float16's bytes), else float16 (learned ones)."""
    d = np.asarray(descriptors)
    if d.dtype == np.uint8:
        return d
    if d.size and np.all((d >= 0) & (d <= 255)) and np.array_equal(d, np.round(d)):
        return d.astype(np.uint8)
    return d.astype(np.float16)


@dataclass(frozen=True)
class Product:
    product_id: str
    sku: str
    name: str
    attributes: dict = field(default_factory=dict)


def product_ref(product: Product | None) -> dict | None:
    """A product as every JSON answer names it (MQTT events, `shelfid detect --json`, HTTP detect): `{id, sku, name}`."""
    return None if product is None else {"id": product.product_id, "sku": product.sku, "name": product.name}


@dataclass(frozen=True)
class Catalog:
    path: Path
    info: dict
    products: list[Product]
    image_table: np.ndarray  # [images x 4] int32: product index, feature width and height, flags
    embeddings: np.ndarray  # [images x D] float16 (memory-mapped)
    keypoints: np.ndarray
    descriptors: np.ndarray
    offsets: np.ndarray
    scores: np.ndarray
    index_model: bytes | None = None  # the stored search index (edge.core.stored_index), when the catalog has one
    index_codes: np.ndarray | None = None  # [images x code size] uint8 (memory-mapped)

    @property
    def stored_index(self) -> tuple[bytes, np.ndarray] | None:
        return None if self.index_model is None else (self.index_model, self.index_codes)

    @property
    def version(self) -> int:
        return int(self.info["version"])

    @property
    def catalog_id(self) -> str:
        return str(self.info["catalog_id"])

    def thumbnail(self, product_id: str) -> bytes | None:
        """A small JPEG of the product's first catalog image (catalogs built before thumbnails have none)."""
        path = self.path / "thumbnails" / f"{product_id}.jpg"
        if "/" in product_id or not path.is_file():
            return None
        return path.read_bytes()

    def image_thumbnail(self, image_index: int) -> bytes | None:
        """A small JPEG of one catalog image: a later image's own, the product's thumbnail for its first; None where the
        catalog holds none (built before per-image thumbnails, or an image reused from such a build)."""
        path = self.path / "image-thumbnails" / f"{int(image_index)}.jpg"
        if path.is_file():
            return path.read_bytes()
        product = int(self.image_product[image_index])
        return self.thumbnail(self.products[product].product_id) if self.images_of(product)[:1] == [image_index] else None

    @property
    def image_product(self) -> np.ndarray:
        """[images] index into products."""
        return self.image_table[:, 0]

    @property
    def image_count(self) -> int:
        return len(self.image_table)

    def feature_size(self, image_index: int) -> tuple[int, int]:
        """(width, height) of the image the keypoints were found in."""
        return int(self.image_table[image_index, 1]), int(self.image_table[image_index, 2])

    def packshot(self, image_index: int) -> bool | None:
        """Whether the image is a packshot (a plain backdrop); None for catalogs built before that was judged."""
        flags = int(self.image_table[image_index, 3])
        return bool(flags & PACKSHOT) if flags & PACKSHOT_KNOWN else None

    def is_variant(self, image_index: int) -> bool:
        """A retrieval-only view made at build time (no keypoints)."""
        return bool(self.image_table[image_index, 3] & VARIANT)

    @cached_property
    def images(self) -> list[dict]:
        """images.json's rows: for people and bundles; identification reads image_table."""
        return _load_json(self.path / "images.json") if self.image_count else []

    def features(self, image_index: int) -> Features:
        start, end = self.offsets[image_index], self.offsets[image_index + 1]
        width, height = self.feature_size(image_index)
        return Features(np.asarray(self.keypoints[start:end], np.float32), np.asarray(self.descriptors[start:end]), (width, height),
                        np.asarray(self.scores[start:end], np.float32))

    @cached_property
    def by_id(self) -> dict[str, Product]:
        """Product id -> product, made once per catalog (zones look products up per event and state)."""
        return {p.product_id: p for p in self.products}

    @cached_property
    def names(self) -> dict[str, str]:
        """Product id -> name, for labels people read."""
        return {p.product_id: p.name for p in self.products}

    @cached_property
    def _originals(self) -> tuple[np.ndarray, np.ndarray]:
        """Original images grouped by product (image indices, and where each product's run starts), computed once
        with numpy: the verifier asks per candidate, per object, and a dict of lists costs seconds at 1M images."""
        originals = np.flatnonzero((np.asarray(self.image_table[:, 3]) & VARIANT) == 0)
        order = originals[np.argsort(self.image_product[originals], kind="stable")]
        starts = np.searchsorted(self.image_product[order], np.arange(len(self.products) + 1))
        return order, starts

    def images_of(self, product_index: int) -> list[int]:
        """The product's original catalog images (retrieval-only variants have no keypoints)."""
        order, starts = self._originals
        return order[starts[product_index]:starts[product_index + 1]].tolist()

    def original_of(self, image_index: int) -> int:
        """A variant's original image (the first original of its product), or the image itself."""
        if not self.is_variant(image_index):
            return image_index
        return self.images_of(int(self.image_product[image_index]))[0]


def empty_catalog(embedding_dim: int, descriptor_dim: int) -> Catalog:
    """A catalog with nothing in it: every detection comes back unknown."""
    return Catalog(Path("/dev/null"), {"catalog_id": "empty", "version": 0}, [], np.zeros((0, 4), np.int32),
                   np.zeros((0, embedding_dim), np.float16), np.zeros((0, 2), np.float32),
                   np.zeros((0, descriptor_dim), np.float16), np.zeros(1, np.int64), np.zeros(0, np.float32))


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{path}: unreadable catalog file: {exc}") from None


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: unreadable catalog array: {exc}") from None


def installed_version(catalog_dir: Path) -> int:
    """The version of the catalog folder (or the `current` link) on disk; 0 when there is none."""
    try:
        return int(json.loads((catalog_dir / "catalog.json").read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def stored_model(catalog_dir: Path) -> tuple[bytes, dict] | None:
    """The folder's search index model and what catalog.json says of it, without opening the catalog; None when
    it has none (a rebuild into the same folder keeps it, so unchanged shards stay unchanged)."""
    try:
        return (catalog_dir / "index.faiss").read_bytes(), json.loads((catalog_dir / "catalog.json").read_text())["index"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def models_mismatch(info: dict, embedder_id: str | None, verifier_id: str | None) -> str | None:
    """Why a catalog (catalog.json, or the manifest it came from: both name `embedder.model_id` and `verifier.id`)
    cannot serve a device running these models; None when it can (None for an id: not checked). The one wording of
    this refusal, for a catalog opened here and a bundle refused by the sync agent."""
    if embedder_id is not None and info["embedder"]["model_id"] != embedder_id:
        return (f"built with embedder {info['embedder']['model_id'][:12]}…, this device runs {embedder_id[:12]}…: "
                "rebuild the catalog with this device's embedder")
    if verifier_id is not None and info["verifier"]["id"] != verifier_id:
        return (f"built with verifier {info['verifier']['id']}, this device runs {verifier_id}: "
                "rebuild the catalog, or set verifier settings to match")
    return None


def load_catalog(path: Path | str, embedder_id: str | None = None, verifier_id: str | None = None) -> Catalog:
    """Open a catalog folder, checking it is complete and was computed with the given models."""
    path = Path(path)
    if not path.is_dir():
        raise CatalogError(f"{path}: no catalog folder here")
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise CatalogError(f"{path}: not a complete catalog, missing {', '.join(missing)}")
    info = _load_json(path / "catalog.json")
    if info.get("schema") != SCHEMA:
        raise CatalogError(f"{path}: catalog schema {info.get('schema')!r}, this ShelfID reads schema {SCHEMA}")
    if problem := models_mismatch(info, embedder_id, verifier_id):
        raise CatalogError(f"{path}: {problem}")
    try:
        products = [Product(**p) for p in _load_json(path / "products.json")]
    except TypeError as exc:
        raise CatalogError(f"{path}/products.json: expected objects with product_id, sku, name, attributes: {exc}") from None
    if (path / "image_table.npy").is_file():
        table = _load_array(path / "image_table.npy")
    else:  # written before the table: computed from images.json, as it was
        table = image_table(_load_json(path / "images.json"), [p.product_id for p in products], path)
    stored = {}
    if (path / "index.faiss").is_file() or (path / "index_codes.npy").is_file():
        if not ((path / "index.faiss").is_file() and (path / "index_codes.npy").is_file()):
            raise CatalogError(f"{path}: has one of index.faiss and index_codes.npy without the other")
        stored = {"index_model": (path / "index.faiss").read_bytes(), "index_codes": _load_array(path / "index_codes.npy")}
    catalog = Catalog(path, info, products, table, *(_load_array(path / f) for f in FILES[3:]), **stored)
    _check_shapes(catalog)
    return catalog


def image_table(rows: list[dict], product_ids: list[str], where: Path) -> np.ndarray:
    """images.json's rows as image_table.npy's int32 [images x 4]: product index, feature width, height, flags."""
    index_of = {pid: i for i, pid in enumerate(product_ids)}
    table = np.zeros((len(rows), 4), np.int32)
    try:
        for i, row in enumerate(rows):
            packshot = row.get("packshot")
            flags = (PACKSHOT if packshot else 0) | (VARIANT if row.get("variant") else 0) | (PACKSHOT_KNOWN if packshot is not None else 0)
            table[i] = (index_of[row["product_id"]], *row["feature_size"], flags)
    except KeyError as exc:
        raise CatalogError(f"{where}: images.json names product {exc} that products.json lacks") from None
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: images.json row {i} is not {{product_id, feature_size: [w, h], ...}}: {exc}") from None
    return table


def _check_shapes(c: Catalog) -> None:
    n = c.image_count
    problems = []
    if c.image_table.ndim != 2 or c.image_table.shape[1] != 4 or c.image_table.dtype != np.int32:
        raise CatalogError(f"{c.path}: image_table.npy is {c.image_table.dtype} {c.image_table.shape}, expected int32 [images x 4]")
    if n and not (0 <= int(c.image_product.min()) and int(c.image_product.max()) < len(c.products)):
        problems.append(f"image_table names products outside 0..{len(c.products) - 1}")
    if c.embeddings.shape[0] != n:
        problems.append(f"embeddings has {c.embeddings.shape[0]} rows for {n} images")
    if c.offsets.shape != (n + 1,) or (n and c.offsets[-1] != len(c.keypoints)):
        problems.append("offsets do not match keypoints")
    if c.index_codes is not None and (c.index_codes.ndim != 2 or c.index_codes.shape[0] != n):
        problems.append(f"index_codes has shape {c.index_codes.shape} for {n} images")
    if not len(c.keypoints) == len(c.descriptors) == len(c.scores):
        problems.append(f"{len(c.keypoints)} keypoints, {len(c.descriptors)} descriptors, {len(c.scores)} scores")
    if problems:
        raise CatalogError(f"{c.path}: inconsistent catalog: {'; '.join(problems)}")
