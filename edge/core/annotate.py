"""Drawing boxes and labels on frames, for people to look at."""

from __future__ import annotations

import unicodedata

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


def ascii_label(text: str) -> str:
    """`text` as OpenCV's Hershey font can draw it: accents dropped ("Chá Mate Limão" -> "Cha Mate Limao"), any other
    non-ASCII character as '?' (drawn as is, each came out as '??')."""
    folded = unicodedata.normalize("NFKD", text)
    return "".join(c for c in folded if not unicodedata.combining(c)).encode("ascii", "replace").decode()


def place_labels(boxes: list[tuple[float, float]], sizes: list[tuple[int, int]], frame: tuple[int, int]) -> list[tuple[int, int]]:
    """The top-left corner of each label (`sizes`: its width and height) for boxes whose top-left corners are `boxes`,
    in a `frame` of (width, height): above its box's corner, kept inside the frame, and moved down a row at a time past
    the labels placed before it, so the names of products standing side by side neither cover each other nor run off
    the frame's edge."""
    width, height = frame
    placed: list[tuple[int, int, int, int]] = []
    corners = []
    for (x1, y1), (w, h) in zip(boxes, sizes):
        x = int(min(max(x1, 0), max(width - w, 0)))
        y = int(min(max(y1 - h, 0), max(height - h, 0)))
        while y + 2 * h <= height and any(x < px + pw and px < x + w and y < py + ph and py < y + h for px, py, pw, ph in placed):
            y += h
        placed.append((x, y, w, h))
        corners.append((x, y))
    return corners


def draw_boxes(frame: np.ndarray, boxes: list[tuple[tuple[float, float, float, float], str, bool]]) -> np.ndarray:
    """A copy of `frame` with each (bbox, label, highlighted) drawn: boxes first, then labels where place_labels puts
    them (over every box, none over another)."""
    out = frame.copy()
    thickness = max(1, round(min(frame.shape[:2]) / 300))
    labels = [ascii_label(label) for _, label, _ in boxes]
    sizes = []
    for ((x1, y1, x2, y2), _, highlighted), label in zip(boxes, labels):
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), GREEN if highlighted else GREY, thickness)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        sizes.append((tw + 4, th + 6))
    corners = place_labels([(b[0][0], b[0][1]) for b in boxes], sizes, (frame.shape[1], frame.shape[0]))
    for (_, _, highlighted), label, (x, y), (w, h) in zip(boxes, labels, corners, sizes):
        cv2.rectangle(out, (x, y), (x + w, y + h), GREEN if highlighted else GREY, -1)
        cv2.putText(out, label, (x + 2, y + h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
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
