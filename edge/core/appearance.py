"""After alignment, does the query show the reference's colours? Evidence of difference, not of agreement.

Keypoints count what two images share; look-alikes of one line share almost
everything: the same artwork in another colourway (a blue pack and its orange
twin: SIFT sees grey), or one region of print (Chá Mate Limão's lime slices
where Natural has leaves). Here the query crop is warped onto the reference
with the verifier's transform, white-balanced, and compared in chroma (Lab a*,
b*; both blurred alike: chroma survives blur where edges do not). The score is
the share of the reference's face (its pixels less a plain backdrop, or less
the sides of a field crop) whose colour the query does not show within a few
pixels: a promo sticker, a price label or glare over a corner differs over a
small share, another colourway over most of the face.

The white balance is what keeps a colourway visible: gains per channel matched
over the reference's near-grey print when it has enough (a pack's white or
grey areas are neutral under any light), else over the whole face with the
gains' colour bounded (a lamp's cast is corrected; blue is not turned orange).

Only the part of the face between the inliers' leftmost and rightmost points is
compared: the plane the transform aligns (a carton's side panel is another).

The reference pixels are the thumbnail (160 px) of the catalog image the crop
aligns with, or the field reference's crop (edge.core.identify).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BLUR_SIGMA = 2.0  # thumbnail pixels
SIDE_MARGIN = 0.12  # share of a field crop's width on each side that shows its shelf neighbours, not the product
PLAIN_DELTA_E, PLAIN_SHARE = 12.0, 0.7  # a packshot: this share of its border within this Lab distance of one colour


def is_packshot(image_bgr: np.ndarray) -> bool:
    """A product on a plain backdrop: most of the image's border is one colour (the product may touch an edge).

    Measured: every Grocery Store Dataset iconic image 0.87–1.0 of its border within ΔE 12 of the border's median
    colour; shelf-video crops 0.11–0.46.
    """
    return _backdrop(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)) is not None


def _backdrop(lab: np.ndarray) -> np.ndarray | None:
    """The Lab colour of a plain backdrop, or None when the image's border is not mostly one colour."""
    border = np.concatenate([lab[:2].reshape(-1, 3), lab[-2:].reshape(-1, 3), lab[:, :2].reshape(-1, 3), lab[:, -2:].reshape(-1, 3)])
    colour = np.median(border, axis=0)
    return colour if np.mean(np.linalg.norm(border - colour, axis=1) < PLAIN_DELTA_E) >= PLAIN_SHARE else None


def _scale(size_from: tuple[int, int], size_to: tuple[int, int]) -> np.ndarray:
    return np.diag([size_to[0] / max(size_from[0], 1), size_to[1] / max(size_from[1], 1), 1.0])


DIFFER_LAB = 12.0  # chroma distance (Lab a*b*, blurred) above which a pixel of the face differs
NEUTRAL_CHROMA = 10.0  # reference pixels this close to grey are the white balance's neutrals
MIN_NEUTRAL = 0.04  # share of the compared face that must be neutral for them to set the white balance
ALIGN_SLACK = 7  # thumbnail pixels (of 160) the aligned query may be off by
GAIN_RANGE = (0.8, 1.25)  # a channel's gain over the mean gain: a light's colour cast, not a different colourway


@dataclass(frozen=True)
class Reference:
    """A reference thumbnail and what the comparison derives from it alone: made once per product, not per crop."""

    bgr: np.ndarray
    face: np.ndarray  # face_mask
    chroma: np.ndarray  # Lab a*, b*, blurred, float32
    neutral: np.ndarray  # near-grey, neither black nor blown out: the white balance's neutrals


def prepare(reference_bgr: np.ndarray) -> Reference:
    lab = cv2.cvtColor(reference_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    neutral = (chroma < NEUTRAL_CHROMA) & (lab[..., 0] > 40) & (lab[..., 0] < 245)
    return Reference(reference_bgr, _face(lab), cv2.GaussianBlur(lab[..., 1:], (0, 0), BLUR_SIGMA), neutral)


def face_mask(reference_bgr: np.ndarray) -> np.ndarray:
    """The reference's product pixels: all but its plain backdrop (a packshot), or all but the sides (a field crop,
    whose sides show the shelf neighbours)."""
    return _face(cv2.cvtColor(reference_bgr, cv2.COLOR_BGR2LAB).astype(np.float32))


def _face(lab: np.ndarray) -> np.ndarray:
    backdrop = _backdrop(lab)
    if backdrop is not None:
        # the backdrop is what is near its colour AND joined to the border: a white pack's white print stays face
        near = (np.linalg.norm(lab - backdrop, axis=2) < PLAIN_DELTA_E).astype(np.uint8)
        _, regions = cv2.connectedComponents(near, connectivity=4)
        touching = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
        backdrop_mask = np.isin(regions, touching[touching > 0]) & (near > 0)
        return cv2.morphologyEx((~backdrop_mask).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    mask = np.ones(lab.shape[:2], bool)
    margin = round(lab.shape[1] * SIDE_MARGIN)
    mask[:, :margin] = mask[:, lab.shape[1] - margin:] = False
    return mask


def white_balanced(query_bgr: np.ndarray, reference: Reference, compared: np.ndarray) -> np.ndarray:
    """The query with per-channel gains that match the reference: over the reference's near-grey pixels where it has
    enough, else over the whole face with the gains' colour bounded (a colour cast is corrected, a colourway stays)."""
    neutral = compared & reference.neutral
    over = neutral if neutral.sum() >= max(MIN_NEUTRAL * compared.sum(), 30) else compared
    gains = reference.bgr[over].reshape(-1, 3).mean(0) / (query_bgr[over].reshape(-1, 3).mean(0) + 1e-3)
    level = gains.mean()
    gains = np.clip(gains / level, *GAIN_RANGE) * level
    return np.clip(query_bgr.astype(np.float32) * gains, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Comparison:
    """The aligned, white-balanced query over the reference's thumbnail, and where its colours differ."""
    query: np.ndarray  # BGR, the reference thumbnail's size; black where the query does not reach
    compared: np.ndarray  # bool: the reference's face the query covers (between the inliers' columns)
    differs: np.ndarray  # bool: compared pixels whose colour the query does not show

    @property
    def share(self) -> float:
        return float(self.differs.sum() / max(self.compared.sum(), 1))


def differing_share(query_bgr: np.ndarray, query_feature_size: tuple[int, int], reference: Reference,
                    reference_feature_size: tuple[int, int], transform: np.ndarray,
                    columns: tuple[float, float] | None = None) -> float | None:
    """Share of the reference's face (0–1) whose colour the aligned, white-balanced query does not show; None when
    too little of the face is covered. A sticker or glare over a corner differs over a small share, another
    colourway of the same artwork over most of it.

    `columns`: the span of the reference (left and right x, its feature pixels) the transform is known to hold
    over, the inliers'; only the face between them is compared. One transform aligns one plane: a carton's side
    panel in a packshot rendered at an angle, or a can's far side, lies on another and shows shelf or a neighbour
    once warped (measured on the Grocery Store Dataset: the right product's face differed over 11 % at the median,
    its side panel and the shelf beside it; the packs of one line still differ where they are compared)."""
    comparison = compare(query_bgr, query_feature_size, reference, reference_feature_size, transform, columns)
    return None if comparison is None else comparison.share


def compare(query_bgr: np.ndarray, query_feature_size: tuple[int, int], reference: Reference,
            reference_feature_size: tuple[int, int], transform: np.ndarray,
            columns: tuple[float, float] | None = None) -> Comparison | None:
    """differing_share's comparison, pixel by pixel (None: too little of the face covered)."""
    rh, rw = reference.bgr.shape[:2]
    qh, qw = query_bgr.shape[:2]
    m = _scale(reference_feature_size, (rw, rh)) @ transform @ _scale((qw, qh), query_feature_size)
    warped = cv2.warpPerspective(query_bgr, m, (rw, rh), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT)
    valid = cv2.warpPerspective(np.ones((qh, qw), np.uint8), m, (rw, rh), flags=cv2.INTER_NEAREST) > 0
    compared = cv2.erode((valid & reference.face).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # warp edges blur into black
    if columns is not None:
        left, right = (x * rw / max(reference_feature_size[0], 1) for x in columns)
        compared[:, :max(int(np.floor(left)), 0)] = False
        compared[:, int(np.ceil(right)) + 1:] = False
    if compared.sum() < 0.3 * reference.face.sum() or compared.sum() < 100:
        return None
    warped = white_balanced(warped, reference, compared)
    q = cv2.GaussianBlur(cv2.cvtColor(warped, cv2.COLOR_BGR2LAB).astype(np.float32)[..., 1:], (0, 0), BLUR_SIGMA)
    r = reference.chroma
    # tolerant of a few pixels of misalignment (a homography on a bent or tilted pack): a reference pixel differs
    # only by how far its colour lies outside the colours the query shows around the same place
    kernel = np.ones((ALIGN_SLACK, ALIGN_SLACK), np.uint8)
    below = np.maximum(cv2.erode(q, kernel) - r, 0)
    above = np.maximum(r - cv2.dilate(q, kernel), 0)
    distance = np.linalg.norm(below + above, axis=2)
    return Comparison(warped, compared, compared & (distance > DIFFER_LAB))


def comparison_image(reference: Reference, comparison: Comparison | None, scale: int = 2) -> np.ndarray:
    """Side by side, for people: the reference, the aligned query, and the face compared (grey) with where its
    colours differ (red); the last two blank when nothing could be compared."""
    h, w = reference.bgr.shape[:2]
    query = np.zeros_like(reference.bgr) if comparison is None else comparison.query
    marks = np.zeros_like(reference.bgr)
    if comparison is not None:
        marks[comparison.compared] = (90, 90, 90)
        marks[comparison.differs] = (0, 0, 255)
    sheet = np.hstack([reference.bgr, query, marks])
    return cv2.resize(sheet, (3 * w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
