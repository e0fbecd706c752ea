"""Phone photos of a shelf, detected whole or in tiles: what `shelfid detect` names in them, facing by facing.

A phone's photo is several times a camera's frame, and its packs are a fraction of the size at the detector's input.
With no labelled phone photo at hand, the stand-in is a G x G mosaic of the shared shelf video's labelled frames
(G = 3: 3840 x 2160, each bottle a third of its size in the frame, as a wide photo of a long shelf shows it), scored
against our labels (samples/shelf-video-labels.json) with the video's catalog (Chá Mate Limão, Natural, the can):

  right / wrong   catalog facings (at least half visible) whose box is named as their product / as another
  false id        facings of products outside the catalog whose box is named
  named elsewhere named boxes that match no label (IoU 0.5): a facing named twice, a box over two products

The other kind of phone photo, a close-up, is every third labelled frame enlarged Z times (`--zooms 3`: 3840 x 2160,
each bottle three times its size in the frame).

for the whole image at the detector's input, for tiles at every level (`--tiles`), and for what `shelfid detect` does
by default (a photo over 6 times the detector's input in tiles no finer than the packs its whole image shows need).
G = 1 is the camera's own frames. `--out DIR` draws the names the default gives each mosaic.

    python -m tools.evaluate_tiles [--grids 1,2,3] [--zooms 3] [--json] [--out eval-out/tiles]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.core.annotate import draw_boxes
from edge.core.assembly import Models, identifier_for
from edge.core.catalog import load_catalog
from edge.core.config import Config
from edge.core.identify import still_tiling
from edge.core.records import label
from tools.evaluate_transfer import VIDEO_CATALOG, build, evaluation_config, video_references
from tools.evaluate_video import LABELS, SHARED_VIDEO, UNSCORED, Label, assign, read_frames, read_labels, scaled


def mosaics(frames: list[tuple[int, np.ndarray]], labels: dict[int, list[Label]], grid: int):
    """(image, labels in its pixels) for each `grid` x `grid` run of consecutive labelled frames."""
    for start in range(0, len(frames) - grid * grid + 1, grid * grid):
        group = frames[start:start + grid * grid]
        h, w = group[0][1].shape[:2]
        canvas = np.zeros((h * grid, w * grid, 3), np.uint8)
        placed = []
        for k, (index, image) in enumerate(group):
            y0, x0 = (k // grid) * h, (k % grid) * w
            canvas[y0:y0 + h, x0:x0 + w] = image
            placed += [replace(lab, box=(lab.box[0] + x0, lab.box[1] + y0, lab.box[2] + x0, lab.box[3] + y0))
                       for lab in scaled(labels[index], image)]
        yield canvas, placed


COUNTS = ("catalog", "right", "wrong", "open", "false_id", "named_boxes", "named_elsewhere", "boxes")


def enlarged(frames: list[tuple[int, np.ndarray]], labels: dict[int, list[Label]], factor: int):
    """(image, labels in its pixels) for every third labelled frame enlarged `factor` times: a close-up photo's packs."""
    for index, image in frames[::3]:
        big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        yield big, scaled(labels[index], big)


def score(found: list, labels: list[Label]) -> Counter:
    tally = Counter(boxes=len(found))
    matched = assign(labels, [f.bbox for f in found])
    for n, lab in enumerate(labels):
        if not lab.scored or lab.product in UNSCORED:
            continue
        in_catalog = lab.product in VIDEO_CATALOG
        tally["catalog" if in_catalog else "open"] += 1
        product = found[matched[n]].identification.product if n in matched else None
        named = product.product_id if product is not None else None
        if in_catalog:
            tally["right"] += named == lab.product
            tally["wrong"] += named is not None and named != lab.product
        else:
            tally["false_id"] += named is not None
    used = set(matched.values())
    named_boxes = [i for i, f in enumerate(found) if f.identification.product is not None]
    tally["named_boxes"] += len(named_boxes)
    tally["named_elsewhere"] += sum(i not in used for i in named_boxes)
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", default="1,2,3", help="mosaic sizes, comma-separated (1: the video's own frames)")
    parser.add_argument("--zooms", default="3", help="close-up enlargements, comma-separated (none: '')")
    parser.add_argument("--video", type=Path, default=SHARED_VIDEO, help="the shared shelf video")
    parser.add_argument("--out", type=Path, help="draw each mosaic's names (the default's) as DIR/grid-G-N.jpg")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    config = evaluation_config(Config())
    models = Models.open(config)
    labels = read_labels(LABELS)
    frames = [(i, image) for i, image in read_frames(args.video, 1, 1) if i in labels]
    with tempfile.TemporaryDirectory() as tmp:
        identifier = identifier_for(config, load_catalog(build(video_references(), Path(tmp), models, True)), models, still=True)
        report = {}
        kinds = [(f"{g}x{g}", g, mosaics(frames, labels, g)) for g in (int(v) for v in args.grids.split(",") if v)]
        kinds += [(f"zoom {z}", z, enlarged(frames, labels, z)) for z in (int(v) for v in args.zooms.split(",") if v)]
        for name, times, photos in kinds:
            tallies = {mode: Counter() for mode in ("whole", "tiles", "default")}
            for n, (image, placed) in enumerate(tqdm(list(photos), desc=name, unit="image", disable=None)):
                tiled, from_pack_size = still_tiling(image.shape, identifier.detector)
                default = identifier.identify_image(image, tiled=tiled, from_pack_size=from_pack_size)
                tallies["whole"] += score(identifier.identify_image(image), placed)
                tallies["tiles"] += score(identifier.identify_image(image, tiled=True), placed)
                tallies["default"] += score(default, placed)
                tallies["default"]["images"] += 1
                if args.out:
                    args.out.mkdir(parents=True, exist_ok=True)
                    named = [(f.bbox, label(f), True) for f in default if f.identification.product is not None]
                    cv2.imwrite(str(args.out / f"{name.replace(' ', '-')}-{n}.jpg"), draw_boxes(image, named))
            h, w = frames[0][1].shape[:2]
            report[name] = {"size": f"{w * times}x{h * times}", "images": tallies["default"].pop("images"),
                            "default_tiles": still_tiling((h * times, w * times), identifier.detector)[0],
                            **{mode: {k: t[k] for k in COUNTS} for mode, t in tallies.items()}}
    if args.json:
        print(json.dumps(report))
    else:
        for name, r in report.items():
            print(f"{name} ({r['size']}, {r['images']} images; shelfid detect tiles it: {'yes' if r['default_tiles'] else 'no'})")
            for mode in ("whole", "tiles", "default"):
                t = r[mode]
                print(f"  {mode:7s} right {t['right']}/{t['catalog']}  wrong {t['wrong']}  false id {t['false_id']}/{t['open']}  "
                      f"named {t['named_boxes']}, of them over no label {t['named_elsewhere']}  boxes {t['boxes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
