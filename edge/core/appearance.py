"""After alignment, does the query look like the reference everywhere? Evidence of difference, not of agreement.

Keypoints count what two images share; look-alikes of one brand share almost
everything (Chá Mate Natural and + Limão differ by the lime slices on one part
of the label), so more matches cannot tell them apart. Here the query crop is
warped onto the reference with the verifier's transform and compared region by
region, in chroma (Lab a*, b*): both blurred alike (motion blur and focus
differ; chroma survives blur where edges do not), the query's channels matched
to the reference's over the overlap (lighting and white balance differ between
shelf and catalog). A region the reference does not have (yellow-green limes
where there were dark leaves) differs in chroma; the score is the worst
region's mean difference, in Lab units.

Measured on our labelled shelf frames (SIFT, ≥ 20 inliers): a Chá Mate against
its own reference 1.0–4.7 in most crops, against its look-alike 6.7–22.

The reference pixels are the catalog's product thumbnail (its first image's
crop, 160 px), so the check needs no change to the catalog format; a match on
another image of the product, or on a packshot (a plain backdrop: studio
colours do not compare with a store's), is not checked (None).
"""

from __future__ import annotations

import cv2
import numpy as np

GRID = (4, 6)  # cells across, down: products on shelves are mostly taller than wide
MIN_VALID = 0.5  # share of a cell the warped query must cover for the cell to count
BLUR_SIGMA = 2.0  # thumbnail pixels
SIDE_MARGIN = 0.12
RANK = 1  # the worst cell (np.sort(cells)[-RANK]). The second-worst (2) was meant to forgive one cell of glare, but the
# lime slices that tell Chá Mate Limão from Natural fill one or two cells: measured (tools/evaluate_transfer.py,
# shelf-video), a Limão box against Natural's reference fell from 7.6 to 6.3, under the bound 7, and was named Natural
PLAIN_DELTA_E, PLAIN_SHARE = 12.0, 0.7  # a packshot: this share of its border within this Lab distance of one colour


def is_packshot(image_bgr: np.ndarray) -> bool:
    """A product on a plain backdrop: most of the image's border is one colour (the product may touch an edge).

    Measured: every Grocery Store Dataset iconic image 0.87–1.0 of its border within ΔE 12 of the border's median
    colour; shelf-video crops 0.11–0.46.
    """
    lab = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    border = np.concatenate([lab[:2].reshape(-1, 3), lab[-2:].reshape(-1, 3), lab[:, :2].reshape(-1, 3), lab[:, -2:].reshape(-1, 3)])
    near = np.linalg.norm(border - np.median(border, axis=0), axis=1) < PLAIN_DELTA_E
    return float(near.mean()) >= PLAIN_SHARE


def _scale(size_from: tuple[int, int], size_to: tuple[int, int]) -> np.ndarray:
    return np.diag([size_to[0] / max(size_from[0], 1), size_to[1] / max(size_from[1], 1), 1.0])


def aligned_residual(query_bgr: np.ndarray, query_feature_size: tuple[int, int], reference_bgr: np.ndarray,
                     reference_feature_size: tuple[int, int], transform: np.ndarray) -> float | None:
    """Worst cell's chroma difference between the aligned query and the reference (0 = alike); None when too little overlaps.

    transform: [3 x 3] query feature pixels → reference feature pixels (the verifier's inputs). Meant for
    references photographed in the field (see is_packshot): against studio packshots even identical products
    differ (measured on the Grocery Store Dataset: 7–22, look-alikes alike).
    """
    rh, rw = reference_bgr.shape[:2]
    qh, qw = query_bgr.shape[:2]
    to_thumbnail = _scale(reference_feature_size, (rw, rh))
    m = to_thumbnail @ transform @ _scale((qw, qh), query_feature_size)
    warped = cv2.warpPerspective(query_bgr, m, (rw, rh), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)
    valid = cv2.warpPerspective(np.ones((qh, qw), np.uint8), m, (rw, rh), flags=cv2.INTER_NEAREST) > 0
    if valid.mean() < 0.3:
        return None
    # white balance first (gains per BGR channel, matched over the overlap): Lab's chroma is not linear in them
    gains = reference_bgr[valid].reshape(-1, 3).mean(0) / (warped[valid].reshape(-1, 3).mean(0) + 1e-3)
    warped = np.clip(warped.astype(np.float32) * gains, 0, 255).astype(np.uint8)
    q = cv2.GaussianBlur(cv2.cvtColor(warped, cv2.COLOR_BGR2LAB).astype(np.float32)[..., 1:], (0, 0), BLUR_SIGMA)
    r = cv2.GaussianBlur(cv2.cvtColor(reference_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)[..., 1:], (0, 0), BLUR_SIGMA)
    for c in range(2):  # the query's white balance matched to the reference's over the overlap
        qv, rv = q[..., c][valid], r[..., c][valid]
        q[..., c] = (q[..., c] - qv.mean()) / (qv.std() + 1e-3) * (rv.std() + 1e-3) + rv.mean()
    difference = np.abs(q - r).mean(axis=2)
    cells = []
    margin = round(rw * SIDE_MARGIN)  # a reference crop's sides show its shelf neighbours, not the product
    for ys in np.array_split(np.arange(rh), GRID[1]):
        for xs in np.array_split(np.arange(margin, rw - margin), GRID[0]):
            cell = np.ix_(ys, xs)
            mask = valid[cell]
            if mask.mean() >= MIN_VALID:
                cells.append(float(difference[cell][mask].mean()))
    return float(np.sort(cells)[-RANK]) if len(cells) >= 4 else None
