"""The identification engine: detect → embed → search → verify → decide.

Shared by `shelfid detect` (still images), the evaluation tools, the catalog server's detect and the daemon.
Assembling one from a config: edge/core/assembly.py; a detection as JSON: edge/core/records.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.core.appearance import Reference, differing_share, prepare
from edge.core.catalog import Catalog, Product
from edge.core.config import DecisionConfig
from edge.core.decision import (
    NO_CANDIDATES,
    NOT_COMPARED,
    Calibration,
    Evidence,
    Thresholds,
    choose,
    is_clear,
    passes,
    unknown_reason,
    verified_count,
)
from edge.core.field_set import EMPTY, FieldSet
from edge.core.index import Candidate, CatalogIndex, collapse_to_products
from edge.core.verifier import Features, Match
from edge.core.verifier.geometry import implausible

if TYPE_CHECKING:
    from edge.core.assembly import Models
    from models.detector import Detector

log = logging.getLogger(__name__)
IMAGES_PER_PRODUCT = 3  # catalog images of one product tried by the verifier
REFERENCES_CACHED = 256  # prepared catalog image thumbnails kept (appearance.Reference, ~150 kB each)
VARIANTS_SEARCHED = 10  # images searched per wanted product when the catalog holds retrieval variants
# a still this many times the detector's input on its longest side is a phone photo, not a camera frame: its packs
# shrink past what the detector sees unless it is detected in tiles (a 1920x1080 frame, 6 times 320 px, is not tiled)
LARGE_STILL = 6
# two named boxes of one product overlapping by this share of the smaller are one facing: tiles box a bottle and its
# label, or one pack at two levels, and both crops verify
FACING_OVERLAP = 0.5


@dataclass(frozen=True, kw_only=True)
class Identification:
    status: str  # "identified" or "unknown"
    product: Product | None  # set only when identified
    guess: Product | None  # best candidate when unknown (never reported as the product)
    similarity: float
    inliers: int
    inlier_ratio: float
    spread: float
    verified: int  # candidates the verifier looked at
    ranked: tuple[int, ...] = ()  # product indices in retrieval order (top_k), for evaluation
    confidence: float = 0.0  # the decision's score for the chosen candidate (calibrated probability)
    clear: bool = False  # identified with evidence no look-alike reaches (decision.is_clear): one look confirms it
    reason: str | None = None  # when unknown, why (edge.core.decision: small, no_match, partly_visible, colours_differ …)

    @staticmethod
    def unknown_empty() -> Identification:
        return Identification(status="unknown", product=None, guess=None, similarity=0.0, inliers=0, inlier_ratio=0.0,
                              spread=0.0, verified=0, reason=NO_CANDIDATES)


@dataclass
class Timings:
    ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000


@dataclass(frozen=True)
class Examined:
    candidates: tuple[Candidate, ...]  # retrieved, best first
    evidence: tuple[Evidence, ...]  # evidence[i] belongs to candidates[i]; the rest were not verified
    identification: Identification


@dataclass(frozen=True)
class Detected:
    bbox: tuple[float, float, float, float]
    identification: Identification


def decide(products: Sequence[Product], candidates: list[Candidate], verified: list[Evidence], thresholds: Thresholds,
           calibration: Calibration | None = None, crop_size: tuple[int, int] | None = None) -> Identification:
    """Identical when the decision rule accepts the best verified candidate; else unknown with a guess and the reason.
    `crop_size`: the crop's (width, height), which tells a crop too small to verify (None: not known)."""
    if not candidates:
        return Identification.unknown_empty()
    # verified[i] belongs to candidates[i]; candidates past len(verified) were not verified
    best, identical, confidence = choose(verified, [c.similarity for c in candidates], thresholds, calibration)
    cand, chosen = candidates[best], verified[best] if verified else Evidence.none()
    product = products[cand.product_index]
    return Identification(status="identified" if identical else "unknown", product=product if identical else None,
                          guess=None if identical else product, similarity=cand.similarity, inliers=chosen.match.inliers,
                          inlier_ratio=chosen.match.inlier_ratio, spread=chosen.match.spread, verified=len(verified),
                          ranked=tuple(c.product_index for c in candidates), confidence=confidence,
                          clear=identical and is_clear(chosen, thresholds),
                          reason=None if identical else unknown_reason(verified, thresholds, crop_size, calibration))


class Identifier:
    """One catalog's engine over a process's models (edge.core.assembly.identifier_for builds one from a config), with
    the device's field references beside the catalog (`field`: their images number on from the catalog's)."""

    def __init__(self, models: Models, catalog: Catalog, index: CatalogIndex, top_k: int = 5, verify_candidates: int = 3,
                 thresholds: Thresholds | None = None, appearance: bool = True, field: FieldSet = EMPTY):
        self.models, self.catalog, self.index, self.field = models, catalog, index, field
        self.products = [*catalog.products, *field.products]
        self._image_product = (np.concatenate([np.asarray(catalog.image_product, np.int64), field.image_product])
                               if len(field) else catalog.image_product)
        self.embedder, self.verifier, self.detector, self.calibration = models.embedder, models.verifier, models.detector, models.calibration
        self.top_k, self.verify_candidates = top_k, verify_candidates
        self.thresholds = thresholds or Thresholds.of(DecisionConfig())
        # a fitted decision that scores the embedding alone: keypoints would cost time and change nothing
        self.verifies = self.calibration is None or self.calibration.uses_keypoints
        self.appearance = appearance
        # decoded once, a few at a time; a plain dict, not lru_cache on a bound method: that is a reference cycle, and an
        # identifier replaced by a catalog switch then kept its catalog's memory maps (5 open files) until the cyclic
        # garbage collector ran (the soak saw open files grow 19 -> 39 in an hour of switches)
        self._references: OrderedDict[int, Reference | None] = OrderedDict()
        self._references_lock = threading.Lock()  # the daemon identifies on several threads

    def candidates(self, embeddings: np.ndarray) -> list[list[Candidate]]:
        """Top-k products per query, each with its most similar image (catalog or field)."""
        n = self.catalog.image_count
        if not n and not len(self.field):
            return [[] for _ in embeddings]
        per_product = max(IMAGES_PER_PRODUCT, VARIANTS_SEARCHED if self.catalog.info.get("variants") else 0)
        k_images = self.top_k * per_product
        found = [self.index.search(embeddings, min(n, k_images))] if n else []
        if len(self.field):
            field_sims, field_ids = self.field.search(embeddings, k_images)
            found.append((field_sims, field_ids + n))
        sims, ids = (np.concatenate(part, 1) for part in zip(*found))
        if len(found) > 1:  # one ranking over both
            order = np.argsort(-sims, axis=1, kind="stable")
            sims, ids = np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)
        return [collapse_to_products(s, i, self._image_product, self.top_k) for s, i in zip(sims, ids)]

    def verify(self, crop: np.ndarray, candidates: list[Candidate], limit: int | None = None, early_stop: bool = True) -> list[Evidence]:
        """Best match per candidate product, in candidate order, checked for plausible geometry and for
        appearance after alignment; stops early on a clear winner. `limit`: candidates verified (default: the
        configured number and any that tie with the last of them)."""
        query = None
        verified = []
        limit = limit or verified_count([c.similarity for c in candidates], self.verify_candidates)
        for cand in candidates[:limit]:
            query = query or self.verifier.features(crop)
            tried = [(self.verifier.match(query, self._features(i)), i) for i in self._images_to_verify(cand)]
            judged = [(self._evidence(crop, query, m, i), i) for m, i in tried]
            evidence, image = best_image(judged, self.thresholds)
            if self.appearance and evidence.differing is None and evidence.match.inliers >= self.thresholds.min_inliers:
                evidence = self._colours_elsewhere(evidence, image, tried, judged)
            verified.append(evidence)
            if early_stop and is_clear(evidence, self.thresholds):
                break
        return verified

    def _colours_elsewhere(self, evidence: Evidence, matched: int, tried: list[tuple[Match, int]],
                           judged: list[tuple[Evidence, int]]) -> Evidence:
        """The colours of a match on an image whose pixels the device does not hold (a later image of a catalog built
        before per-image thumbnails, or reused from one), judged on the best aligned of the product's images it does
        hold. Unjudged, a colour twin whose second packshot matched best was named on keypoints alone (measured: red
        and blue swapped, 12 of 12 Grocery packs named as their twin)."""
        held = [(m, e) for (m, i), (e, _) in zip(tried, judged)
                if i != matched and m.inliers >= self.thresholds.min_inliers and self.reference_pixels(i) is not None]
        if not held:
            return evidence  # no image with pixels shows what the crop shows: keypoints alone, as before
        _, aligned = max(held, key=lambda pair: pair[0].inliers)
        return replace(evidence, differing=aligned.differing)  # judged already, with the others

    def _images_to_verify(self, cand: Candidate) -> list[int]:
        """The image retrieved, then the product's field references (the camera's own view of it: a product that has
        them is decided by them), then its catalog images; IMAGES_PER_PRODUCT in all."""
        n = self.catalog.image_count
        first = self.catalog.original_of(cand.image_index) if cand.image_index < n else cand.image_index  # a variant verifies as its original
        field = [n + i for i in self.field.images_of(cand.product_index)] if len(self.field) else []
        own = self.catalog.images_of(cand.product_index) if cand.product_index < len(self.catalog.products) else []
        images = [first] + [i for i in (*field, *own) if i != first]
        return images[:IMAGES_PER_PRODUCT]

    def _features(self, image: int) -> Features:
        n = self.catalog.image_count
        return self.catalog.features(image) if image < n else self.field.images[image - n].features

    def _evidence(self, crop: np.ndarray, query: Features, match: Match, image: int) -> Evidence:
        evidence = judge(crop, query, match, self.feature_size(image), partial(self.reference_pixels, image), self.thresholds,
                         self.appearance)
        return replace(evidence, image=image, query_size=query.image_size)

    def feature_size(self, image: int) -> tuple[int, int]:
        """The size of the image its features were computed on (catalog or field image)."""
        n = self.catalog.image_count
        return self.catalog.feature_size(image) if image < n else self.field.images[image - n].features.image_size

    def reference_pixels(self, image: int) -> Reference | None:
        """The pixels of the image matched, where the device holds them: a field reference's, a catalog image's
        thumbnail (catalogs built before per-image thumbnails hold only each product's first)."""
        n = self.catalog.image_count
        if image >= n:
            return self.field.images[image - n].appearance
        return self.prepared(image)

    def prepared(self, image: int) -> Reference | None:
        """A catalog image's thumbnail prepared for the appearance check; the last REFERENCES_CACHED stay prepared."""
        with self._references_lock:
            if image in self._references:
                self._references.move_to_end(image)
                return self._references[image]
        jpeg = self.catalog.image_thumbnail(image)
        decoded = None if jpeg is None else cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        reference = None if decoded is None else prepare(decoded)
        with self._references_lock:
            self._references[image] = reference
            if len(self._references) > REFERENCES_CACHED:
                self._references.popitem(last=False)
        return reference

    def identify_crops(self, crops: list[np.ndarray], timings: Timings | None = None) -> list[Identification]:
        return [examined.identification for examined in self.examine(crops, timings)]

    def examine(self, crops: list[np.ndarray], timings: Timings | None = None) -> list[Examined]:
        """identify_crops with the evidence it decided on: per crop, the candidates retrieved and the matches of
        those verified (for evaluation and calibration tools)."""
        timings = timings or Timings()
        if not crops:
            return []
        with timings.stage("embed"):
            embeddings = self.embedder.embed(crops)
        with timings.stage("search"):
            candidates = self.candidates(embeddings)
        results = []
        for crop, cands in zip(crops, candidates):
            if self.verifies:
                with timings.stage("verify"):
                    # the fitted score compares every verified candidate: no early stop
                    verified = self.verify(crop, cands, early_stop=self.calibration is None)
            else:  # the fitted score decides from the embedding: keypoints would change nothing
                verified = [Evidence.none()] * verified_count([c.similarity for c in cands], self.verify_candidates)
            identification = replace(decide(self.products, cands, verified, self.thresholds, self.calibration,
                                            (crop.shape[1], crop.shape[0])),
                                     verified=len(verified) if self.verifies else 0)
            results.append(Examined(tuple(cands), tuple(verified), identification))
        return results

    def identify_boxes(self, frame: np.ndarray, boxes: list, timings: Timings | None = None) -> list[tuple[int, Identification]]:
        """(index into `boxes`, identification) for each box big enough to identify."""
        keep, crops = crop_boxes(frame, boxes)
        return list(zip(keep, self.identify_crops(crops, timings)))

    def identify_image(self, frame: np.ndarray, detect: bool = True, timings: Timings | None = None, tiled: bool = False,
                       from_pack_size: bool = False) -> list[Detected]:
        """Every product in a frame, each named facing once (or the whole frame as one product when `detect` is false);
        `tiled`: detected at the image's own scale (Detector.detect_tiled), for stills larger than what the detector was
        sized for, in tiles no finer than the packs it saw need (`from_pack_size`) or at every level."""
        timings = timings or Timings()
        h, w = frame.shape[:2]
        boxes = [(0.0, 0.0, float(w), float(h))]
        if detect:
            if self.detector is None:
                raise ValueError("identify_image(detect=True) needs an Identifier with a detector")
            with timings.stage("detect"):
                boxes = [d.bbox for d in (self.detector.detect_tiled(frame, from_pack_size=from_pack_size) if tiled
                                          else self.detector.detect(frame))]
        return one_per_facing([Detected(boxes[i], ident) for i, ident in self.identify_boxes(frame, boxes, timings)])


def still_tiling(shape: tuple, detector: Detector, asked: bool | None = None) -> tuple[bool, bool]:
    """(tiled, from the packs' size): identify_image's choice for a still of this shape (`shelfid detect`, the catalog
    server's detect). As `asked` (`--tiles` / `--no-tiles`, `?tiles=`: every level, or none); by default in tiles from
    the packs' size for a photo over LARGE_STILL times the detector's input (a phone's, not a camera's frame)."""
    if asked is not None:
        return asked, False
    return max(shape[:2]) > LARGE_STILL * max(detector.imgsz), True


def one_per_facing(found: list[Detected]) -> list[Detected]:
    """The detections less each named box that shows a facing already named with more inliers: a still reports a
    product once per facing (the detector can box a bottle and its label, tiles one pack at two levels)."""
    kept: list[Detected] = []
    for f in sorted((f for f in found if f.identification.product is not None), key=lambda f: -f.identification.inliers):
        if not any(same_facing(k, f) for k in kept):
            kept.append(f)
    kept_ids = {id(f) for f in kept}
    return [f for f in found if f.identification.product is None or id(f) in kept_ids]


def same_facing(a: Detected, b: Detected) -> bool:
    """Both named the same product, their boxes overlapping by FACING_OVERLAP of the smaller."""
    if a.identification.product is None or b.identification.product is None:
        return False
    if a.identification.product.product_id != b.identification.product.product_id:
        return False
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = a.bbox, b.bbox
    overlap = max(min(ax2, bx2) - max(ax1, bx1), 0.0) * max(min(ay2, by2) - max(ay1, by1), 0.0)
    smaller = min((ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1))
    return smaller > 0 and overlap >= FACING_OVERLAP * smaller


def best_image(judged: list[tuple[Evidence, int]], thresholds: Thresholds) -> tuple[Evidence, int]:
    """Of one product's images (evidence, image), the one that speaks for it: one the crop is identical to (a product
    is identical to the crop when one of its images is: another view, another edition of the pack), the best-fitting
    colours first; else the one with the most inliers."""
    passing = [pair for pair in judged if passes(pair[0], thresholds)]
    if passing:
        return min(passing, key=lambda pair: (pair[0].differing or 0.0, -pair[0].match.inliers))
    return max(judged, key=lambda pair: pair[0].match.inliers)


def judge(crop: np.ndarray, query: Features, match: Match, reference_size: tuple[int, int],
          reference: Callable[[], Reference | None], thresholds: Thresholds, colours: bool = True) -> Evidence:
    """One match as the decision's evidence: no inliers when the transform cannot be the same product; the share of
    the reference's face unlike the aligned crop where its pixels are at hand (`reference`, asked only when needed),
    and NOT_COMPARED, nothing shown alike, when the aligned crop covers too little of the face to compare: inliers on
    a corner of a pack are no proof of its colours (seen: a blurred dark bottle named as a white one on 10 inliers over
    6 % of the reference)."""
    if match.inliers and match.transform is not None and implausible(match, query.image_size, reference_size):
        return Evidence(match=replace(match, inliers=0, inlier_ratio=0.0, spread=0.0))
    if not colours or match.inliers < thresholds.min_inliers or match.transform is None:
        return Evidence(match=match)  # too few inliers to be identical whatever its colours: not compared (~5 ms a candidate)
    pixels = reference()
    if pixels is None:
        return Evidence(match=match)
    share = differing_share(crop, query.image_size, pixels, reference_size, match.transform, match.inlier_columns)
    return Evidence(match=match, differing=NOT_COMPARED if share is None else share)


def crop_boxes(frame: np.ndarray, boxes: list) -> tuple[list[int], list[np.ndarray]]:
    """Crops (views into `frame`) of the boxes 8 px or more each way, and their indices into `boxes`."""
    crops = [frame[max(int(y1), 0):int(np.ceil(y2)), max(int(x1), 0):int(np.ceil(x2))] for x1, y1, x2, y2 in boxes]
    keep = [i for i, c in enumerate(crops) if c.shape[0] >= 8 and c.shape[1] >= 8]
    return keep, [crops[i] for i in keep]
