"""YOLOv5: restricted checkpoint import, export, and detections on real shelf photos."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
import torch

from models.backends import open_backend
from models.checkpoint import load_yolov5_checkpoint
from models.detector import Detector, DetectorOptions
from models.errors import ModelError
from models.export import import_yolov5
from models.metadata import describe_onnx
from models.yolov5 import YOLOv5, yolov5_yaml
from tests.conftest import needs_upstream_yolov5


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/shelfid-pwned",))


def test_checkpoint_with_code_in_its_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path, pickle_protocol=2)
    with pytest.raises(ModelError, match=r"refused: global (posix|os)\.system is not allowed"):
        load_yolov5_checkpoint(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"x": torch.zeros(3)}, good)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ModelError, match="broken.pt: not a readable PyTorch checkpoint"):
        load_yolov5_checkpoint(broken)


def test_checkpoint_that_is_not_yolov5(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state": torch.zeros(3)}, path)
    with pytest.raises(ModelError, match="expected an upstream YOLOv5 checkpoint"):
        load_yolov5_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="no such checkpoint file"):
        load_yolov5_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("size,params", [("n", 1_872_157), ("s", 7_235_389)])
def test_architecture_matches_published_sizes(size, params):
    model = YOLOv5(yolov5_yaml(size)).eval()
    assert sum(p.numel() for p in model.parameters()) == params
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 320, 320)).shape == (1, 3 * (40 * 40 + 20 * 20 + 10 * 10), 85)


def test_coco_detector_metadata_records_its_product_classes(coco_detector_path):
    info = describe_onnx(coco_detector_path)
    meta = info["metadata"]
    assert meta["kind"] == "detector" and meta["stride"] == "32" and meta["input_size"] == "320"
    assert meta["licence"].startswith("GPL-3.0")
    assert meta["model_id"] == "4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3"
    assert json.loads(meta["product_classes"]) == ["bottle", "cup", "wine glass", "bowl", "vase"]
    assert info["inputs"] == [{"name": "images", "shape": [1, 3, 320, 320]}]
    assert info["outputs"] == [{"name": "output0", "shape": [1, 6300, 85]}]


def test_bundled_product_detector_metadata(bundled_detector_path):
    info = describe_onnx(bundled_detector_path)
    meta = info["metadata"]
    assert meta["kind"] == "detector" and meta["input_size"] == "320" and json.loads(meta["names"]) == ["product"]
    assert meta["licence"] and "train_detector.py" in meta["source"]
    assert info["outputs"] == [{"name": "output0", "shape": [1, 6300, 6]}]


def test_coco_detector_keeps_only_its_product_classes_by_default(coco_detector_path, shelf_frames):
    detector = Detector(open_backend(coco_detector_path, "onnxruntime"))
    frame = shelf_frames[0]  # the top shelf: six Cha Mate bottles fill the frame
    detections = detector.detect(frame)
    assert len([d for d in detections if d.score >= 0.5]) >= 6
    assert {d.class_name for d in detections} <= {"bottle", "cup", "wine glass", "bowl", "vase"}
    everything = Detector(open_backend(coco_detector_path, "onnxruntime"), DetectorOptions(classes=("bottle",)))
    assert {d.class_name for d in everything.detect(frame)} == {"bottle"}  # the config's classes win


def test_bundled_detector_boxes_every_bottle_on_a_real_shelf(bundled_detector_path, shelf_frames):
    detector = Detector(open_backend(bundled_detector_path, "onnxruntime"))
    frame = shelf_frames[0]
    detections = detector.detect(frame)
    assert len([d for d in detections if d.score >= 0.5]) >= 6
    assert {d.class_name for d in detections} == {"product"}
    h, w = frame.shape[:2]
    for d in detections:
        x1, y1, x2, y2 = d.bbox
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_class_filter_with_unknown_class_names_the_valid_ones(coco_detector_path):
    with pytest.raises(ModelError, match="'shelf'.*not among the detector's classes \\(person, bicycle"):
        Detector(open_backend(coco_detector_path, "onnxruntime"), DetectorOptions(classes=("shelf",)))


@needs_upstream_yolov5
def test_import_refuses_product_classes_the_model_does_not_have(tmp_path):
    from tests.conftest import YOLOV5N_PT

    with pytest.raises(ModelError, match=r"--classes \['carton'\] are not among yolov5n-coco.pt's classes \(person"):
        import_yolov5(YOLOV5N_PT, tmp_path / "x.onnx", 320, product_classes=["bottle", "carton"])
    assert not (tmp_path / "x.onnx").exists()


@needs_upstream_yolov5
def test_importer_reproduces_reference_on_real_frames(upstream_yolov5n, shelf_frames):
    """ONNX Runtime on our export vs our PyTorch model with the upstream weights: same boxes."""
    options = DetectorOptions(conf_threshold=0.25)
    onnx_detector = Detector(open_backend(upstream_yolov5n, "onnxruntime"), options)
    torch_detector = Detector(open_backend(upstream_yolov5n, "torch"), options)
    for frame in shelf_frames:
        a, b = onnx_detector.detect(frame), torch_detector.detect(frame)
        assert len(a) == len(b) > 0
        for da, db in zip(a, b):
            assert da.class_id == db.class_id
            assert np.allclose(da.bbox, db.bbox, atol=1.0)
            assert da.score == pytest.approx(db.score, abs=1e-3)


@needs_upstream_yolov5
def test_coco_detector_is_the_imported_upstream_model(coco_detector_path, shelf_frames, tmp_path):
    from tests.conftest import YOLOV5N_PT

    import_yolov5(YOLOV5N_PT, tmp_path / "fresh.onnx", 320, product_classes=["bottle", "cup", "wine glass", "bowl", "vase"])
    ours = Detector(open_backend(coco_detector_path, "onnxruntime")).detect(shelf_frames[1])
    fresh = Detector(open_backend(tmp_path / "fresh.onnx", "onnxruntime")).detect(shelf_frames[1])
    assert len(ours) == len(fresh) > 0
    assert np.allclose([d.bbox for d in ours], [d.bbox for d in fresh], atol=1e-3)


@needs_upstream_yolov5
def test_checkpoint_tree_reads_names_strides_and_eps():
    from tests.conftest import YOLOV5N_PT

    ckpt = load_yolov5_checkpoint(YOLOV5N_PT)
    assert ckpt.names[:3] == ["person", "bicycle", "car"] and len(ckpt.names) == 80
    assert ckpt.stride == [8, 16, 32] and ckpt.bn_eps == pytest.approx(1e-3)
    with zipfile.ZipFile(YOLOV5N_PT) as z:  # the pickle really does name upstream classes
        assert b"models.common" in z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def test_restricted_unpickler_allows_tensors_only(tmp_path):
    from models.checkpoint import RestrictedUnpickler

    with pytest.raises(pickle.UnpicklingError, match="builtins.eval is not allowed"):
        RestrictedUnpickler(__import__("io").BytesIO(b"cbuiltins\neval\n.")).load()
