"""Stills detected at their own scale (issue 32): a phone photo's packs are too small for the detector's input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.backends import open_backend
from models.detector import Detector, DetectorOptions, _starts


@pytest.fixture(scope="module")
def detector(bundled_detector_path) -> Detector:
    return Detector(open_backend(bundled_detector_path, "onnxruntime"), DetectorOptions(class_agnostic=True))


def test_tiles_cover_each_side_and_end_flush():
    assert _starts(300, 320, 240) == [0]
    assert _starts(1000, 320, 240) == [0, 240, 480, 680]  # the last tile ends at the edge, none past it


def test_a_shelf_far_smaller_than_the_photo_is_found_by_the_tiles_and_only_there(detector, shelf_frames):
    shelf = cv2.resize(shelf_frames[1], (640, 360), interpolation=cv2.INTER_AREA)
    photo = np.full((1440, 2560, 3), 200, np.uint8)  # a large still with the shelf in one part of it
    photo[540:900, 960:1600] = shelf
    whole, tiled = detector.detect(photo), detector.detect_tiled(photo)
    on_its_own = detector.detect(shelf)
    assert len(on_its_own) >= 5 and len(whole) <= 1  # at the photo's scale the packs are ~10 px: the one pass misses them
    assert len(tiled) >= len(on_its_own) // 2
    for d in tiled:  # every box on the shelf (a box may overshoot it by a few px), none in the empty rest of the photo
        x1, y1, x2, y2 = d.bbox
        assert x1 >= 920 and x2 <= 1640 and y1 >= 500 and y2 <= 940, d.bbox


def test_a_frame_no_larger_than_the_model_input_is_detected_once_as_before(detector, shelf_frames):
    frame = cv2.resize(shelf_frames[0], (320, 180))
    assert detector.detect_tiled(frame) == detector.detect(frame)


def test_tiles_from_the_packs_size_box_a_close_up_as_the_whole_frame_does_and_a_small_shelf_still(detector, shelf_frames):
    """A close-up phone photo (the frame three times enlarged): tiles at every level box its bottles' labels and caps
    as well; tiles no finer than the packs the whole image shows give its bottles. A shelf far smaller than its photo,
    whose one pass sees a single box, is still found at every level."""
    close_up = cv2.resize(shelf_frames[1], None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    whole, every_level = detector.detect(close_up), detector.detect_tiled(close_up)
    from_packs = detector.detect_tiled(close_up, from_pack_size=True)
    assert len(every_level) > 5 * len(whole) and len(whole) - 2 <= len(from_packs) <= len(whole) + 2
    photo = np.full((1440, 2560, 3), 200, np.uint8)
    photo[540:900, 960:1600] = cv2.resize(shelf_frames[1], (640, 360), interpolation=cv2.INTER_AREA)
    assert len(detector.detect(photo)) <= 1 and detector.detect_tiled(photo, from_pack_size=True) == detector.detect_tiled(photo)
