#!/usr/bin/env python3
"""Make the small sample assets the repo ships (credited in samples/README.md).

    python -m tools.make_demo_assets --video ../shared/data/shelf-video/output.m3u8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
from tqdm import tqdm

FRAMES = (0, 150, 300, 600)
VIDEO_FRAMES, VIDEO_SIZE, VIDEO_FPS = 240, (640, 360), 15  # every other frame of the first 8 s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=Path("../shared/data/shelf-video/output.m3u8"), help="shelf video (MIT)")
    parser.add_argument("--out", type=Path, default=Path("samples/shelf"), help="output folder")
    args = parser.parse_args()
    capture = cv2.VideoCapture(str(args.video))
    if not capture.isOpened():
        raise SystemExit(f"error: cannot open {args.video}")
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for index in tqdm(range(max(FRAMES) + 1), desc="frames"):
        ok, frame = capture.read()
        if not ok:
            break
        if index in FRAMES:
            cv2.imwrite(str(args.out / f"frame_{index:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
            written += 1
    print(f"wrote {written} frames to {args.out}")
    capture = cv2.VideoCapture(str(args.video))
    video = args.out.parent / "shelf.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, VIDEO_SIZE)
    for index in tqdm(range(VIDEO_FRAMES), desc="video"):
        ok, frame = capture.read()
        if not ok:
            break
        if index % 2 == 0:
            writer.write(cv2.resize(frame, VIDEO_SIZE, interpolation=cv2.INTER_AREA))
    writer.release()
    print(f"wrote {video}")
    return 0 if written == len(FRAMES) else 1


if __name__ == "__main__":
    raise SystemExit(main())
