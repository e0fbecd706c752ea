"""Letterbox, decode, NMS and box scaling on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from models.yolo_postprocess import decode, letterbox, nms, scale_boxes, to_blob


def test_letterbox_wide_image_pads_top_and_bottom_with_114():
    image = np.full((360, 640, 3), 7, np.uint8)
    out, scale, (pad_x, pad_y) = letterbox(image, 320)
    assert out.shape == (320, 320, 3)
    assert scale == pytest.approx(0.5)
    assert (pad_x, pad_y) == (0, 70)
    assert (out[:70] == 114).all() and (out[-70:] == 114).all()
    assert (out[70:250] == 7).all()


def test_letterbox_exact_size_is_unchanged():
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    out, scale, pad = letterbox(image, 64)
    assert scale == 1 and pad == (0, 0) and np.array_equal(out, image)


def test_to_blob_is_rgb_0_to_1_nchw():
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    blob, _, _ = to_blob(image, 32)
    assert blob.shape == (1, 3, 32, 32) and blob.dtype == np.float32
    assert blob[0, 0].min() == 1.0 and blob[0, 2].max() == 0.0


def pred_row(cx, cy, w, h, obj, class_scores):
    return [cx, cy, w, h, obj, *class_scores]


def test_decode_multiplies_objectness_and_filters_classes():
    pred = np.array([
        pred_row(50, 50, 20, 20, 0.9, [0.1, 0.8]),   # class 1, score 0.72
        pred_row(10, 10, 4, 4, 0.2, [0.9, 0.1]),     # objectness too low
        pred_row(80, 80, 10, 10, 0.9, [0.9, 0.1]),   # class 0, score 0.81
    ], dtype=np.float32)
    boxes, scores, classes = decode(pred, 0.25)
    assert classes.tolist() == [1, 0]
    assert scores == pytest.approx([0.72, 0.81])
    assert boxes[0].tolist() == [40, 40, 60, 60]
    boxes, scores, classes = decode(pred, 0.25, classes=np.array([0]))
    assert classes.tolist() == [0] and boxes[0].tolist() == [75, 75, 85, 85]


def test_decode_empty_prediction_gives_well_shaped_empty_arrays():
    boxes, scores, classes = decode(np.zeros((0, 85), np.float32), 0.25)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)


def test_nms_empty_input():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).shape == (0,)


def test_nms_single_box():
    assert nms(np.array([[0, 0, 10, 10]], np.float32), np.array([0.5], np.float32), 0.5).tolist() == [0]


def test_nms_all_but_best_suppressed():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 1, 10, 11]], np.float32)
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1]


def test_nms_keeps_disjoint_boxes_best_first():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 0, 50, 10]], np.float32)
    scores = np.array([0.3, 0.9, 0.6], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2, 0]


def test_nms_class_aware_keeps_overlapping_boxes_of_other_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    classes = np.array([0, 1])
    assert nms(boxes, scores, 0.5, classes).tolist() == [0, 1]
    assert nms(boxes, scores, 0.5).tolist() == [0]  # class-agnostic


def test_nms_respects_max_detections():
    boxes = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(10)], np.float32)
    assert len(nms(boxes, np.linspace(0.1, 1, 10).astype(np.float32), 0.5, max_detections=3)) == 3


def test_scale_boxes_undoes_letterbox_and_clips_at_border():
    # a 640x360 frame letterboxed to 320: scale 0.5, pad_y 70
    boxes = np.array([[0, 70, 160, 160], [300, 200, 330, 260]], np.float32)
    out = scale_boxes(boxes, 0.5, (0, 70), (360, 640))
    assert out[0].tolist() == [0, 0, 320, 180]
    assert out[1].tolist() == [600, 260, 640, 360]  # clipped to the frame's right and bottom edge
