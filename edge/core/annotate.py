"""Drawing boxes and labels on frames, for people to look at."""

from __future__ import annotations

import cv2
import numpy as np

GREEN, GREY = (60, 200, 60), (160, 160, 160)
THUMBNAIL_SIDE = 160  # px, the longer side: catalog thumbnails and the page's crops


def jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def thumbnail_jpeg(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of `image`, its longer side at most `side` pixels."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w, 1))
    return jpeg(cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA))


def draw_boxes(frame: np.ndarray, boxes: list[tuple[tuple[float, float, float, float], str, bool]]) -> np.ndarray:
    """A copy of `frame` with each (bbox, label, highlighted) drawn."""
    out = frame.copy()
    thickness = max(1, round(min(frame.shape[:2]) / 300))
    for (x1, y1, x2, y2), label, highlighted in boxes:
        colour = GREEN if highlighted else GREY
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(out, p1, p2, colour, thickness)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(p1[1], th + 4)
        cv2.rectangle(out, (p1[0], top - th - 4), (p1[0] + tw + 4, top), colour, -1)
        cv2.putText(out, label, (p1[0] + 2, top - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def track_boxes(tracks: list, names: dict[str, str]) -> list[tuple[tuple[float, float, float, float], str, bool]]:
    """(bbox, label, identified) for the tracks seen in the current frame: the live view's and the demo video's boxes."""
    boxes = []
    for t in tracks:
        if t.misses:
            continue
        if isinstance(t.confirmed, str):  # a product id (an unknown identity is a sentinel, not a string)
            boxes.append((t.bbox, f"#{t.track_id} {names.get(t.confirmed, t.confirmed)}", True))
        else:
            boxes.append((t.bbox, f"#{t.track_id} {t.confirmed or ('...' if t.pending else '?')}", False))
    return boxes
