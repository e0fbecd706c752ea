"""Can a field reference turn one product into another? Its crop checked against a catalog the way a device would
identify it (edge.core.identify): by the catalog server against the latest published version when a device uploads
it, and by the device itself when an installer confirms it on the page (before the device uses it).

The crop is embedded and searched; the product it is filed under (when the catalog has it) and the best other
retrieved products are verified (keypoints, geometry, appearance), every one of them, no early stop; then the devices'
own decision (edge.core.decision.choose) looks at them together. The upload is **disputed** when

    the decision names another product than the one it is filed under, or
    another product verifies (at least `min_inliers` inliers) with more inliers than the filed one, or
    the filed product's artwork is found (at least `min_inliers` inliers) but in other colours (over
    `max_differing` of its face): a colour variant filed as its sibling, the look-alike this whole check is for

and consistent otherwise: a crop that verifies against nothing (a new angle, a new product) is what field references
are for. A crop filed as a new product is disputed when the decision names an existing one. The verdict says which
product and with what evidence, for the manager who reviews it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.core.decision import NOT_COMPARED, choose
from edge.core.index import Candidate


@dataclass(frozen=True)
class Verdict:
    disputed: bool
    reason: str  # why it is disputed, or what the check found
    evidence: dict = field(default_factory=dict)  # per product verified: inliers, similarity, identical


def check_crop(identifier, version: int, crop: np.ndarray, product_id: str) -> Verdict:
    """The verdict on `crop` filed under `product_id` against `identifier`'s catalog (published as `version`)."""
    catalog = identifier.catalog
    ids = [p.product_id for p in identifier.products]  # the catalog's, and on a device those taught as new after them
    vector = identifier.embedder.embed([crop])
    retrieved = identifier.candidates(vector)[0]
    filed = ids.index(product_id) if product_id in ids else None
    if filed is not None and (filed >= len(catalog.products) or not len(catalog.images_of(filed))):
        filed = None  # a product row without images, or one known only by field references: no catalog image to verify
    others = [c for c in retrieved if c.product_index != filed][:max(identifier.verify_candidates, 1)]
    candidates = ([filed_candidate(catalog, vector[0], filed)] if filed is not None else []) + others
    if not candidates:
        return Verdict(False, f"nothing in catalog v{version} resembles it", {"catalog_version": version})
    verified = identifier.verify(crop, candidates, limit=len(candidates), early_stop=False)
    similarities = [c.similarity for c in candidates]
    best, identical, _ = choose(verified, similarities, identifier.thresholds, identifier.calibration)
    evidence = {"catalog_version": version, "verified": [
        {"product_id": ids[c.product_index], "similarity": round(float(c.similarity), 4), "inliers": e.match.inliers,
         "inlier_ratio": round(e.match.inlier_ratio, 3), "named": identical and i == best}
        for i, (c, e) in enumerate(zip(candidates, verified))]}
    named = ids[candidates[best].product_index] if identical else None
    filed_inliers = verified[0].match.inliers if filed is not None else 0
    rival = max(range(len(candidates)), key=lambda i: verified[i].match.inliers if candidates[i].product_index != filed else -1)
    rival_id, rival_match = ids[candidates[rival].product_index], verified[rival].match
    if named is not None and named != product_id:
        what = "filed as a new product" if filed is None else f"filed under {product_id!r} ({filed_inliers} inliers)"
        return Verdict(True, f"the crop is identified as {named!r} ({verified[best].match.inliers} inliers) in catalog v{version}, "
                             f"not as {product_id!r}: {what}", evidence)
    if filed is not None and rival_id != product_id and rival_match.inliers >= identifier.thresholds.min_inliers \
            and rival_match.inliers > filed_inliers:
        return Verdict(True, f"the crop verifies better against {rival_id!r} ({rival_match.inliers} inliers) than against "
                             f"{product_id!r}, the product it is filed under ({filed_inliers} inliers), in catalog v{version}",
                       evidence)
    filed_differing = verified[0].differing if filed is not None else None
    if filed is not None and named != product_id and filed_inliers >= identifier.thresholds.min_inliers \
            and filed_differing is not None and identifier.thresholds.max_differing < filed_differing < NOT_COMPARED:
        return Verdict(True, f"the crop shows the artwork of {product_id!r} ({filed_inliers} inliers) in other colours "
                             f"({filed_differing:.0%} of its face differs) in catalog v{version}: a colour variant of it?",
                       evidence)
    if named == product_id:
        return Verdict(False, f"identified as {product_id!r} ({filed_inliers} inliers) in catalog v{version}", evidence)
    return Verdict(False, f"no other product of catalog v{version} verifies better than {product_id!r}" if filed is not None
                   else f"no product of catalog v{version} is identified in it", evidence)


def filed_candidate(catalog, vector: np.ndarray, product_index: int) -> Candidate:
    """The filed product as a candidate: its image nearest the crop's embedding, and that similarity."""
    images = catalog.images_of(product_index)
    sims = np.asarray(catalog.embeddings[images], np.float32) @ np.asarray(vector, np.float32)
    best = int(np.argmax(sims))
    return Candidate(product_index, int(images[best]), float(sims[best]))
