"""The identification engine: detect → embed → search → verify → decide.

Shared by `shelfid detect` (still images), the evaluation tool and the daemon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from edge.core.appearance import differing_share
from edge.core.catalog import Catalog, Product, load_catalog
from edge.core.config import Config, IndexConfig, VerifierConfig
from edge.core.decision import Calibration, Thresholds, choose, is_clear, load_calibration, verified_count
from edge.core.errors import CatalogError, ShelfIDError
from edge.core.index import Candidate, CatalogIndex, collapse_to_products, search_one_query_at_a_time
from edge.core.verifier import Features, Match, Verifier, open_verifier
from edge.core.verifier.geometry import implausible
from models.backends import BackendOptions
from models.detector import Detector, DetectorOptions
from models.embedder import Embedder
from models.runtime import WEIGHTS_DIR, open_detector, open_embedder

log = logging.getLogger(__name__)
IMAGES_PER_PRODUCT = 3  # catalog images of one product tried by the verifier
THUMBNAILS_CACHED = 512  # decoded reference thumbnails kept (~40 kB each)
VARIANTS_SEARCHED = 10  # images searched per wanted product when the catalog holds retrieval variants


@dataclass(frozen=True)
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

    @staticmethod
    def unknown_empty() -> Identification:
        return Identification("unknown", None, None, 0.0, 0, 0.0, 0.0, 0)


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
    matches: tuple[Match, ...]  # matches[i] belongs to candidates[i]; the rest were not verified
    identification: Identification


@dataclass(frozen=True)
class Detected:
    bbox: tuple[float, float, float, float]
    identification: Identification


def decide(catalog: Catalog, candidates: list[Candidate], matches: list[Match], thresholds: Thresholds,
           calibration: Calibration | None = None) -> Identification:
    """Identical when the decision rule accepts the best verified candidate; else unknown with a guess."""
    if not candidates:
        return Identification.unknown_empty()
    # matches[i] belongs to candidates[i]; candidates past len(matches) were not verified
    best, identical, confidence = choose(matches, [c.similarity for c in candidates], thresholds, calibration)
    cand, match = candidates[best], matches[best] if matches else Match.none()
    product = catalog.products[cand.product_index]
    ranked = tuple(c.product_index for c in candidates)
    scores = (cand.similarity, match.inliers, match.inlier_ratio, match.spread, len(matches), ranked, confidence)
    if identical:
        return Identification("identified", product, None, *scores, clear=is_clear(match, thresholds))
    return Identification("unknown", None, product, *scores)


class Identifier:
    def __init__(self, embedder: Embedder, verifier: Verifier, catalog: Catalog, index: CatalogIndex,
                 top_k: int = 5, verify_candidates: int = 3, thresholds: Thresholds | None = None,
                 detector: Detector | None = None, calibration: Calibration | None = None, appearance: bool = True):
        self.embedder, self.verifier, self.catalog, self.index = embedder, verifier, catalog, index
        self.top_k, self.verify_candidates, self.detector = top_k, verify_candidates, detector
        self.thresholds = thresholds or Thresholds.of(VerifierConfig())
        self.calibration = calibration
        # a fitted decision that scores the embedding alone: keypoints would cost time and change nothing
        self.verifies = calibration is None or calibration.uses_keypoints
        self.appearance = appearance
        # decoded once, a few at a time; a plain dict, not lru_cache on a bound method: that is a reference cycle, and an
        # identifier replaced by a catalog switch then kept its catalog's memory maps (5 open files) until the cyclic
        # garbage collector ran (the soak saw open files grow 19 -> 39 in an hour of switches)
        self._thumbnails: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._thumbnails_lock = threading.Lock()  # the daemon identifies on several threads

    def candidates(self, embeddings: np.ndarray) -> list[list[Candidate]]:
        if not self.catalog.image_count:
            return [[] for _ in embeddings]
        per_product = max(IMAGES_PER_PRODUCT, VARIANTS_SEARCHED if self.catalog.info.get("variants") else 0)
        k_images = min(self.catalog.image_count, self.top_k * per_product)
        sims, ids = self.index.search(embeddings, k_images)
        return [collapse_to_products(s, i, self.catalog.image_product, self.top_k) for s, i in zip(sims, ids)]

    def verify(self, crop: np.ndarray, candidates: list[Candidate], limit: int | None = None, early_stop: bool = True) -> list[Match]:
        """Best match per candidate product, in candidate order, checked for plausible geometry and for
        appearance after alignment; stops early on a clear winner. `limit`: candidates verified (default: the
        configured number and any that tie with the last of them)."""
        query = None
        matches = []
        limit = limit or verified_count([c.similarity for c in candidates], self.verify_candidates)
        for cand in candidates[:limit]:
            query = query or self.verifier.features(crop)
            first = self.catalog.original_of(cand.image_index)  # a retrieval variant verifies as its original
            images = [first] + [i for i in self.catalog.images_of(cand.product_index) if i != first]
            best, image = max(((self.verifier.match(query, self.catalog.features(i)), i) for i in images[:IMAGES_PER_PRODUCT]),
                              key=lambda pair: pair[0].inliers)
            best = self._checked(crop, query, best, image, cand.product_index)
            matches.append(best)
            if early_stop and is_clear(best, self.thresholds):
                break
        return matches

    def _checked(self, crop: np.ndarray, query: Features, match: Match, image: int, product_index: int) -> Match:
        """No inliers when the transform cannot be the same product; the share of the reference's face unlike the
        aligned query where its pixels are at hand (the product's first image)."""
        if match.inliers == 0 or match.transform is None:
            return match
        reference_size = self.catalog.feature_size(image)
        if implausible(match, query.image_size, reference_size):
            return replace(match, inliers=0, inlier_ratio=0.0, spread=0.0)
        if not self.appearance or image != self.catalog.images_of(product_index)[0]:
            return match  # the thumbnail shows the product's first image only
        reference = self._thumbnail(product_index)
        if reference is None:
            return match
        return replace(match, differing=differing_share(crop, query.image_size, reference, reference_size, match.transform))

    def _thumbnail(self, product_index: int) -> np.ndarray | None:
        """The product's first catalog image, small (the catalog's thumbnail); the last THUMBNAILS_CACHED stay decoded."""
        with self._thumbnails_lock:
            if product_index in self._thumbnails:
                self._thumbnails.move_to_end(product_index)
                return self._thumbnails[product_index]
        jpeg = self.catalog.thumbnail(self.catalog.products[product_index].product_id)
        image = None if jpeg is None else cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        with self._thumbnails_lock:
            self._thumbnails[product_index] = image
            if len(self._thumbnails) > THUMBNAILS_CACHED:
                self._thumbnails.popitem(last=False)
        return image

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
                    matches = self.verify(crop, cands, early_stop=self.calibration is None)
            else:  # the fitted score decides from the embedding: keypoints would change nothing
                matches = [Match.none()] * verified_count([c.similarity for c in cands], self.verify_candidates)
            verified = len(matches) if self.verifies else 0
            identification = replace(decide(self.catalog, cands, matches, self.thresholds, self.calibration), verified=verified)
            results.append(Examined(tuple(cands), tuple(matches), identification))
        return results

    def identify_boxes(self, frame: np.ndarray, boxes: list, timings: Timings | None = None) -> list[tuple[int, Identification]]:
        """(index into `boxes`, identification) for each box big enough to identify."""
        keep, crops = crop_boxes(frame, boxes)
        return list(zip(keep, self.identify_crops(crops, timings)))

    def identify_image(self, frame: np.ndarray, detect: bool = True, timings: Timings | None = None, tiled: bool = False) -> list[Detected]:
        """Every product in a frame (or the whole frame as one product when `detect` is false); `tiled`: detected at the
        image's own scale (Detector.detect_tiled), for stills larger than what the detector was sized for."""
        timings = timings or Timings()
        h, w = frame.shape[:2]
        boxes = [(0.0, 0.0, float(w), float(h))]
        if detect:
            if self.detector is None:
                raise ValueError("identify_image(detect=True) needs an Identifier with a detector")
            with timings.stage("detect"):
                boxes = [d.bbox for d in (self.detector.detect_tiled(frame) if tiled else self.detector.detect(frame))]
        return [Detected(boxes[i], ident) for i, ident in self.identify_boxes(frame, boxes, timings)]


def crop_boxes(frame: np.ndarray, boxes: list) -> tuple[list[int], list[np.ndarray]]:
    """Crops (views into `frame`) of the boxes 8 px or more each way, and their indices into `boxes`."""
    crops = [frame[max(int(y1), 0):int(np.ceil(y2)), max(int(x1), 0):int(np.ceil(x2))] for x1, y1, x2, y2 in boxes]
    keep = [i for i, c in enumerate(crops) if c.shape[0] >= 8 and c.shape[1] >= 8]
    return keep, [crops[i] for i in keep]


def backend_options(config: Config) -> BackendOptions:
    m = config.models
    return BackendOptions(threads=m.threads, precision=m.precision, engine_cache_dir=m.engine_cache_dir, device=m.device)


def open_models(config: Config) -> tuple[Detector, Embedder, Verifier]:
    """The detector, embedder and verifier a config names (bundled defaults where it names none)."""
    m = config.models
    options = backend_options(config)
    detector = open_detector(m.detector, m.backend, options, DetectorOptions(
        m.conf_threshold, m.iou_threshold, tuple(m.classes) if m.classes else None, m.class_agnostic, m.max_detections))
    embedder = open_embedder(m.embedder, m.backend, options)
    return detector, embedder, open_verifier(config.verifier)


def load_identifier(config: Config, catalog_dir: Path) -> Identifier:
    search_one_query_at_a_time()
    detector, embedder, verifier = open_models(config)
    catalog = load_catalog(catalog_dir, embedder.model_id, verifier.id)
    return identifier_for(config, catalog, embedder, verifier, detector, calibration_for(config, verifier))


def calibration_for(config: Config, verifier: Verifier) -> Calibration | None:
    """The calibrated decision for this verifier (config file or the bundled one), or None for plain thresholds."""
    v = config.verifier
    if v.decision == "thresholds":
        return None
    path = v.calibration or WEIGHTS_DIR / f"decision-{verifier.id}.json"
    if v.calibration is None and not path.is_file():
        # the default decision with a verifier nothing was fitted for: the verified thresholds, said once
        log.warning("no bundled decision calibration for verifier %s: deciding by the verified thresholds "
                    "(tools/calibrate.py fits one; verifier.decision: thresholds silences this)", verifier.id)
        return None
    if not path.is_file():
        raise ShelfIDError(f"verifier.calibration {path} is absent: run tools/calibrate.py, or set verifier.decision: thresholds")
    calibration = load_calibration(path)
    if calibration.verifier_id != verifier.id:
        raise ShelfIDError(f"{path}: calibrated for verifier {calibration.verifier_id}, this device runs {verifier.id}")
    return calibration


def catalog_index(catalog: Catalog, ix: IndexConfig) -> CatalogIndex:
    """The catalog's search index as the config asks for it (its stored index, or one built at load)."""
    try:
        return CatalogIndex(catalog.embeddings, ix.kind, ix.lsh_bits, ix.rerank, catalog.stored_index, ix.nprobe)
    except ValueError as exc:  # a stored index that does not open is a broken catalog, said with its path
        raise CatalogError(f"{catalog.path}: {exc}") from None


def identifier_for(config: Config, catalog: Catalog, embedder: Embedder, verifier: Verifier, detector: Detector | None,
                   calibration: Calibration | None = None) -> Identifier:
    ix, v = config.index, config.verifier
    return Identifier(embedder, verifier, catalog, catalog_index(catalog, ix), ix.top_k, v.candidates,
                      Thresholds.of(v), detector, calibration,
                      appearance=v.max_differing is not None)


def to_record(found: Detected) -> dict:
    """One detection as `shelfid detect --json` prints it; an unknown's best guess is never its product_id."""
    ident = found.identification
    record = {"bbox": [round(v, 1) for v in found.bbox], "status": ident.status}
    if ident.product is not None:
        record |= {"product_id": ident.product.product_id, "sku": ident.product.sku, "name": ident.product.name}
    elif ident.guess is not None:
        record["guess"] = {"product_id": ident.guess.product_id, "sku": ident.guess.sku, "name": ident.guess.name}
    return record | {"similarity": round(ident.similarity, 4), "inliers": ident.inliers,
                     "inlier_ratio": round(ident.inlier_ratio, 3), "spread": round(ident.spread, 3), "verified": ident.verified,
                     "confidence": round(ident.confidence, 3)}


def label(found: Detected) -> str:
    ident = found.identification
    if ident.product is not None:
        return f"{ident.product.name} ({ident.inliers})"
    return "unknown" if ident.guess is None else f"unknown ~{ident.guess.name}?"
