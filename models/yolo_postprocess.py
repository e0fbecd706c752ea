"""Pure functions around a YOLOv5 network: letterbox, decode, NMS, scale back.

Shapes: `pred` is [N, 5 + classes] (xywh centre in input pixels, objectness,
class scores); boxes are [N x 4] xyxy float32.
"""

from __future__ import annotations

import cv2
import numpy as np

# Larger than any input side: offsetting boxes by class id × this keeps
# classes apart in one NMS pass.
_CLASS_OFFSET = 8192.0


def letterbox(image: np.ndarray, size: int | tuple[int, int], color: int = 114) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect ratio and pad to `size` (h, w); returns image, scale, (pad_x, pad_y)."""
    out_h, out_w = (size, size) if isinstance(size, int) else size
    h, w = image.shape[:2]
    scale = min(out_h / h, out_w / w)
    new_w, new_h = round(w * scale), round(h * scale)
    pad_x, pad_y = (out_w - new_w) / 2, (out_h - new_h) / 2
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    bottom, right = out_h - new_h - top, out_w - new_w - left
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color,) * 3)
    return padded, scale, (left, top)


def to_blob(frame_bgr: np.ndarray, size: int | tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Frame (BGR uint8) → letterboxed [1 x 3 x H x W] RGB float in 0–1, with the scale and padding used."""
    padded, scale, pad = letterbox(frame_bgr, size)
    blob = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    return blob, scale, pad


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    xy, half = xywh[:, :2], xywh[:, 2:4] / 2
    return np.concatenate((xy - half, xy + half), axis=1)


def decode(pred: np.ndarray, conf_threshold: float, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (xyxy), scores (objectness × class score) and class ids above the threshold."""
    pred = pred[pred[:, 4] > conf_threshold]
    if pred.shape[1] == 5:  # a single-class export without class scores
        class_scores = pred[:, 4:5]
    else:
        class_scores = pred[:, 5:] * pred[:, 4:5]
    class_ids = class_scores.argmax(1)
    scores = class_scores[np.arange(len(pred)), class_ids]
    keep = scores > conf_threshold
    if classes is not None:
        keep &= np.isin(class_ids, classes)
    return xywh_to_xyxy(pred[keep, :4]).astype(np.float32), scores[keep].astype(np.float32), class_ids[keep]


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, class_ids: np.ndarray | None = None,
        max_detections: int = 300) -> np.ndarray:
    """Greedy NMS, class-aware when `class_ids` is given; indices of kept boxes, best first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if class_ids is not None:
        boxes = boxes + (class_ids.astype(np.float32) * _CLASS_OFFSET)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < max_detections:
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[iou_one_to_many(boxes[best], boxes[order]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def scale_boxes(boxes: np.ndarray, scale: float, pad: tuple[float, float], frame_hw: tuple[int, int]) -> np.ndarray:
    """Map boxes from letterboxed input pixels back to frame pixels, clipped to the frame."""
    out = boxes.copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - pad[0]) / scale
    out[:, [1, 3]] = (out[:, [1, 3]] - pad[1]) / scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, frame_hw[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, frame_hw[0])
    return out
