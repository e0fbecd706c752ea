"""Evidence of difference after alignment (edge/core/appearance.py) and the geometric sanity of a match."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.core.appearance import aligned_residual, is_packshot
from edge.core.config import VerifierConfig
from edge.core.verifier import Match
from edge.core.verifier.geometry import implausible
from edge.core.verifier.sift import SIFTVerifier
from tests.conftest import REPO

NATURAL = REPO / "samples" / "shelf-catalog" / "cha-mate-natural" / "frame0000.jpg"
LIMAO = REPO / "samples" / "shelf-catalog" / "cha-mate-limao" / "frame0000.jpg"
LIMAO_QUERY = REPO / "tests" / "data" / "queries" / "cha-mate-limao.jpg"  # frame 150: another bottle, another moment
IDENTITY = np.eye(3)
MAX = 7.0  # the config's verifier.max_appearance


def residual_to_itself(image: np.ndarray, transform: np.ndarray = IDENTITY) -> float:
    size = (image.shape[1], image.shape[0])
    return aligned_residual(image, size, image, size, transform)


def test_an_image_against_itself_differs_by_nothing_even_under_other_light():
    bottle = cv2.imread(str(NATURAL))
    assert residual_to_itself(bottle) < 0.5
    size = (bottle.shape[1], bottle.shape[0])
    for gains, offset, most in (((0.9, 1.0, 1.1), 10, 2.5), ((0.8, 1.0, 1.2), 20, 5.0), ((0.7, 0.7, 0.7), 0, 1.0)):
        other_light = np.clip(bottle.astype(np.float32) * gains + offset, 0, 255).astype(np.uint8)  # white balance, exposure
        assert aligned_residual(other_light, size, bottle, size, IDENTITY) < most


def test_a_region_the_reference_does_not_have_is_noticed():
    bottle = cv2.imread(str(NATURAL))
    h, w = bottle.shape[:2]
    altered = bottle.copy()
    cv2.circle(altered, (w // 2, int(h * 0.7)), w // 8, (60, 230, 200), -1)  # a yellow-green slice where leaves were
    size = (w, h)
    assert aligned_residual(altered, size, bottle, size, IDENTITY) > MAX


def test_too_little_overlap_is_no_evidence():
    bottle = cv2.imread(str(NATURAL))
    away = np.array([[1, 0, 10 * bottle.shape[1]], [0, 1, 0], [0, 0, 1]], float)
    assert residual_to_itself(bottle, away) is None


@pytest.mark.parametrize("reference, alike", [(LIMAO, True), (NATURAL, False)])
def test_a_real_limao_bottle_is_alike_its_reference_and_unlike_its_look_alike(reference, alike):
    sift = SIFTVerifier(VerifierConfig())
    query, ref = cv2.imread(str(LIMAO_QUERY)), cv2.imread(str(reference))
    qf, rf = sift.features(query), sift.features(ref)
    match = sift.match(qf, rf)
    assert match.transform is not None and implausible(match, qf.image_size, rf.image_size) is None
    residual = aligned_residual(query, qf.image_size, ref, rf.image_size, match.transform)
    assert (residual <= MAX) == alike, residual


def test_a_packshot_on_a_plain_backdrop_is_told_from_a_shelf_crop():
    iconic = next((REPO / "tests" / "data" / "grocery-mini" / "iconic-images-and-descriptions").rglob("*.jpg"))
    assert is_packshot(cv2.imread(str(iconic)))
    assert not is_packshot(cv2.imread(str(NATURAL)))


def with_transform(h: np.ndarray) -> Match:
    return Match(100, 50, 0.5, 0.3, transform=np.asarray(h, float))


@pytest.mark.parametrize("h, why", [
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], None),
    ([[0.8, 0.05, 10], [-0.05, 0.9, 5], [0, 0, 1]], None),
    ([[-1, 0, 200], [0, 1, 0], [0, 0, 1]], "mirrored"),
    ([[5, 0, 0], [0, 0.5, 0], [0, 0, 1]], "anisotropy"),
    ([[0.05, 0, 0], [0, 0.05, 0], [0, 0, 1]], "projected area"),
])
def test_a_transform_that_cannot_be_the_same_product_seen_again_is_named(h, why):
    found = implausible(with_transform(h), (200, 400), (200, 400))
    assert (found is None) if why is None else (found is not None and found.startswith(why))


def test_a_crop_twice_as_wide_as_its_match_is_not_that_product():
    """A box over two neighbouring bottles (seen: 163 px over two 90 px bottles) matches one of them at scale 1."""
    assert implausible(with_transform([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), (360, 400), (200, 400)).startswith(
        "the crop spans 1.8× the reference's width")
    assert implausible(with_transform([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), (300, 400), (200, 400)) is None  # a loose box
