"""Rough edges a newcomer met on the device side: the live view's labels of products standing side by side, and the
Jetson detector export as the manual writes it."""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from edge.core.annotate import ascii_label, draw_boxes, place_labels

NAME = "#12 Chá Mate Limão Orgânico 1.25 L"


def label_size(text: str) -> tuple[int, int]:
    (w, h), _ = cv2.getTextSize(ascii_label(text), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    return w + 4, h + 6


def test_labels_of_bottles_side_by_side_neither_cover_each_other_nor_leave_the_frame():
    frame = (640, 360)
    boxes = [(x, 40.0) for x in range(0, 640, 90)]  # seven 90 px bottles in a row, the last one at the right edge
    boxes.append((600.0, 0.0))  # and one at the top right corner
    sizes = [label_size(f"#{i} {NAME}") for i in range(len(boxes))]
    corners = place_labels(boxes, sizes, frame)
    rects = [(x, y, x + w, y + h) for (x, y), (w, h) in zip(corners, sizes)]
    for x1, y1, x2, y2 in rects:
        assert 0 <= x1 and x2 <= frame[0] and 0 <= y1 and y2 <= frame[1], (x1, y1, x2, y2)
    for a, b in itertools.combinations(rects, 2):
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


def test_a_lone_label_sits_just_above_its_box():
    [(x, y)] = place_labels([(100.0, 200.0)], [(50, 20)], (640, 360))
    assert (x, y) == (100, 180)


def test_labels_are_drawn_in_letters_the_font_has():
    assert ascii_label(NAME) == "#12 Cha Mate Limao Organico 1.25 L"
    assert ascii_label("Mjölk 1 ℓ") == "Mjolk 1 l"
    image = draw_boxes(np.zeros((360, 640, 3), np.uint8), [((x, 40, x + 90, 300), NAME, True) for x in range(0, 640, 90)])
    assert image.shape == (360, 640, 3) and image.any()


def test_the_jetson_detector_export_runs_as_the_manual_writes_it(tmp_path):
    """`shelfid models export-detector --imgsz 640`: the bundled weights by default, written beside them."""
    from edge.cli import build_parser
    from edge.commands.models import WEIGHTS_DIR, detector_onnx

    args = build_parser().parse_args(["models", "export-detector", "--imgsz", "640"])
    assert args.weights == WEIGHTS_DIR / "product-detector.pt" and args.weights.is_file()
    assert args.out is None and detector_onnx(640) == WEIGHTS_DIR / "product-detector-640.onnx"
    args = build_parser().parse_args(["models", "export-detector", "--imgsz", "96", "--out", str(tmp_path / "d.onnx")])
    assert args.func(args) == 0 and (tmp_path / "d.onnx").stat().st_size > 1_000_000
