#!/usr/bin/env python3
"""Detection quality on its own: product-box recall and precision on hand-labelled real frames and store photos.

    python -m tools.evaluate_detector [--detector model.onnx] [--classes bottle,cup] [--json] [--out det-eval]

Shelf video: the labelled frames of samples/shelf-video-labels.json (every
product facing boxed by hand). Recall counts facings at least half visible
found by a detection (IoU ≥ 0.5, each detection used once); precision counts
detections that match any labelled facing (a detection of a facing less than
half visible is not a false box, and does not count toward recall).
Store photos: the Grocery val photos whose main product was boxed by hand
(samples/grocery-val-boxes.json): recall of that box (IoU ≥ 0.5); other
products in a photo are not labelled, so no precision there.
Numbers at several confidence thresholds (one detection pass, NMS is greedy by
score so a higher threshold keeps a subset), and the detector's time per video
frame (p50, one thread, as the daemon's frame loop runs it). --out writes
annotated frames as a PNG contact sheet (green: labels, red: detections).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.core.images import read_image
from models.backends import BackendOptions
from models.detector import Detector, DetectorOptions
from models.runtime import open_detector
from tools.evaluate import MAIN_BOXES, main_boxes
from tools.evaluate_video import SHARED_VIDEO, Label, assign, read_frames, read_labels, scaled

REPO = Path(__file__).resolve().parent.parent
SHARED_GROCERY = REPO.parent / "shared" / "data" / "grocery"
THRESHOLDS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def video_counts(detections: list[tuple[list, np.ndarray]], threshold: float) -> dict:
    """detections: per frame (labels, [N, 5] boxes + score)."""
    half = found = kept = matched = 0
    for labels, dets in detections:
        boxes = dets[dets[:, 4] >= threshold, :4]
        pairs = assign(labels, list(boxes))
        half += sum(lab.scored for lab in labels)
        found += sum(labels[li].scored for li in pairs)
        kept += len(boxes)
        matched += len(pairs)
    return {"threshold": threshold, "recall": round(found / max(half, 1), 3), "precision": round(matched / max(kept, 1), 3),
            "facings": half, "detections": kept}


def photo_counts(detections: list[tuple[list, np.ndarray]], threshold: float) -> dict:
    found = sum(bool(assign(labels, list(dets[dets[:, 4] >= threshold, :4]))) for labels, dets in detections)
    return {"threshold": threshold, "recall": round(found / max(len(detections), 1), 3), "photos": len(detections)}


def run_detector(detector, image: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    found = detector.detect(image)
    ms = (time.perf_counter() - start) * 1000
    return np.array([[*d.bbox, d.score] for d in found], np.float32).reshape(-1, 5), ms


def contact_sheet(frames: list[tuple[np.ndarray, list, np.ndarray]], threshold: float, out: Path, per_row: int = 4) -> None:
    tiles = []
    for image, labels, dets in frames:
        tile = image.copy()
        for lab in labels:
            x1, y1, x2, y2 = (int(v) for v in lab.box)
            cv2.rectangle(tile, (x1, y1), (x2, y2), (0, 200, 0), 2 if lab.scored else 1)
        for x1, y1, x2, y2, _score in dets[dets[:, 4] >= threshold]:
            cv2.rectangle(tile, (int(x1), int(y1)), (int(x2), int(y2)), (0, 0, 255), 1)
        tiles.append(cv2.resize(tile, (480, int(480 * tile.shape[0] / tile.shape[1]))))
    h = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, h - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in tiles]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % per_row)
    rows = [np.hstack(tiles[i:i + per_row]) for i in range(0, len(tiles), per_row)]
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows))


def evaluate(detector: Detector, video: Path, frame_step: int, data: Path, conf: float, out: Path | None = None) -> dict:
    """Recall/precision on the labelled video frames (and recall on the labelled store photos when `data` has them)."""
    report: dict = {"input_size": list(detector.imgsz)}
    labels = read_labels()
    scored, times, sheet = [], [], []
    for index, image in tqdm(read_frames(video, frame_step, 1), desc="video", unit="frame", disable=None):
        if index in labels:
            dets, ms = run_detector(detector, image)
            times.append(ms)
            frame_labels = scaled(labels[index], image)
            scored.append((frame_labels, dets))
            sheet.append((image, frame_labels, dets))
    if scored:
        report["video"] = {"frames": len(scored), "at_conf": video_counts(scored, conf),
                           "sweep": [video_counts(scored, t) for t in THRESHOLDS],
                           "ms_per_frame_p50": round(float(np.median(times)), 1), "frame_size": list(sheet[0][0].shape[1::-1])}
        if out:
            contact_sheet(sheet, conf, out / "video.png")
    if MAIN_BOXES.is_file() and data.is_dir():
        photos, sheet = [], []
        for path, box in tqdm(sorted(main_boxes(data).items()), desc="photos", unit="photo", disable=None):
            image = read_image(path)
            dets, _ = run_detector(detector, image)
            photo_labels = [Label(box, path.parent.name, True)]
            photos.append((photo_labels, dets))
            if len(sheet) < 24:
                sheet.append((image, photo_labels, dets))
        report["photos"] = {"at_conf": photo_counts(photos, conf), "sweep": [photo_counts(photos, t) for t in THRESHOLDS]}
        if out:
            contact_sheet(sheet, conf, out / "photos.png", per_row=6)
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--detector", type=Path, help="detector ONNX (default: the bundled one)")
    p.add_argument("--classes", help="comma-separated classes kept (default: the model's product classes)")
    p.add_argument("--conf", type=float, default=0.25, help="the threshold the headline numbers use")
    p.add_argument("--video", type=Path, default=SHARED_VIDEO, help="the shared video (default) or samples/shelf.mp4")
    p.add_argument("--frame-step", type=int, help="original frames per file frame (default: 2 for samples/shelf.mp4, else 1)")
    p.add_argument("--data", type=Path, default=SHARED_GROCERY, help="Grocery dataset folder for the store photos")
    p.add_argument("--out", type=Path, help="folder for annotated contact sheets (PNG)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    classes = tuple(c for c in args.classes.split(",") if c) if args.classes else None
    detector = open_detector(args.detector, "onnxruntime", BackendOptions(threads=1),
                             DetectorOptions(conf_threshold=min(THRESHOLDS), classes=classes))
    frame_step = args.frame_step or (2 if args.video.name == "shelf.mp4" else 1)
    report = {"detector": str(args.detector or "bundled"), "classes": classes,
              **evaluate(detector, args.video, frame_step, args.data, args.conf, args.out)}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for part in ("video", "photos"):
        if part in report:
            for row in report[part]["sweep"]:
                print(part, " ".join(f"{k} {v}" for k, v in row.items()))
    if "video" in report:
        print(f"video at conf {args.conf}: {report['video']['at_conf']}; {report['video']['ms_per_frame_p50']} ms per frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
