"""models/transfer_suite.py on real packshots (grocery-mini's iconic images): seeded, and each condition does what it says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.core.appearance import is_packshot
from models.transfer_suite import SHELF_HEIGHT, UPSCALED_SIDE, make_packs, make_suite, sticker
from tests.conftest import REPO

ICONIC = REPO / "tests" / "data" / "grocery-mini" / "iconic-images-and-descriptions"


@pytest.fixture(scope="module")
def packshots() -> dict[str, np.ndarray]:
    paths = sorted(ICONIC.rglob("*_Iconic.jpg"))[:5]
    return {p.stem.replace("_Iconic", ""): cv2.imread(str(p)) for p in paths}


def test_the_same_seed_makes_the_same_suite_and_another_seed_another(packshots):
    one, again, other = (make_suite(packshots, seed=s, twins=2, conditions=("shelf", "small")) for s in (0, 0, 1))
    assert [q.product_id for q in one.queries] == [q.product_id for q in again.queries]
    assert all(np.array_equal(a.crop, b.crop) for a, b in zip(one.queries, again.queries))
    assert one.left_out == again.left_out
    assert not all(a.crop.shape == b.crop.shape and np.array_equal(a.crop, b.crop) for a, b in zip(one.queries, other.queries))


def test_each_twin_has_the_artwork_of_its_pack_in_other_colours_and_one_of_each_pair_is_left_out(packshots):
    packs, left_out = make_packs(packshots, seed=0, twins=2)
    twins = [p for p in packs if p.family != p.product_id]
    assert len(twins) == 2
    for twin in twins:
        base = next(p for p in packs if p.product_id == twin.family)
        assert twin.face.shape == base.face.shape and np.array_equal(twin.mask, base.mask)
        hsv = cv2.cvtColor(base.face, cv2.COLOR_BGR2HSV)
        coloured = (twin.mask > 0) & (hsv[..., 1] > 60) & (hsv[..., 2] > 60)
        ab = [cv2.cvtColor(f, cv2.COLOR_BGR2LAB)[..., 1:].astype(float) for f in (base.face, twin.face)]
        colour = np.linalg.norm(ab[0] - ab[1], axis=2)[coloured].mean()  # chroma moved where the pack has colour
        edges = [cv2.Canny(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), 50, 150) > 0 for f in (base.face, twin.face)]
        same_edges = (edges[0] & edges[1]).sum() / max(edges[0].sum(), 1)
        assert colour > 15, f"{twin.product_id}: colours barely changed ({colour:.1f})"
        assert same_edges > 0.5, f"{twin.product_id}: artwork changed ({same_edges:.2f} of edges kept)"
        assert len(left_out & {twin.product_id, base.product_id}) == 1


def test_references_come_as_packshot_tight_crop_and_upscaled(packshots):
    packs, _ = make_packs(packshots, seed=0, twins=0)
    kinds = {p.reference_kind: p for p in packs}
    assert set(kinds) == {"packshot", "tight", "upscaled"}
    assert max(kinds["upscaled"].reference.shape[:2]) == UPSCALED_SIDE
    assert kinds["tight"].reference.shape == kinds["tight"].face.shape
    assert is_packshot(kinds["packshot"].reference)  # the backdrop shows


def test_a_white_carton_is_cut_out_whole_though_its_white_print_touches_the_backdrop():
    image = np.full((200, 140, 3), 255, np.uint8)
    cv2.rectangle(image, (30, 20), (109, 179), (250, 250, 250), -1)  # a white carton on a white backdrop
    cv2.rectangle(image, (30, 20), (109, 45), (40, 40, 200), -1)  # a red band at its top
    cv2.rectangle(image, (45, 80), (94, 120), (200, 90, 30), -1)  # a blue logo in its middle
    cv2.rectangle(image, (30, 165), (109, 179), (60, 160, 60), -1)  # a green foot
    packs, _ = make_packs({"carton": image}, seed=0, twins=0)
    assert packs[0].mask.shape == (160, 80) and packs[0].mask.mean() > 0.97  # not three coloured pieces


def test_a_sticker_covers_ten_to_twenty_five_percent_of_the_face(packshots):
    packs, _ = make_packs(packshots, seed=0, twins=0)
    for n, pack in enumerate(packs):
        covered = sticker(pack.face, pack.mask, np.random.default_rng(n))
        changed = (np.abs(covered.astype(int) - pack.face.astype(int)).sum(axis=2) > 30)[pack.mask > 0].mean()
        assert 0.05 <= changed <= 0.27, f"{pack.product_id}: {changed:.2f} of the face changed"


def test_queries_are_shelf_camera_crops_of_the_pack(packshots):
    suite = make_suite(packshots, seed=0, twins=1, conditions=("shelf", "small"))
    assert len(suite.queries) == 2 * len(suite.packs)
    for q in suite.queries:
        low, high = (48, 72) if q.condition == "small" else SHELF_HEIGHT
        assert 0.85 * low <= q.crop.shape[0] <= 1.15 * high, (q.product_id, q.condition, q.crop.shape)
