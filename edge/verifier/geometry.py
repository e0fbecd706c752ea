"""Geometric verification of putative matches: RANSAC homography, affine for few matches."""

from __future__ import annotations

import cv2
import numpy as np

from edge.verifier import Match

MIN_HOMOGRAPHY = 8  # below this, a homography is under-constrained by outliers: fit a partial affine


def verify_geometry(query_pts: np.ndarray, ref_pts: np.ndarray, ref_size: tuple[int, int], threshold_px: float) -> Match:
    """Inliers among matched point pairs ([M x 2] each), and how much of the reference they cover."""
    n = len(query_pts)
    if n < 3:
        return Match(n, 0, 0.0, 0.0)
    q, r = query_pts.astype(np.float32), ref_pts.astype(np.float32)
    mask = None
    if n >= MIN_HOMOGRAPHY:
        _, mask = cv2.findHomography(q, r, cv2.USAC_MAGSAC, threshold_px, confidence=0.999, maxIters=2000)
    if mask is None:
        _, mask = cv2.estimateAffinePartial2D(q, r, method=cv2.RANSAC, ransacReprojThreshold=threshold_px)
    if mask is None:
        return Match(n, 0, 0.0, 0.0)
    inlier = mask.ravel().astype(bool)
    count = int(inlier.sum())
    return Match(n, count, count / n, _spread(r[inlier], ref_size))


def _spread(points: np.ndarray, size: tuple[int, int]) -> float:
    if len(points) < 3 or size[0] * size[1] == 0:
        return 0.0
    area = cv2.contourArea(cv2.convexHull(points.reshape(-1, 1, 2)))
    return float(min(area / (size[0] * size[1]), 1.0))
