"""YOLOv5 detection on any backend: frame (BGR) → boxes in frame pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.backends import Backend
from models.errors import ModelError
from models.metadata import parse_names
from models.yolo_postprocess import decode, nms, scale_boxes, to_blob

PACK_TILE = 2.5  # detect_tiled(from_pack_size=True): the finest tile's side over the median box's height, read
PACK_BOXES = 3  # from at least this many boxes (one box over a whole shelf is no pack's size)


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

    def detect_tiled(self, frame_bgr: np.ndarray, overlap: float = 0.25, from_pack_size: bool = False) -> list[Detection]:
        """Detect at the photo's own scale: the whole frame, then overlapping tiles of the model's input size, twice
        that, four times… below the frame's longest side (a pyramid), each tile run at the model's input.

        A shelf camera's frame is what the detector was sized for; a phone photo is not (packs 200 px wide in a
        4032-px photo shrink to 16 px at 320). A box a tile cuts at an inner edge is part of a product that a
        neighbouring tile, or a coarser level, sees whole, so it is dropped. Boxes are merged by the detector's NMS.

        `from_pack_size`: the pyramid starts at the first side PACK_TILE times the median height of the whole frame's
        boxes (the packs it could see; every level when it saw fewer than PACK_BOXES): a tile holds a few packs whole,
        and finer tiles only box their labels and caps (close-up photos: 1,040 boxes over 11 with every level, 160 from
        the packs' size, 105 whole). A photo of small packs among large boxes (a fridge's cups, and a box across
        several) needs every level.
        """
        h, w = frame_bgr.shape[:2]
        found = self.detect(frame_bgr)
        tile = max(self.imgsz)
        if from_pack_size and len(found) >= PACK_BOXES:
            while tile < PACK_TILE * float(np.median([d.bbox[3] - d.bbox[1] for d in found])):
                tile *= 2
        while tile < max(h, w):
            found += self._tiles(frame_bgr, tile, max(int(tile * (1 - overlap)), 1))
            tile *= 2
        if not found:
            return found
        o = self.options
        boxes = np.array([d.bbox for d in found], np.float32)
        scores = np.array([d.score for d in found], np.float32)
        class_ids = np.array([d.class_id for d in found])
        return [found[i] for i in nms(boxes, scores, o.iou_threshold, None if o.class_agnostic else class_ids, o.max_detections)]

    def _tiles(self, frame_bgr: np.ndarray, tile: int, step: int) -> list[Detection]:
        """Detections in every `tile`-px tile, in frame pixels, less those cut by an inner tile edge."""
        h, w = frame_bgr.shape[:2]
        found = []
        for y0 in _starts(h, tile, step):
            for x0 in _starts(w, tile, step):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                for d in self.detect(frame_bgr[y0:y1, x0:x1]):
                    bx1, by1, bx2, by2 = d.bbox
                    if (bx1 <= 1 and x0 > 0) or (by1 <= 1 and y0 > 0) or (bx2 >= x1 - x0 - 1 and x1 < w) or (by2 >= y1 - y0 - 1 and y1 < h):
                        continue
                    found.append(Detection((bx1 + x0, by1 + y0, bx2 + x0, by2 + y0), d.score, d.class_id, d.class_name))
        return found


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Tile origins along one side: every `step`, the last flush with the end."""
    if length <= tile:
        return [0]
    return sorted({*range(0, length - tile, step), length - tile})
