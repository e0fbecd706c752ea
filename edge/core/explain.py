"""Why the colours refused a candidate, drawn for people: the reference, the crop aligned onto it, and where they differ.

`shelfid detect --explain` and `tools/evaluate_transfer.py --differing-images` write these; nothing at run time reads them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.core.appearance import compare, comparison_image
from edge.core.decision import COLOURS_DIFFER, PARTLY_VISIBLE, Evidence
from edge.core.identify import Detected, Identifier, crop_boxes


def explained(identifier: Identifier, crop: np.ndarray, evidence: Evidence, caption: list[str]) -> np.ndarray | None:
    """The colour comparison behind one verified candidate's evidence under `caption` (a line per entry, short and
    ASCII: OpenCV draws no other; the share that differs added); None when it has no transform or the device holds no
    pixels of the image it matched."""
    reference = None if evidence.image is None else identifier.reference_pixels(evidence.image)
    if reference is None or evidence.match.transform is None or evidence.query_size is None:
        return None
    comparison = compare(crop, evidence.query_size, reference, identifier.feature_size(evidence.image), evidence.match.transform,
                         evidence.match.inlier_columns)
    image = comparison_image(reference, comparison)
    lines = [*caption, f"{evidence.match.inliers} inliers, " + ("too little face to compare" if comparison is None
                                                              else f"{comparison.share:.1%} differs")]
    banner = np.full((16 * len(lines) + 4, image.shape[1], 3), 255, np.uint8)
    for n, line in enumerate(lines):
        cv2.putText(banner, line, (4, 14 + 16 * n), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([banner, image])


EXPLAINED = (COLOURS_DIFFER, PARTLY_VISIBLE)  # the reasons a picture can show: keypoints agreed, colours refused


def explain_unknowns(identifier: Identifier, frame: np.ndarray, found: list[Detected], stem: Path) -> list[Path]:
    """For each detection left unknown on its colours (or with too little of its face shown to compare them), the
    comparison with the candidate whose keypoints agreed best, written as <stem>-<n>.png (n: the detection's index)."""
    written = []
    for n, detected in enumerate(found):
        reason = detected.identification.reason
        if reason not in EXPLAINED:
            continue
        _, [crop] = crop_boxes(frame, [detected.bbox])
        examined = identifier.examine([crop])[0]
        best = max(range(len(examined.evidence)), key=lambda i: examined.evidence[i].match.inliers)
        product = identifier.products[examined.candidates[best].product_index]
        image = explained(identifier, crop, examined.evidence[best], [f"detection {n}: {reason}", f"best: {product.product_id}"])
        if image is not None:
            path = stem.with_name(f"{stem.name}-{n}.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image)
            written.append(path)
    return written
