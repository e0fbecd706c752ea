"""INT8 static quantisation (QDQ, per-channel) for ONNX Runtime on CPU, calibrated on real images.

Dynamic quantisation is deliberately absent: measured here it ran ResNet34 3×
slower than fp32 (234 vs 68 ms).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from models.backends.onnxruntime_backend import quantized_path
from models.errors import ModelError
from models.metadata import write_metadata
from models.safe_write import replacing

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def calibration_images(folder: Path, limit: int) -> list[np.ndarray]:
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    images = [img for img in (cv2.imread(str(p)) for p in paths) if img is not None]
    if not images:
        raise ModelError(f"{folder}: no readable calibration images ({', '.join(IMAGE_SUFFIXES)})")
    return images


class _Reader(CalibrationDataReader):
    def __init__(self, input_name: str, batches: Iterator[np.ndarray]):
        self.input_name, self.batches = input_name, batches

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}


def quantize_int8(onnx_path: Path, preprocess: Callable[[np.ndarray], np.ndarray], images: list[np.ndarray],
                  out: Path | None = None) -> Path:
    """Write `<stem>.int8.onnx` beside the model (or `out`), keeping its metadata."""
    onnx_path = Path(onnx_path)
    out = Path(out) if out else quantized_path(onnx_path)
    model = onnx.load(str(onnx_path))
    input_name = model.graph.input[0].name
    metadata = {p.key: p.value for p in model.metadata_props}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        quantized = Path(tmp) / "int8.onnx"
        reader = _Reader(input_name, (preprocess(img) for img in images))
        quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        result = onnx.load(str(quantized))
        write_metadata(result, {**metadata, "precision": "int8-static-qdq", "calibration_images": str(len(images))})
        with replacing(out) as final:
            onnx.save(result, str(final))
    log.info("quantised %s -> %s on %d images", onnx_path, out, len(images))
    return out
