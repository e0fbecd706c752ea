#!/usr/bin/env python3
"""`make demo`: the end-to-end slice that exists today, on the bundled samples.

Builds a catalog from samples/shelf-catalog (three products cropped from a real
shelf video), then runs the whole still-image pipeline (detect → embed → search →
verify → decide) on real shelf frames with the default config and bundled
models, prints what it identified with per-stage timings, and writes annotated
frames to --out. The real-time daemon and MQTT reporting are the next issues.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from edge.annotate import draw_boxes  # noqa: E402
from edge.catalog_build import build_catalog  # noqa: E402
from edge.config import Config  # noqa: E402
from edge.identify import Timings, label, load_identifier, open_models  # noqa: E402
from edge.images import read_image  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog-images", type=Path, default=REPO / "samples" / "shelf-catalog", help="product images")
    parser.add_argument("--frames", type=Path, default=REPO / "samples" / "shelf", help="folder of shelf frames")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="where the catalog and annotated frames go")
    args = parser.parse_args()

    config = Config()
    detector, embedder, verifier = open_models(config)
    print(f"models: detector {detector.backend.path.name} ({detector.backend.name}), embedder {embedder.backend.path.name} "
          f"({embedder.model_id[:12]}), verifier {verifier.id}, decision {config.verifier.decision}")
    report = build_catalog(args.catalog_images, args.out / "catalog", embedder, verifier, detector, "demo", force=True)
    print(f"catalog: {report.products} products from {report.images} images -> {args.out / 'catalog'}")

    identifier = load_identifier(config, args.out / "catalog")
    identifier.identify_image(np.zeros((480, 640, 3), np.uint8))  # warm-up, not timed
    totals, timings, frames = Counter(), Timings(), sorted(args.frames.glob("*.jpg"))
    for path in frames:
        frame = read_image(path)
        found = identifier.identify_image(frame, timings=timings)
        names = [label(f) for f in found if f.identification.status == "identified"]
        totals.update(f.identification.product.name for f in found if f.identification.product)
        boxes = [(f.bbox, label(f), f.identification.status == "identified") for f in found]
        cv2.imwrite(str(args.out / path.name), draw_boxes(frame, boxes))
        print(f"{path.name}: {len(found)} products seen, {len(names)} identified: {', '.join(names) or '-'}")

    print(f"\n{len(frames)} frames; identified: " + (", ".join(f"{n} ×{c}" for n, c in totals.most_common()) or "nothing"))
    print("mean ms per frame: " + ", ".join(f"{k} {v / len(frames):.0f}" for k, v in timings.ms.items()))
    print(f"annotated frames in {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
