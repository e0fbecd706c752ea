#!/usr/bin/env python3
"""Identification under two (or more) OpenCV releases, side by side: the check behind pinning OpenCV.

    python -m tools.compare_opencv --data ../shared/data/grocery --python .venv/bin/python --python /tmp/cv5/bin/python

Each --python is an interpreter whose environment differs in its OpenCV (make one with the lock and then
`pip install --no-deps opencv-python-headless==X`). For each, runs `python -m tools.evaluate --split val --json`
(store photos, default decision) and `python -m tools.evaluate_video --json` (the shared shelf video, detector and
tracker in the loop), then prints one Markdown table: val packaged recall@1, top-1, wrong and open-set false
identification; video track recall and false identification with the full catalog. The raw reports go to --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_json(python: str, args: list[str]) -> dict:
    """One evaluation tool's --json report, run by `python` from the checkout."""
    run = subprocess.run([python, *args, "--json"], cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{python} {' '.join(args)} failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
    return json.loads(run.stdout)


def opencv_version(python: str) -> str:
    return subprocess.run([python, "-c", "import cv2; print(cv2.__version__)"], capture_output=True, text=True, check=True).stdout.strip()


def row(version: str, val: dict, video: dict) -> str:
    packaged, tracks = val["packaged"], video["catalogs"]["full"]["tracks"]
    return (f"| {version} | {packaged['recall_at_1']:.3f} | {packaged['top1']:.3f} | {packaged['wrong_identifications']:.3f} | "
            f"{packaged['false_id_rate']:.3f} | {tracks['recall']} ({tracks['catalog_items']}) | {tracks['false_id']} ({tracks['other_items']}) |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the Grocery Store Dataset root")
    parser.add_argument("--python", action="append", required=True, help="an interpreter to evaluate with (repeat)")
    parser.add_argument("--out", type=Path, default=Path("eval-out/opencv"), help="where the raw JSON reports go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lines = ["| OpenCV | val packaged recall@1 | top-1 | wrong | open-set false id | video track recall (tracks) | "
             "video track false id (tracks) |", "|---|---|---|---|---|---|---|"]
    for python in args.python:
        version = opencv_version(python)
        print(f"OpenCV {version} ({python}): evaluate.py, then evaluate_video.py", file=sys.stderr)
        val = run_json(python, ["-m", "tools.evaluate", "--data", str(args.data), "--split", "val", "--out", str(args.out / version)])
        video = run_json(python, ["-m", "tools.evaluate_video", "--catalogs", "full"])
        (args.out / f"{version}.json").write_text(json.dumps({"val": val, "video": video}, indent=1))
        lines.append(row(version, val, video))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
