#!/usr/bin/env python3
"""Pack what the GPU embedder job needs into gpu-carry/ (gitignored), small enough to travel with the checkout.

    python -m tools.gpu_pack --data ../shared/data/grocery      # then: device run, carry ["gpu-carry"], bash tools/gpu_job.sh

The lent GPU machine has no internet and takes at most 64 MiB of working tree
(the checkout is ~24 MiB). So the Grocery photos are re-encoded at --side px
(JPEG --quality; the defaults make 36 MiB with the wheels), same layout and split files, and the few wheels the machine
lacks (the EfficientNet-Lite code, tqdm, Pillow) are downloaded here for its
Python (3.12, manylinux x86_64). The job starts from the bundled embedder
weights, so no ImageNet weights travel.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
WHEELS = ["efficientnet-lite-pytorch==0.1.0", "tqdm", "pillow"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset root")
    parser.add_argument("--out", type=Path, default=REPO / "gpu-carry", help="folder to fill (replaced)")
    parser.add_argument("--side", type=int, default=224, help="longest side of the re-encoded photos")
    parser.add_argument("--quality", type=int, default=72, help="JPEG quality")
    parser.add_argument("--no-wheels", action="store_true", help="photos only (the wheels need the package registry)")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python, for the wheels")
    args = parser.parse_args()

    files = [args.data / n for n in ("classes.csv", "train.txt", "val.txt")]
    if not all(f.is_file() for f in files):
        print(f"error: {args.data}: classes.csv, train.txt and val.txt needed (a Grocery Store Dataset root)", file=sys.stderr)
        return 2
    data = args.out / "grocery"
    if args.out.exists():
        shutil.rmtree(args.out)
    data.mkdir(parents=True)
    for f in files:
        shutil.copy(f, data / f.name)
    images = sorted(p for d in ("train", "val", "iconic-images-and-descriptions") for p in (args.data / d).rglob("*.jpg"))
    for path in tqdm(images, desc="photos", unit="img"):
        image = cv2.imread(str(path))
        scale = args.side / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        target = data / path.relative_to(args.data)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
    (args.out / "wheels").mkdir()
    if not args.no_wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
                        args.python_version, "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
                        "-d", str(args.out / "wheels"), *WHEELS], check=True)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    checkout = sum((REPO / f).stat().st_size for f in listed.decode().split("\0") if f and (REPO / f).is_file())
    total = (size + checkout) / 2**20
    print(f"wrote {args.out}: {len(images)} photos, wheels {sorted(p.name for p in (args.out / 'wheels').iterdir())}, "
          f"{size / 2**20:.1f} MiB; with the checkout {total:.1f} MiB of the 64 MiB that travel")
    if total > 64:
        print("error: too big to travel: lower --side or --quality", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
