#!/usr/bin/env python3
"""Copy a small fixed subset of the Grocery Store Dataset (MIT) in its own layout, for CI's accuracy floor.

    python -m tools.make_grocery_subset --data ../shared/data/grocery --out tests/data/grocery-mini
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

# packaged products, look-alike families included (Arla milks, Alpro, juices of one brand)
PRODUCTS = ["Alpro-Fresh-Soy-Milk", "Alpro-Shelf-Soy-Milk", "Arla-Standard-Milk", "Arla-Medium-Fat-Milk",
            "Arla-Ecological-Medium-Fat-Milk", "Bravo-Apple-Juice", "Bravo-Orange-Juice", "God-Morgon-Apple-Juice",
            "Oatly-Oat-Milk", "Tropicana-Apple-Juice", "Valio-Vanilla-Yoghurt", "Yoggi-Strawberry-Yoghurt"]
PHOTOS_PER_PRODUCT = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/grocery"), help="dataset root")
    parser.add_argument("--out", type=Path, default=Path("tests/data/grocery-mini"), help="where the subset goes")
    args = parser.parse_args()
    with open(args.data / "classes.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], [r for r in rows[1:] if r[0] in PRODUCTS]
    ids = {r[1] for r in rows}
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "classes.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    for r in rows:
        dst = args.out / r[4].lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.data / r[4].lstrip("/"), dst)
    picked, count = [], {}
    for line in (args.data / "val.txt").read_text().splitlines():
        path, fine, _ = [x.strip() for x in line.split(",")]
        if fine in ids and count.get(fine, 0) < PHOTOS_PER_PRODUCT:
            count[fine] = count.get(fine, 0) + 1
            (args.out / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.data / path, args.out / path)
            picked.append(line)
    (args.out / "val.txt").write_text("\n".join(picked) + "\n")
    shutil.copyfile(args.data / "LICENSE", args.out / "LICENSE")
    print(f"wrote {len(rows)} products and {len(picked)} val photos to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
