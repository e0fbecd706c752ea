"""tools/evaluate_tiles.py: the phone-photo stand-in's mosaics keep every label on its bottle, and the score counts a
facing named right, wrong, outside the catalog and twice."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from edge.core.catalog import Product
from edge.core.identify import Detected
from tests.conftest import REPO
from tools.evaluate_tiles import mosaics, score
from tools.evaluate_video import Label, read_labels, scaled


def _found(box: tuple, product_id: str | None) -> Detected:
    product = Product(product_id, product_id, product_id) if product_id else None
    return Detected(box, SimpleNamespace(product=product))


def test_a_mosaic_places_each_frame_and_moves_its_labels_with_it():
    import cv2

    frames = [(i, cv2.imread(str(REPO / "samples" / "shelf" / f"frame_{i:04d}.jpg"))) for i in (0, 150, 300, 600)]
    labels = read_labels()
    [(image, placed)] = list(mosaics(frames, labels, 2))
    assert image.shape == (1440, 2560, 3)
    assert np.array_equal(image[720:, 1280:], frames[3][1])  # the fourth frame bottom right
    first, last = scaled(labels[0], frames[0][1]), scaled(labels[600], frames[3][1])
    assert placed[:len(first)] == first
    assert placed[-len(last):] == [Label((b.box[0] + 1280, b.box[1] + 720, b.box[2] + 1280, b.box[3] + 720), b.product, b.scored, b.face)
                                   for b in last]


def test_the_score_counts_right_wrong_open_set_and_facings_named_twice():
    labels = [Label((0, 0, 100, 300), "cha-mate-limao", True), Label((100, 0, 200, 300), "cha-mate-natural", True),
              Label((200, 0, 300, 300), "matte-leao", True), Label((300, 0, 400, 300), "cha-mate-limao", True),
              Label((400, 0, 500, 300), "cha-mate-limao", False)]  # not half visible: not scored
    found = [_found((0, 0, 100, 300), "cha-mate-limao"), _found((100, 0, 200, 300), "cha-mate-limao"),
             _found((200, 0, 300, 300), "cha-mate-natural"), _found((300, 0, 400, 300), None),
             _found((0, 150, 100, 310), "cha-mate-limao"), _found((400, 0, 500, 300), "cha-mate-limao")]
    tally = score(found, labels)
    assert (tally["catalog"], tally["right"], tally["wrong"]) == (3, 1, 1)
    assert (tally["open"], tally["false_id"]) == (1, 1)
    assert (tally["named_boxes"], tally["named_elsewhere"], tally["boxes"]) == (5, 1, 6)
