"""Opening the pipeline's models by file, and their input preprocessing by kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.backends import BackendOptions, open_backend
from models.detector import Detector, DetectorOptions
from models.embedder import Embedder, crops_to_batch
from models.errors import ModelError
from models.metadata import describe_onnx
from models.yolo_postprocess import to_blob

WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED_DETECTOR = WEIGHTS_DIR / "product-detector-320.onnx"
BUNDLED_EMBEDDER = WEIGHTS_DIR / "embedder.onnx"
COCO_DETECTOR = WEIGHTS_DIR / "yolov5n-coco-320.onnx"  # the upstream COCO YOLOv5n, bottle/cup/… as products


def preprocessor_for(onnx_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """image (BGR) → the model's input batch, for calibration; detectors unless metadata says embedder."""
    info = describe_onnx(onnx_path)
    size = int(info["metadata"].get("input_size") or info["inputs"][0]["shape"][2])
    if info["metadata"].get("kind") == "embedder":
        return lambda image: crops_to_batch([image], size)
    return lambda image: to_blob(image, size)[0]


def open_detector(path: Path | None, backend: str = "auto", options: BackendOptions = BackendOptions(),
                  detector_options: DetectorOptions = DetectorOptions()) -> Detector:
    if path is None and not BUNDLED_DETECTOR.is_file():
        raise ModelError(f"no detector: models.detector is not set and the bundled {BUNDLED_DETECTOR} is absent; "
                         "`make install` exports it from models/weights/product-detector.pt, or point models.detector "
                         "at an ONNX file")
    return Detector(open_backend(path or BUNDLED_DETECTOR, backend, options), detector_options)


def open_embedder(path: Path | None, backend: str = "auto", options: BackendOptions = BackendOptions()) -> Embedder:
    if path is None and not BUNDLED_EMBEDDER.is_file():
        raise ModelError(f"no embedder: models.embedder is not set and the bundled {BUNDLED_EMBEDDER} is absent; "
                         "make it with `python -m tools.train_embedder` or point models.embedder at an ONNX file")
    return Embedder(open_backend(path or BUNDLED_EMBEDDER, backend, options))
