#!/usr/bin/env python3
"""Accuracy of the identification engine on a dataset in the Grocery Store Dataset layout.

    python tools/evaluate.py --data ../shared/data/grocery --split val [--json] [--detect]

Builds a catalog from the iconic images (one per product), runs every photo
of the split through the pipeline, and reports retrieval recall@1/5/10,
verified top-1 accuracy and, with a seeded third of the products removed from
the catalog, the open-set false-identification rate (photos of removed
products that are not reported unknown). Separately for the packaged
products (identical-product case) and for all products. Writes a
precision-recall curve over the decision threshold and a confusion summary.

The query is the photo's centre (--photo-crop, default 0.7 of each side): the
dataset's photos centre one product among its neighbours on the shelf, and
the centre stands in for the detector's box around it (the daemon hands the
engine detector crops). --photo-crop 1 queries the whole photo, neighbours and
all; --detect runs the detector instead.

--shots K adds K seeded train photos per product (their centres, the product
region a catalog team would crop) to its iconic image: the catalog then holds
a packshot and K shelf photos of each product, as real catalogs do.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from edge.core.assembly import Models, identifier_for  # noqa: E402
from edge.core.catalog import load_catalog  # noqa: E402
from edge.core.catalog_build import build_catalog  # noqa: E402
from edge.core.config import Config  # noqa: E402
from edge.core.config_file import load_config  # noqa: E402
from edge.core.identify import Identification, Identifier, Timings  # noqa: E402
from edge.core.images import centre_crop, read_image  # noqa: E402

# chosen on val, packaged recall@1 at 1.0 / 0.85 / 0.7 / 0.55 of each side: 0.76 / 0.85 / 0.87 / 0.79 with the
# previous embedder, 0.92 / 0.91 / 0.93 / 0.92 with the bundled one (trained with these centres)
PHOTO_CROP = 0.7


@dataclass(frozen=True)
class Product:
    class_id: int
    name: str
    iconic: Path
    packaged: bool


@dataclass
class PhotoResult:
    truth: str
    ranked: list[str]  # retrieval order of product ids (top 10)
    status: str
    predicted: str | None  # identified product, or the unknown's best guess
    score: float  # what the threshold sweep varies: the calibrated probability, or the chosen candidate's inliers
    in_catalog: bool


def evaluation_config(config: Config, decision: str | None = None) -> Config:
    """The config with ten candidates retrieved (recall@10 is scored; the verifier still sees only
    verifier.candidates of them) and, when given, another decision rule."""
    update = {"index": config.index.model_copy(update={"top_k": max(config.index.top_k, 10)})}
    if decision:
        update["verifier"] = config.verifier.model_copy(update={"decision": decision})
    return config.model_copy(update=update)


def read_dataset(data: Path, split: str) -> tuple[list[Product], list[tuple[Path, int]]]:
    with open(data / "classes.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    products = [Product(int(r[1]), r[0], data / r[4].lstrip("/"), "/Packages/" in r[4]) for r in rows]
    photos = []
    for line in (data / f"{split}.txt").read_text().splitlines():
        if line.strip():
            path, fine, _ = [x.strip() for x in line.split(",")]
            photos.append((data / path, int(fine)))
    return products, photos


def make_catalog(products: list[Product], folder: Path, config: Config, models, variants: int = 0,
                 shots: dict[int, list[Path]] | None = None) -> Path:
    src = folder / "images"
    for p in products:
        (src / p.name).mkdir(parents=True, exist_ok=True)
        (src / p.name / "0-iconic.jpg").write_bytes(p.iconic.read_bytes())  # named to sort first: the product's packshot
        for n, photo in enumerate((shots or {}).get(p.class_id, []), 1):
            cv2.imwrite(str(src / p.name / f"shot-{n}.jpg"), centre_crop(read_image(photo), PHOTO_CROP), [cv2.IMWRITE_JPEG_QUALITY, 95])
    embedder, verifier = models.embedder, models.verifier
    out = folder / "catalog"
    build_catalog(src, out, embedder, verifier, None, folder.name, variants=variants)
    return out


def pick_shots(data: Path, k: int, seed: int) -> dict[int, list[Path]]:
    """k seeded train photos per product (fewer where the split has fewer)."""
    if not k:
        return {}
    _, train = read_dataset(data, "train")
    by_class: dict[int, list[Path]] = {}
    for path, c in train:
        by_class.setdefault(c, []).append(path)
    rng = random.Random(seed)
    return {c: rng.sample(paths, min(k, len(paths))) for c, paths in sorted(by_class.items())}


def convincing(ident: Identification) -> tuple:
    """Sort key (higher first) for several detections in a photo of one product: identified, confidence, then how much
    it looks like a catalog product (similarity: among unknowns the thresholds decision scores all alike), inliers."""
    return ident.status == "identified", ident.confidence, ident.similarity, ident.inliers


def open_set_split(names: list[str], seed: int) -> set[str]:
    """The seeded third of the products removed from the open-set catalog."""
    return set(random.Random(seed).sample(sorted(names), len(names) // 3))


def run_photos(identifier: Identifier, photos: list[tuple[Path, str]], in_catalog: set[str], detect: bool, crop: float,
               timings: Timings, desc: str) -> list[PhotoResult]:
    results = []
    products = identifier.catalog.products
    for path, truth in tqdm(photos, desc=desc, unit="photo", disable=None):
        image = read_image(path)
        found = identifier.identify_image(image if detect else centre_crop(image, crop), detect=detect, timings=timings)
        # each photo shows one product: judge the most convincing detection
        found.sort(key=lambda f: convincing(f.identification), reverse=True)
        if not found:
            results.append(PhotoResult(truth, [], "unknown", None, 0.0, truth in in_catalog))
            continue
        ident = found[0].identification
        product = ident.product or ident.guess
        score = ident.confidence if identifier.calibration is not None else float(ident.inliers)
        results.append(PhotoResult(truth, [products[i].product_id for i in ident.ranked], ident.status,
                                   product.product_id if product else None, score, truth in in_catalog))
    return results


def metrics(closed: list[PhotoResult], open_set: list[PhotoResult]) -> dict:
    n = len(closed)
    recall = {k: sum(r.truth in r.ranked[:k] for r in closed) / n for k in (1, 5, 10)}
    correct = sum(r.status == "identified" and r.predicted == r.truth for r in closed)
    wrong = sum(r.status == "identified" and r.predicted != r.truth for r in closed)
    outsiders = [r for r in open_set if not r.in_catalog]
    false_ids = sum(r.status == "identified" for r in outsiders)
    return {"photos": n, "top1": correct / n, "recall_at_1": recall[1], "recall_at_5": recall[5], "recall_at_10": recall[10],
            "wrong_identifications": wrong / n, "unknown_rate": sum(r.status == "unknown" for r in closed) / n,
            "false_id_rate": false_ids / max(len(outsiders), 1), "open_set_photos": len(outsiders)}


def pr_curve(results: list[PhotoResult], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = sorted({r.score for r in results})
    points = []
    for t in scores:
        chosen = [r for r in results if r.score >= t]
        if chosen:
            right = sum(r.predicted == r.truth for r in chosen)
            points.append((right / len(results), right / len(chosen), t))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
    ax.set_xlabel("recall (correct identifications / photos)")
    ax.set_ylabel("precision (correct / identified)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def confusion(results: list[PhotoResult], top: int = 8) -> list[str]:
    pairs = Counter((r.truth, r.predicted) for r in results if r.status == "identified" and r.predicted != r.truth)
    return [f"{truth} -> {pred}: {n}" for (truth, pred), n in pairs.most_common(top)]


def evaluate_subset(name: str, products: list[Product], photos: list[tuple[Path, int]], config: Config, models,
                    detect: bool, seed: int, workdir: Path, limit: int | None, variants: int = 0,
                    crop: float = PHOTO_CROP, shots: dict[int, list[Path]] | None = None) -> tuple[dict, list[PhotoResult]]:
    by_id = {p.class_id: p for p in products}
    queries = [(path, by_id[c].name) for path, c in photos if c in by_id]
    if limit:
        queries = random.Random(seed).sample(queries, min(limit, len(queries)))
    removed = open_set_split([p.name for p in products], seed)
    kept = [p for p in products if p.name not in removed]
    timings = Timings()
    runs, images = {}, {}
    for label, members in (("closed", products), ("open", kept)):
        folder = workdir / f"{name}-{label}"
        catalog = load_catalog(make_catalog(members, folder, config, models, variants, shots))
        images[label] = len(catalog.images)
        identifier = identifier_for(config, catalog, models)
        runs[label] = run_photos(identifier, queries, {p.name for p in members}, detect, crop,
                                 timings if label == "closed" else Timings(), f"{name} {label}")
    result = metrics(runs["closed"], runs["open"])
    result["ms"] = {k: round(v / len(queries), 1) for k, v in timings.ms.items()}
    result["confusions"] = confusion(runs["closed"])
    result["catalog_images"] = images["closed"]
    return result, runs["closed"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset root (classes.csv, <split>.txt, iconic images)")
    parser.add_argument("--split", default="val", help="which <split>.txt to run")
    parser.add_argument("--config", type=Path, help="config naming models and thresholds (default: built-in defaults)")
    parser.add_argument("--detect", action="store_true", help="run the detector instead of using the whole photo")
    parser.add_argument("--seed", type=int, default=0, help="seed for the open-set split and --limit")
    parser.add_argument("--limit", type=int, help="photos per subset (a seeded sample), for quick checks")
    parser.add_argument("--subsets", default="packaged,all", help="packaged, all, or both")
    parser.add_argument("--out", type=Path, default=Path("eval-out"), help="where the PR curves go")
    parser.add_argument("--catalog-variants", type=int, default=0, help="extra retrieval views per catalog image (shelfid catalog build --variants)")
    parser.add_argument("--shots", type=int, default=0, help="train photos per product added to its iconic image in the catalog")
    parser.add_argument("--photo-crop", type=float, default=PHOTO_CROP, help="centre fraction of each photo side queried (1: whole photo)")
    parser.add_argument("--decision", choices=["thresholds", "calibrated"], help="override the config's verifier.decision")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    config = evaluation_config(load_config(args.config) if args.config else Config(), args.decision)
    products, photos = read_dataset(args.data, args.split)
    models = Models.open(config)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"split": args.split, "verifier": models.verifier.id, "embedder": models.embedder.model_id[:12],
                    "decision": config.verifier.decision, "photo_crop": None if args.detect else args.photo_crop,
                    "catalog_variants": args.catalog_variants, "shots": args.shots}
    shots = pick_shots(args.data, args.shots, args.seed)
    started = time.perf_counter()
    total_photos = 0
    with tempfile.TemporaryDirectory() as tmp:
        for subset in args.subsets.split(","):
            members = [p for p in products if p.packaged] if subset == "packaged" else products
            result, closed = evaluate_subset(subset, members, photos, config, models, args.detect, args.seed, Path(tmp), args.limit,
                                             args.catalog_variants, args.photo_crop, shots)
            pr_curve(closed, args.out / f"pr-{subset}-{args.split}.png", f"{subset} ({args.split}, {config.verifier.decision})")
            report[subset] = result
            total_photos += 2 * result["photos"]
    report["ms_per_image"] = round((time.perf_counter() - started) * 1000 / max(total_photos, 1), 1)
    if args.json:
        print(json.dumps(report))
    else:
        for subset in args.subsets.split(","):
            r = report[subset]
            print(f"{subset:9s} photos {r['photos']:4d}  top1 {r['top1']:.3f}  recall@1/5/10 {r['recall_at_1']:.3f}/"
                  f"{r['recall_at_5']:.3f}/{r['recall_at_10']:.3f}  false-id {r['false_id_rate']:.3f} "
                  f"({r['open_set_photos']} open-set photos)  wrong {r['wrong_identifications']:.3f}  ms {r['ms']}")
            for line in r["confusions"]:
                print(f"    confused: {line}")
        print(f"ms per image (all stages, both runs): {report['ms_per_image']}; PR curves in {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
