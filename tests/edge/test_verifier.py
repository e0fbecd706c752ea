"""Keypoint verification on real photos: a known warp matches, unrelated products do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.core.config import VerifierConfig
from edge.core.images import centre_crop
from edge.core.verifier import Match, open_verifier, strongest
from edge.core.verifier.geometry import implausible, verify_geometry
from tests.conftest import REPO

DATA = REPO / "tests" / "data"
CATALOG = REPO / "samples" / "shelf-catalog"
GROCERY = DATA / "grocery-mini"


@pytest.fixture(scope="module")
def sift():
    return open_verifier(VerifierConfig(kind="sift"))


def warp(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[0.1 * w, 0.05 * h], [0.95 * w, 0], [0.85 * w, 0.9 * h], [0.05 * w, h]])
    H = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(image, H, (w, h)), H


def test_a_real_photo_matches_its_homography_warp(sift):
    photo = cv2.imread(str(CATALOG / "cha-mate-limao" / "frame0000.jpg"))
    warped, _ = warp(photo)
    match = sift.match(sift.features(warped), sift.features(photo))
    assert match.inliers >= 100 and match.inlier_ratio >= 0.7
    assert match.spread > 0.3


def test_unrelated_products_get_few_inliers(sift):
    leao = sift.features(cv2.imread(str(DATA / "queries" / "matte-leao.jpg")))
    for ref in ("cha-mate-limao/frame0000.jpg", "coca-cola-can/frame0300.jpg"):
        match = sift.match(leao, sift.features(cv2.imread(str(CATALOG / ref))))
        assert match.inliers < 15, ref


def test_same_product_beats_its_look_alike(sift):
    query = sift.features(cv2.imread(str(DATA / "queries" / "cha-mate-limao.jpg")))
    same = sift.match(query, sift.features(cv2.imread(str(CATALOG / "cha-mate-limao" / "frame0000.jpg"))))
    alike = sift.match(query, sift.features(cv2.imread(str(CATALOG / "cha-mate-natural" / "frame0000.jpg"))))
    assert same.inliers > 1.5 * alike.inliers and same.inliers >= 60


@pytest.mark.parametrize("photo", ["Bravo-Apple-Juice_002", "Arla-Medium-Fat-Milk_001"])
def test_a_shelf_of_one_pack_is_fitted_on_one_facing_not_collapsed_onto_a_point(sift, photo):
    """A store photo shows a row of the same carton: many of its keypoints match each packshot keypoint, and RANSAC
    fitted a transform that maps the crop onto a few of them (mirrored or a billionfold anisotropy, so no evidence)."""
    product = photo.rsplit("_", 1)[0]
    query = sift.features(centre_crop(cv2.imread(str(next(GROCERY.rglob(f"{photo}.jpg")))), 0.7))
    reference = strongest(sift.features(cv2.imread(str(next(GROCERY.rglob(f"{product}_Iconic.jpg"))))), 224)  # as a catalog keeps
    match = sift.match(query, reference)
    assert implausible(match, query.image_size, reference.image_size) is None
    assert match.inliers >= 10


def test_blank_image_has_no_features_and_matches_nothing(sift):
    blank = sift.features(np.full((100, 100, 3), 128, np.uint8))
    assert blank.keypoints.shape == (0, 2)
    other = sift.features(cv2.imread(str(DATA / "queries" / "matte-leao.jpg")))
    assert sift.match(blank, other) == Match.none()


def test_features_are_computed_at_the_configured_size(sift):
    photo = cv2.imread(str(REPO / "samples" / "shelf" / "frame_0000.jpg"))  # 1280 x 720
    assert sift.features(photo).image_size == (512, 288)


def test_geometry_counts_inliers_of_a_homography_among_outliers():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 200, (60, 2)).astype(np.float32)
    H = np.array([[0.9, 0.1, 5], [-0.05, 1.1, 3], [0.0002, 0.0001, 1]], np.float32)
    query = cv2.perspectiveTransform(ref[None], np.linalg.inv(H))[0]
    query[:15] = rng.uniform(0, 200, (15, 2))  # 15 outliers
    match = verify_geometry(query, ref, (200, 200), 3.0)
    assert match.matches == 60 and 43 <= match.inliers <= 47
    assert 0 < match.spread <= 1


def test_geometry_with_too_few_points():
    assert verify_geometry(np.zeros((2, 2)), np.zeros((2, 2)), (10, 10), 3.0).inliers == 0


def test_unknown_verifier_kind_is_rejected_by_the_config():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sift"):
        VerifierConfig(kind="orb")


def test_superglue_needs_user_supplied_weights():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="licence forbids shipping them"):
        VerifierConfig(kind="superpoint-superglue")
