"""Evidence of difference after alignment (edge/core/appearance.py) and the geometric sanity of a match."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.core.appearance import compare, comparison_image, differing_share, face_mask, is_packshot, prepare
from edge.core.config import DecisionConfig, VerifierConfig
from edge.core.verifier import Match
from edge.core.verifier.geometry import implausible, verify_geometry
from edge.core.verifier.sift import SIFTVerifier
from tests.conftest import REPO

NATURAL = REPO / "samples" / "shelf-catalog" / "cha-mate-natural" / "frame0000.jpg"
LIMAO = REPO / "samples" / "shelf-catalog" / "cha-mate-limao" / "frame0000.jpg"
LIMAO_QUERY = REPO / "tests" / "data" / "queries" / "cha-mate-limao.jpg"  # frame 150: another bottle, another moment
ICONIC = REPO / "tests" / "data" / "grocery-mini" / "iconic-images-and-descriptions"
IDENTITY = np.eye(3)
MAX = DecisionConfig().max_differing


def differing_from_itself(query: np.ndarray, reference: np.ndarray, transform: np.ndarray = IDENTITY) -> float | None:
    size = (reference.shape[1], reference.shape[0])
    return differing_share(query, size, prepare(reference), size, transform)


def packshot() -> np.ndarray:
    return cv2.imread(str(next(ICONIC.rglob("*.jpg"))))


@pytest.mark.parametrize("image", [lambda: cv2.imread(str(NATURAL)), packshot], ids=["field photo", "packshot"])
def test_an_image_against_itself_differs_nowhere_even_under_other_light(image):
    reference = image()
    assert differing_from_itself(reference, reference) == 0.0
    for gains, offset in (((0.9, 1.0, 1.1), 10), ((0.8, 1.0, 1.2), 20), ((0.7, 0.7, 0.7), 0)):  # white balance, exposure
        other_light = np.clip(reference.astype(np.float32) * gains + offset, 0, 255).astype(np.uint8)
        assert differing_from_itself(other_light, reference) < 0.05


def test_another_colourway_of_the_same_artwork_differs_over_most_of_the_face():
    reference = packshot()
    hsv = cv2.cvtColor(reference, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + 60) % 180  # hue turned by 120°: the artwork stays, the colours do not
    twin = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    assert differing_from_itself(twin, reference) > 0.4
    swapped = reference[..., ::-1].copy()  # red and blue swapped
    assert differing_from_itself(swapped, reference) > 0.3


def test_a_sticker_over_a_corner_differs_over_about_its_own_share():
    reference = packshot()
    face = face_mask(reference)
    ys, xs = np.nonzero(face)
    stickered = reference.copy()
    x1, y1 = int(np.percentile(xs, 55)), int(np.percentile(ys, 70))  # a bright label over the lower right of the pack
    stickered[y1:, x1:][face[y1:, x1:]] = (40, 40, 230)
    share = differing_from_itself(stickered, reference)
    covered = face[y1:, x1:].sum() / face.sum()
    assert 0.5 * covered < share < covered + 0.05 and covered < 0.25


def test_the_comparison_drawn_for_people_marks_the_sticker_and_little_else():
    reference = packshot()
    face = face_mask(reference)
    stickered = reference.copy()
    h, w = face.shape
    stickered[h // 2:h // 2 + h // 8, :][face[h // 2:h // 2 + h // 8, :]] = (40, 40, 230)  # a red banner across the pack
    size = (w, h)
    prepared = prepare(reference)
    comparison = compare(stickered, size, prepared, size, IDENTITY)
    assert comparison.share == differing_share(stickered, size, prepared, size, IDENTITY)
    banner = np.zeros(face.shape, bool)
    banner[h // 2:h // 2 + h // 8] = True
    assert comparison.differs[banner & comparison.compared].mean() > 0.5 and comparison.differs[~banner].mean() < 0.02
    image = comparison_image(prepared, comparison)
    assert image.shape == (2 * h, 6 * w, 3)
    marks = image[:, 4 * w:]  # the third panel: red where the colours differ
    red = (marks[..., 2] == 255) & (marks[..., 0] == 0)
    assert red[h + 2:h + h // 4 - 2].mean() > 0.3 and red[:h // 2].mean() < 0.02
    assert comparison_image(prepared, None)[:, 2 * w:].max() == 0  # nothing compared: the other two panels blank


def test_a_white_pack_on_a_white_backdrop_keeps_its_white_print_in_the_face():
    image = np.full((200, 120, 3), 255, np.uint8)
    cv2.rectangle(image, (20, 20), (100, 180), (40, 120, 30), 6)  # the pack's green outline, white inside
    mask = face_mask(image)
    assert mask[100, 60] and not mask[5, 5]  # the white inside is the pack, the white outside is the backdrop


def test_too_little_overlap_is_no_evidence():
    bottle = cv2.imread(str(NATURAL))
    away = np.array([[1, 0, 10 * bottle.shape[1]], [0, 1, 0], [0, 0, 1]], float)
    assert differing_from_itself(bottle, bottle, away) is None


@pytest.mark.parametrize("reference, alike", [(LIMAO, True), (NATURAL, False)])
def test_a_real_limao_bottle_is_alike_its_reference_and_unlike_its_look_alike(reference, alike):
    sift = SIFTVerifier(VerifierConfig())
    query, ref = cv2.imread(str(LIMAO_QUERY)), cv2.imread(str(reference))
    qf, rf = sift.features(query), sift.features(ref)
    match = sift.match(qf, rf)
    assert match.transform is not None and implausible(match, qf.image_size, rf.image_size) is None
    share = differing_share(query, qf.image_size, prepare(ref), rf.image_size, match.transform)
    assert (share <= MAX) == alike, share


def test_a_packshot_on_a_plain_backdrop_is_told_from_a_shelf_crop():
    assert is_packshot(packshot())
    assert not is_packshot(cv2.imread(str(NATURAL)))


def with_transform(h: np.ndarray) -> Match:
    return Match(matches=100, inliers=50, inlier_ratio=0.5, spread=0.3, transform=np.asarray(h, float))


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


def test_only_the_face_between_the_inliers_columns_is_compared():
    """A carton rendered at an angle shows a side panel the transform of its front does not align: warped, it shows
    shelf. Beyond the inliers' leftmost and rightmost points nothing is compared; within them a colourway still is."""
    reference = packshot()
    face = face_mask(reference)
    xs = np.nonzero(face)[1]
    left, panel = xs.min(), int(np.percentile(xs, 75))  # the right quarter of the face: the side panel
    query = reference.copy()
    query[:, panel:][face[:, panel:]] = (60, 160, 90)  # what the warp brings there: a neighbour, the shelf
    size = (reference.shape[1], reference.shape[0])
    everywhere = differing_share(query, size, prepare(reference), size, IDENTITY)
    front = differing_share(query, size, prepare(reference), size, IDENTITY, columns=(float(left), float(panel - 1)))
    assert everywhere > 0.1 and front < 0.01, (everywhere, front)
    hsv = cv2.cvtColor(query, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(int) + 60) % 180
    twin = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    assert differing_share(twin, size, prepare(reference), size, IDENTITY, columns=(float(left), float(panel - 1))) > 0.4


def test_inliers_on_a_narrow_strip_are_too_little_of_the_face_to_compare():
    reference = packshot()
    xs = np.nonzero(face_mask(reference))[1]
    narrow = (float(xs.min()), float(xs.min() + 0.2 * (xs.max() - xs.min())))
    size = (reference.shape[1], reference.shape[0])
    assert differing_share(reference, size, prepare(reference), size, IDENTITY, columns=narrow) is None


def test_a_match_records_the_columns_its_inliers_span():
    rng = np.random.default_rng(0)
    ref = rng.uniform([40, 10], [160, 390], (60, 2))
    match = verify_geometry(ref * 0.5 + 7, ref, (200, 400), 3.0)
    assert match.inliers == 60
    assert match.inlier_columns == pytest.approx((ref[:, 0].min(), ref[:, 0].max()), abs=1e-3)
