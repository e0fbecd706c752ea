"""A second opinion: another verifier's look at a crop the first left unnamed.

The same candidates (the catalog's retrieval), matched with a learned verifier (ALIKED or DISK + LightGlue) against
each candidate's pixels that every device holds: the product's catalog image thumbnails and its field references, with
their features made on the device the first time a product is asked about. Judged and decided exactly as the first
opinion. Asked once per track, on its sharpest crop, off the frame loop (edge/daemon/second_opinions.py): on the
shelf video it named tracks blur and small crops had left to SIFT (docs/accuracy.md). In a still (`shelfid detect`,
the catalog server's detect) each detection the first left unknown is asked once (second_look).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from edge.core.appearance import Reference
from edge.core.config import Config
from edge.core.decision import Evidence, verified_count
from edge.core.identify import (
    IMAGES_PER_PRODUCT,
    REFERENCES_CACHED,
    Detected,
    Identification,
    Identifier,
    Timings,
    best_image,
    crop_boxes,
    decide,
    judge,
    same_facing,
)
from edge.core.verifier import Features, Verifier


class SecondOpinion:
    def __init__(self, identifier: Identifier, verifier: Verifier, candidates: int | None = None):
        """`candidates`: verified per crop (default: the identifier's); a still's identifier verifies deeper than a
        learned matcher can afford to (verifier.still_candidates)."""
        self.identifier, self.verifier = identifier, verifier
        self.candidates = candidates
        self._features: OrderedDict[int, list[tuple[Features, Reference]]] = OrderedDict()
        self._lock = threading.Lock()

    def identify(self, crop: np.ndarray) -> Identification:
        """Identified or unknown as the first opinion decides; an identification is `clear`: asked once, it settles
        the track."""
        first = self.identifier
        candidates = first.candidates(first.embedder.embed([crop]))[0]
        if not candidates:
            return Identification.unknown_empty()
        query = self.verifier.features(crop)
        count = verified_count([c.similarity for c in candidates], self.candidates or first.verify_candidates)
        verified = [self._evidence(crop, query, c.product_index) for c in candidates[:count]]
        identification = decide(first.products, candidates, verified, first.thresholds, crop_size=(crop.shape[1], crop.shape[0]))
        return replace(identification, clear=identification.status == "identified")

    def _evidence(self, crop: np.ndarray, query: Features, product_index: int) -> Evidence:
        references = self.references(product_index)
        if not references:
            return Evidence.none()
        thresholds = self.identifier.thresholds
        judged = [(judge(crop, query, self.verifier.match(query, features), features.image_size, lambda p=pixels: p, thresholds,
                         self.identifier.appearance), n) for n, (features, pixels) in enumerate(references)]
        return best_image(judged, thresholds)[0]

    def references(self, product_index: int) -> list[tuple[Features, Reference]]:
        """The product's first catalog image, its field references, then its later catalog images (IMAGES_PER_PRODUCT
        at most; the thumbnails the device holds), each with this verifier's features; made once, the last
        REFERENCES_CACHED products kept."""
        with self._lock:
            if product_index in self._features:
                self._features.move_to_end(product_index)
                return self._features[product_index]
        first = self.identifier
        field = [first.field.images[i].appearance for i in first.field.images_of(product_index)] if len(first.field) else []
        images = first.catalog.images_of(product_index) if product_index < len(first.catalog.products) else []
        catalog = [first.prepared(i) for i in images[:IMAGES_PER_PRODUCT]]
        pixels = [p for p in (catalog[:1] + field + catalog[1:]) if p is not None]
        made = [(self.verifier.features(p.bgr), p) for p in pixels[:IMAGES_PER_PRODUCT]]
        with self._lock:
            self._features[product_index] = made
            if len(self._features) > REFERENCES_CACHED:
                self._features.popitem(last=False)
        return made


def opinion_for(config: Config, identifier: Identifier) -> SecondOpinion | None:
    """verifier.second_opinion's for a still's identifier, asking as many candidates as a track's does
    (verifier.candidates: the still's own depth, verifier.still_candidates, is more than a learned matcher affords);
    None where the config names none."""
    second = identifier.models.second
    return SecondOpinion(identifier, second, config.verifier.candidates) if second is not None else None


def second_look(opinion: SecondOpinion | None, frame: np.ndarray, found: list[Detected], timings: Timings | None = None) -> list[Detected]:
    """A still's detections, each the first opinion left unknown asked once more, as the daemon asks a track: its answer
    replaces the first where it names a product (once per facing). `opinion` None: the detections as they are."""
    timings = timings or Timings()
    unknown = [n for n, f in enumerate(found) if f.identification.status != "identified"]
    if opinion is None or not unknown:
        return found
    keep, crops = crop_boxes(frame, [found[n].bbox for n in unknown])
    out: list[Detected | None] = list(found)
    with timings.stage("second_opinion"):
        for k, crop in zip(keep, crops):
            answer = opinion.identify(crop)
            if answer.status == "identified":
                named = replace(found[unknown[k]], identification=answer)
                # a facing already named (the first opinion's names stand): this box is another view of it, not reported
                out[unknown[k]] = None if any(o is not None and same_facing(o, named) for o in out) else named
    return [o for o in out if o is not None]
