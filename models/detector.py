"""YOLOv5 detection on any backend: frame (BGR) → boxes in frame pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.backends import Backend
from models.errors import ModelError
from models.metadata import parse_names
from models.yolo_postprocess import decode, nms, scale_boxes, to_blob


@dataclass(frozen=True)
class Detection:
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float
    class_id: int
    class_name: str


@dataclass(frozen=True)
class DetectorOptions:
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    classes: tuple[str, ...] | None = None  # names kept; None: the model's product_classes metadata, else all
    class_agnostic: bool = False
    max_detections: int = 300


class Detector:
    """Reads input size, stride and class names from the model rather than from config."""

    def __init__(self, backend: Backend, options: DetectorOptions = DetectorOptions()):
        self.backend, self.options = backend, options
        if len(backend.inputs) != 1 or len(backend.outputs) < 1:
            raise ModelError(f"{backend.path}: a YOLOv5 detector has one input and one output, "
                             f"found {len(backend.inputs)} and {len(backend.outputs)}")
        self.input_name, self.output_name = backend.inputs[0].name, backend.outputs[0].name
        self.imgsz = self._input_size()
        names = backend.metadata.get("names")
        out_shape = backend.outputs[0].shape
        n_classes = out_shape[-1] - 5 if len(out_shape) == 3 and isinstance(out_shape[-1], int) else None
        if n_classes is not None and n_classes < 0 or len(out_shape) not in (0, 3):
            raise ModelError(f"{backend.path}: expected a YOLOv5 output [1, N, 5 + classes], found {list(out_shape)}")
        self.names = parse_names(names) if names else [str(i) for i in range(n_classes or 0)]
        if n_classes is not None and len(self.names) != n_classes:
            raise ModelError(f"{backend.path}: metadata names {len(self.names)} classes, the output has {n_classes}")
        wanted = options.classes
        if wanted is None and backend.metadata.get("product_classes"):  # the model says which of its classes are products
            wanted = tuple(parse_names(backend.metadata["product_classes"]))
        self.class_filter = self._class_filter(wanted)

    def _input_size(self) -> tuple[int, int]:
        shape = self.backend.inputs[0].shape
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]):
            return int(shape[2]), int(shape[3])
        size = int(self.backend.metadata.get("input_size", 640))
        return size, size

    def _class_filter(self, classes: tuple[str, ...] | None) -> np.ndarray | None:
        if classes is None:
            return None
        unknown = [c for c in classes if c not in self.names]
        if unknown:
            raise ModelError(f"{self.backend.path}: classes {unknown} are not among the detector's classes "
                             f"({', '.join(self.names[:12])}{'...' if len(self.names) > 12 else ''})")
        return np.array([self.names.index(c) for c in classes])

    def postprocess(self, pred: np.ndarray, scale: float, pad: tuple[float, float], frame_hw: tuple[int, int]) -> list[Detection]:
        o = self.options
        boxes, scores, class_ids = decode(pred, o.conf_threshold, self.class_filter)
        keep = nms(boxes, scores, o.iou_threshold, None if o.class_agnostic else class_ids, o.max_detections)
        boxes = scale_boxes(boxes[keep], scale, pad, frame_hw)
        return [Detection(tuple(float(v) for v in box), float(scores[i]), int(class_ids[i]), self.names[class_ids[i]])
                for box, i in zip(boxes, keep)]

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        blob, scale, pad = to_blob(frame_bgr, self.imgsz)
        pred = self.backend.run({self.input_name: blob})[self.output_name]
        return self.postprocess(pred[0], scale, pad, frame_bgr.shape[:2])
