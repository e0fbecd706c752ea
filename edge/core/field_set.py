"""Field references as the identifier uses them: a small set searched and verified beside the catalog.

A field reference is a crop the camera itself saw, confirmed by a person (edge.core.field_references): the same
light, angle and blur as the queries, so it verifies with many inliers and shows the colours the camera sees. Its
images continue the catalog's image numbering (image `catalog.image_count + i` is field image i) and a reference to
a product the catalog lacks adds a product after the catalog's. The set is held in memory (tens to hundreds of
crops, each ~40 kB of keypoints) and searched exactly; the catalog's own arrays are left as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from edge.core.annotate import thumbnail_jpeg
from edge.core.appearance import Reference, prepare
from edge.core.catalog import Catalog, Product
from edge.core.field_references import FieldReference
from edge.core.verifier import Features, strongest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldImage:
    reference_id: str
    product_index: int
    features: Features  # as the catalog keeps its images' (the strongest verifier.catalog_keypoints)
    appearance: Reference  # the crop at thumbnail size, prepared for the appearance check


@dataclass(frozen=True)
class FieldSet:
    products: tuple[Product, ...]  # products the catalog lacks; product index len(catalog.products) + i
    images: tuple[FieldImage, ...]
    embeddings: np.ndarray  # [images x D] float32, unit length

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_product(self) -> np.ndarray:
        return np.array([image.product_index for image in self.images], np.int64)

    def images_of(self, product_index: int) -> list[int]:
        """The product's field images (indices into `images`)."""
        return self._by_product.get(product_index, [])

    @cached_property
    def _by_product(self) -> dict[int, list[int]]:
        """Field images per product, made once: the verifier asks for every candidate of every crop."""
        grouped: dict[int, list[int]] = {}
        for i, image in enumerate(self.images):
            grouped.setdefault(image.product_index, []).append(i)
        return grouped

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """[Q x k'] similarities and field image indices, best first (k' = min(k, images))."""
        sims = np.ascontiguousarray(queries, np.float32) @ self.embeddings.T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, order, 1), order


EMPTY = FieldSet((), (), np.zeros((0, 0), np.float32))


def usable(reference: FieldReference, catalog: Catalog) -> str | None:
    """Why a reference cannot serve this catalog, or None when it can."""
    if reference.state == "refused":
        return "refused by the catalog server"
    if not reference.new_product and reference.product_id not in catalog_products(catalog):
        return f"product {reference.product_id} is not in catalog {catalog.catalog_id} v{catalog.version}"
    return None


def catalog_products(catalog: Catalog) -> dict[str, int]:
    return {p.product_id: i for i, p in enumerate(catalog.products)}


def field_set(catalog: Catalog, references: list[tuple[FieldReference, np.ndarray]], embedder, verifier,
              known: FieldSet | None = None) -> FieldSet:
    """The references that can serve `catalog` (crops decoded, BGR), computed with the identifier's models; those
    already in `known` (the set this one replaces) are not computed again."""
    index_of = catalog_products(catalog)
    products: list[Product] = []
    kept: list[tuple[FieldReference, np.ndarray]] = []
    for reference, crop in references:
        if (why := usable(reference, catalog)) is not None:
            log.info("field reference %s not used: %s", reference.reference_id, why)
            continue
        if reference.product_id not in index_of:  # a new product, named by the installer
            index_of[reference.product_id] = len(catalog.products) + len(products)
            products.append(Product(reference.product_id, reference.sku, reference.name, {"field": True}))
        kept.append((reference, crop))
    done = {image.reference_id: (image, known.embeddings[i]) for i, image in enumerate(known.images)} if known else {}
    todo = [(r, crop) for r, crop in kept if r.reference_id not in done]
    vectors = embedder.embed([crop for _, crop in todo]) if todo else []
    for (reference, crop), vector in zip(todo, vectors):
        features = strongest(verifier.features(crop), verifier.config.catalog_keypoints)
        small = cv2.imdecode(np.frombuffer(thumbnail_jpeg(crop), np.uint8), cv2.IMREAD_COLOR)  # as a catalog thumbnail
        done[reference.reference_id] = (FieldImage(reference.reference_id, 0, features, prepare(small)), np.asarray(vector, np.float32))
    if not kept:
        return EMPTY
    images = tuple(FieldImage(r.reference_id, index_of[r.product_id], done[r.reference_id][0].features,
                              done[r.reference_id][0].appearance) for r, _ in kept)
    embeddings = np.stack([done[r.reference_id][1] for r, _ in kept]).astype(np.float32)
    return FieldSet(tuple(products), images, embeddings)
