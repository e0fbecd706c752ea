#!/usr/bin/env python3
"""`make demo`: the end-to-end slice that exists today, on the bundled sample frames.

Runs the bundled YOLOv5n detector (ONNX Runtime) on real shelf frames, keeps
the product classes from the default config, prints what it found with
per-stage timings, and writes annotated frames to --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.annotate import draw_boxes
from edge.config import ModelsConfig
from models.backends import BackendOptions, open_backend
from models.detector import Detector, DetectorOptions
from models.runtime import BUNDLED_DETECTOR
from models.yolo_postprocess import to_blob

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=REPO / "samples" / "shelf", help="folder of frames")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="where annotated frames go")
    args = parser.parse_args()

    defaults = ModelsConfig()
    backend = open_backend(BUNDLED_DETECTOR, defaults.backend, BackendOptions(threads=defaults.threads))
    detector = Detector(backend, DetectorOptions(defaults.conf_threshold, defaults.iou_threshold, tuple(defaults.classes)))
    print(f"detector: {BUNDLED_DETECTOR.name} on {backend.name} ({', '.join(getattr(backend, 'providers', []))}), "
          f"input {detector.imgsz[0]}, keeping classes {', '.join(defaults.classes)}")
    detector.detect(np.zeros((480, 640, 3), np.uint8))  # warm-up, not timed

    args.out.mkdir(parents=True, exist_ok=True)
    timings, total = {"pre": [], "infer": [], "post": []}, 0
    frames = sorted(args.frames.glob("*.jpg"))
    for path in tqdm(frames, desc="frames"):
        frame = cv2.imread(str(path))
        t0 = time.perf_counter()
        blob, scale, pad = to_blob(frame, detector.imgsz)
        t1 = time.perf_counter()
        pred = backend.run({detector.input_name: blob})[detector.output_name]
        t2 = time.perf_counter()
        detections = detector.postprocess(pred[0], scale, pad, frame.shape[:2])
        t3 = time.perf_counter()
        for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2)):
            timings[key].append(value * 1000)
        total += len(detections)
        labels = [(d.bbox, f"{d.class_name} {d.score:.2f}", d.score >= 0.5) for d in detections]
        cv2.imwrite(str(args.out / path.name), draw_boxes(frame, labels))
        tqdm.write(f"{path.name}: {len(detections)} products ({sum(d.score >= 0.5 for d in detections)} at score >= 0.5)")

    print(f"\n{len(frames)} frames, {total} product boxes; annotated frames in {args.out}/")
    print("per-stage median ms: " + ", ".join(f"{k} {np.median(v):.1f}" for k, v in timings.items()))
    print("not yet in the demo: catalog identification, tracking, MQTT (open issues 4, 6, 7)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
