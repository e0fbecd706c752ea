"""Geometric verification of putative matches: RANSAC homography, affine for few matches."""

from __future__ import annotations

import cv2
import numpy as np

from edge.core.verifier import Match

MIN_HOMOGRAPHY = 8  # below this, a homography is under-constrained by outliers: fit a partial affine
MAX_ANISOTROPY = 3.0  # ratio of the transform's singular values: a product is not squashed threefold
MIN_PROJECTED_AREA, MAX_PROJECTED_AREA = 0.15, 8.0  # the query crop, projected, against the reference's area
MAX_EXTENT = 1.7  # the query crop, projected, spans at most this many reference widths (heights): one product


def verify_geometry(query_pts: np.ndarray, ref_pts: np.ndarray, ref_size: tuple[int, int], threshold_px: float) -> Match:
    """Inliers among matched point pairs ([M x 2] each), how much of the reference they cover, and the transform."""
    n = len(query_pts)
    if n < 3:
        return Match(matches=n, inliers=0, inlier_ratio=0.0, spread=0.0)
    q, r = query_pts.astype(np.float32), ref_pts.astype(np.float32)
    transform, mask = None, None
    if n >= MIN_HOMOGRAPHY:
        transform, mask = cv2.findHomography(q, r, cv2.USAC_MAGSAC, threshold_px, confidence=0.999, maxIters=2000)
    if mask is None:
        affine, mask = cv2.estimateAffinePartial2D(q, r, method=cv2.RANSAC, ransacReprojThreshold=threshold_px)
        transform = None if affine is None else np.vstack([affine, [0.0, 0.0, 1.0]])
    if mask is None:
        return Match(matches=n, inliers=0, inlier_ratio=0.0, spread=0.0)
    inlier = mask.ravel().astype(bool)
    count = int(inlier.sum())
    columns = (float(r[inlier, 0].min()), float(r[inlier, 0].max())) if count else None
    return Match(matches=n, inliers=count, inlier_ratio=count / n, spread=_spread(r[inlier], ref_size), transform=transform,
                 inlier_columns=columns)


def implausible(match: Match, query_size: tuple[int, int], ref_size: tuple[int, int]) -> str | None:
    """Why the transform cannot be one product seen as another image of it (None when it can).

    An identical product maps its crop onto the reference with a well-conditioned transform of
    moderate scale that covers much of the reference. Inliers packed on a shared logo give a
    near-singular, mirrored, strongly anisotropic or tiny projection instead (the Coca-Cola can
    named as the bottle on 20 inliers over 0.4–2 % of it).
    """
    h = match.transform
    if h is None or not np.all(np.isfinite(h)) or abs(h[2, 2]) < 1e-9:
        return "no transform"
    a = h[:2, :2] / h[2, 2]
    if np.linalg.det(a) <= 0:
        return "mirrored"
    s = np.linalg.svd(a, compute_uv=False)
    if s[0] / max(s[1], 1e-9) > MAX_ANISOTROPY:
        return f"anisotropy {s[0] / max(s[1], 1e-9):.1f}"
    qw, qh = query_size
    corners = np.float32([[0, 0], [qw, 0], [qw, qh], [0, qh]]).reshape(-1, 1, 2)
    projected = cv2.perspectiveTransform(corners, h.astype(np.float64)).reshape(-1, 2)
    if not cv2.isContourConvex(projected.astype(np.float32).reshape(-1, 1, 2)):
        return "folded projection"
    area = cv2.contourArea(projected.astype(np.float32)) / float(ref_size[0] * ref_size[1])
    if not MIN_PROJECTED_AREA <= area <= MAX_PROJECTED_AREA:
        return f"projected area {area:.2f} of the reference"
    # a box drawn over two neighbouring products: the match is one of them, the box is not (naming it would
    # report a product where its neighbour stands)
    extent = (projected.max(0) - projected.min(0)) / np.float64(ref_size)
    if extent.max() > MAX_EXTENT:
        return f"the crop spans {extent.max():.1f}× the reference's {'width' if extent[0] >= extent[1] else 'height'}"
    return None


def _spread(points: np.ndarray, size: tuple[int, int]) -> float:
    if len(points) < 3 or size[0] * size[1] == 0:
        return 0.0
    area = cv2.contourArea(cv2.convexHull(points.reshape(-1, 1, 2)))
    return float(min(area / (size[0] * size[1]), 1.0))
