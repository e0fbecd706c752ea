#!/usr/bin/env python3
"""Accuracy of the identification engine on a dataset in the Grocery Store Dataset layout.

    python -m tools.evaluate --data ../shared/data/grocery --split val [--json] [--detect]

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
all; --detect runs the detector instead, and judges the most convincing
detection over the product the photo shows (our hand-labelled boxes,
samples/grocery-val-boxes.json, for the packaged val photos; elsewhere the
photo's most convincing detection): a pack on the shelf behind, named, is no
answer about the photo's product.

--shots K adds K seeded train photos per product (their centres, the product
region a catalog team would crop) to its iconic image: the catalog then holds
a packshot and K shelf photos of each product, as real catalogs do.

--enrol N[,N…]: learning from the shelf (issue 34), as python -m tools.evaluate_video --enrol measures it on the video.
For each catalog product, its first N photos of the split (by file name: the enrolment order) are "confirmed by
an installer": their crops, as the daemon would crop them (--detect: the detector's box this evaluation picks for
the photo with the catalog alone, or with --enrol-box retrieved the box that retrieves the photo's product first:
its judged box can be a neighbour; else the photo's centre it queries), become field references of that product
(edge.core.field_set), searched and verified beside the catalog. Every level (0, no references, and each N) is
scored on the same photos: the split less the first max(N) photos of every product, so levels compare. The
open-set third is never taught (the open catalog's references are its kept products' only), so all photos of
the removed products are scored as outsiders, at every level. Look-alikes: outsiders whose coarse class (Milk,
Juice, Apple…) has a product in the open catalog; named as one of those is a look-alike false identification.
Prints one line per subset and level (no PR curves); --limit does not apply.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.core.assembly import Models, identifier_for
from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from edge.core.config_file import load_config
from edge.core.field_references import new_reference
from edge.core.field_set import EMPTY, field_set
from edge.core.identify import Detected, Identification, Identifier, Timings, crop_boxes
from edge.core.images import centre_crop, read_image
from edge.daemon.tracker import iou_matrix
from tools.evaluate_video import IOU

# chosen on val, packaged recall@1 at 1.0 / 0.85 / 0.7 / 0.55 of each side: 0.76 / 0.85 / 0.87 / 0.79 with the
# previous embedder, 0.92 / 0.91 / 0.93 / 0.92 with the bundled one (trained with these centres)
PHOTO_CROP = 0.7
MAIN_BOXES = Path(__file__).resolve().parent.parent / "samples" / "grocery-val-boxes.json"


@dataclass(frozen=True)
class Product:
    class_id: int
    name: str
    iconic: Path
    packaged: bool
    coarse: str = ""  # the dataset's coarse class (Milk, Juice, Apple…): its products are look-alikes of each other


@dataclass
class PhotoResult:
    truth: str
    ranked: list[str]  # retrieval order of product ids (top 10)
    status: str
    predicted: str | None  # identified product, or the unknown's best guess
    score: float  # what the threshold sweep varies: the calibrated probability, or the chosen candidate's inliers
    in_catalog: bool
    central: tuple[str, str | None] = ("unknown", None)  # status and product of the detection nearest the photo's centre


def evaluation_config(config: Config, decision: str | None = None) -> Config:
    """The config with ten candidates retrieved (recall@10 is scored; the verifier still sees only
    verifier.candidates of them) and, when given, another decision rule."""
    update = {"index": config.index.model_copy(update={"top_k": max(config.index.top_k, 10)})}
    if decision:
        update["decision"] = config.decision.model_copy(update={"kind": decision})
    return config.model_copy(update=update)


def read_dataset(data: Path, split: str) -> tuple[list[Product], list[tuple[Path, int]]]:
    with open(data / "classes.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    products = [Product(int(r[1]), r[0], data / r[4].lstrip("/"), "/Packages/" in r[4], r[2]) for r in rows]
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


def main_boxes(data: Path, labels: Path = MAIN_BOXES) -> dict[Path, tuple[float, ...]]:
    """Our hand labels of the Grocery val photos of packaged products: the box of the product each shows (the one
    its folder names), by the photo's path under `data`."""
    images = json.loads(labels.read_text(encoding="utf-8"))["images"]
    return {data / key: tuple(map(float, entry["box"])) for key, entry in images.items()}


def over_box(boxes: list, box: tuple[float, ...]) -> list[bool]:
    """Per box (x1, y1, x2, y2): whether it is over `box` (IoU at least IOU, as labels are matched on the video)."""
    if not boxes:
        return []
    return list(iou_matrix(np.asarray([box], np.float64), np.asarray(boxes, np.float64))[0] >= IOU)


def open_set_split(names: list[str], seed: int) -> set[str]:
    """The seeded third of the products removed from the open-set catalog."""
    return set(random.Random(seed).sample(sorted(names), len(names) // 3))


def run_photos(identifier: Identifier, photos: list[tuple[Path, str]], in_catalog: set[str], detect: bool, crop: float,
               timings: Timings, desc: str, main: dict[Path, tuple[float, ...]] | None = None) -> list[PhotoResult]:
    """`main`: labelled boxes of the photos' products (main_boxes), judged instead of a photo's most convincing box."""
    results = []
    products = identifier.products  # the catalog's, then those only field references name
    for path, truth in tqdm(photos, desc=desc, unit="photo", disable=None):
        query, found = judged(identifier, read_image(path), detect, crop, timings, (main or {}).get(path))
        if not found:
            results.append(PhotoResult(truth, [], "unknown", None, 0.0, truth in in_catalog))
            continue
        ident = found[0].identification
        product = ident.product or ident.guess
        score = ident.confidence if identifier.calibration is not None else float(ident.inliers)
        results.append(PhotoResult(truth, [products[i].product_id for i in ident.ranked], ident.status,
                                   product.product_id if product else None, score, truth in in_catalog,
                                   named_at_centre(query, found)))
    return results


def named_at_centre(image: np.ndarray, found: list[Detected]) -> tuple[str, str | None]:
    """Status and product of the detection whose box centre is nearest the photo's (--enrol's second rule: the
    product the photographer centred, where the most convincing box may be an identified neighbour)."""
    if not found:
        return "unknown", None
    h, w = image.shape[:2]
    box = min(found, key=lambda f: ((f.bbox[0] + f.bbox[2] - w) ** 2 + (f.bbox[1] + f.bbox[3] - h) ** 2))
    ident = box.identification
    return ident.status, ident.product.product_id if ident.product else None


def judged(identifier: Identifier, image: np.ndarray, detect: bool, crop: float, timings: Timings,
           main: tuple[float, ...] | None = None) -> tuple[np.ndarray, list[Detected]]:
    """The image queried (the photo, or its centre) and its detections, the one judged first: each photo shows one
    product, so the most convincing detection; with `main` (the labelled box of the photo's product), the most
    convincing of the detections over it."""
    query = image if detect else centre_crop(image, crop)
    found = identifier.identify_image(query, detect=detect, timings=timings)
    if detect and main is not None and found:
        # a pack on the shelf behind, rightly named, is no answer about the photo's product (seen: God Morgon Red
        # Grapefruit behind a hand-held Bravo judged as a wrong identification of the Bravo)
        found = [f for f, over in zip(found, over_box([f.bbox for f in found], main)) if over]
    found.sort(key=lambda f: convincing(f.identification), reverse=True)
    return query, found


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
                    crop: float = PHOTO_CROP, shots: dict[int, list[Path]] | None = None,
                    main: dict[Path, tuple[float, ...]] | None = None) -> tuple[dict, list[PhotoResult]]:
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
        identifier = identifier_for(config, catalog, models, still=True)
        runs[label] = run_photos(identifier, queries, {p.name for p in members}, detect, crop,
                                 timings if label == "closed" else Timings(), f"{name} {label}", main)
    result = metrics(runs["closed"], runs["open"])
    result["ms"] = {k: round(v / len(queries), 1) for k, v in timings.ms.items()}
    result["confusions"] = confusion(runs["closed"])
    result["catalog_images"] = images["closed"]
    return result, runs["closed"]


def enrolment_photos(queries: list[tuple[Path, str]], most: int) -> dict[str, list[Path]]:
    """The first `most` photos of each product, by file name: those an installer confirms (--enrol)."""
    by_product: dict[str, list[Path]] = {}
    for path, name in sorted(queries, key=lambda q: str(q[0])):
        by_product.setdefault(name, []).append(path)
    return {name: paths[:most] for name, paths in by_product.items()}


def installer_crops(identifier: Identifier, photos: dict[str, list[Path]], detect: bool, crop: float,
                    box: str = "judged") -> dict[str, list[np.ndarray]]:
    """Each enrolment photo's crop as the daemon would hand it over: with --detect the box judged with the catalog
    alone (`judged`), or the box that retrieves the photo's product first, most similar (`retrieved`: an installer who
    confirms the crop showing that product; none when no box does); without, the photo's centre. A photo where
    nothing is detected gives none (there is nothing to confirm)."""
    crops: dict[str, list[np.ndarray]] = {}
    for name, paths in tqdm(photos.items(), desc="enrolment crops", unit="product", disable=None):
        for path in paths:
            query, found = judged(identifier, read_image(path), detect, crop, Timings())
            if box == "retrieved" and detect:
                found = sorted((f for f in found if f.identification.ranked
                                and identifier.products[f.identification.ranked[0]].product_id == name),
                               key=lambda f: f.identification.similarity, reverse=True)
            if found:
                crops.setdefault(name, []).extend(c.copy() for c in crop_boxes(query, [found[0].bbox])[1])
    return crops


def confirmed(catalog, crops: dict[str, list[np.ndarray]]) -> dict[str, list[tuple]]:
    """Field references (with their crops) of the catalog's products, in enrolment order; products not in this
    catalog (the open set's removed third) are never taught."""
    info = {p.product_id: p for p in catalog.products}
    return {name: [(new_reference(catalog.catalog_id, name, info[name].sku, info[name].name, new_product=False,
                                  device_id="evaluate", track_id=n, confirmed_by="evaluate"), c) for n, c in enumerate(found)]
            for name, found in crops.items() if name in info}


def lookalikes(outsiders: list[PhotoResult], coarse: dict[str, str], kept: set[str], central: bool = False) -> dict:
    """Outsider photos with a sibling (same coarse class) in the catalog, and those named as a sibling (`central`: on the
    box nearest the photo's centre)."""
    families = {coarse[name] for name in kept}
    items = [r for r in outsiders if coarse[r.truth] in families]
    named = sum(status == "identified" and coarse.get(product) == coarse[r.truth]
                for r in items for status, product in [r.central if central else (r.status, r.predicted)])
    return {"lookalike_photos": len(items), "lookalike_false_ids": named, "lookalike_false_id_rate": named / max(len(items), 1)}


def evaluate_enrolment(name: str, products: list[Product], photos: list[tuple[Path, int]], config: Config, models, detect: bool,
                       seed: int, workdir: Path, levels: list[int], variants: int = 0, crop: float = PHOTO_CROP,
                       shots: dict[int, list[Path]] | None = None, box: str = "judged",
                       main: dict[Path, tuple[float, ...]] | None = None) -> dict:
    """--enrol: every level scored on the photos no level enrols; the removed third's photos all scored as outsiders;
    `main` as run_photos takes it."""
    by_id = {p.class_id: p for p in products}
    queries = [(path, by_id[c].name) for path, c in photos if c in by_id]
    enrol = enrolment_photos(queries, max(levels))
    enrolled = {path for paths in enrol.values() for path in paths}
    scored = [q for q in queries if q[0] not in enrolled]
    removed = open_set_split([p.name for p in products], seed)
    kept = [p for p in products if p.name not in removed]
    outsiders = [q for q in queries if q[1] in removed]
    catalogs = {label: load_catalog(make_catalog(members, workdir / f"{name}-{label}", config, models, variants, shots))
                for label, members in (("closed", products), ("open", kept))}
    crops = installer_crops(identifier_for(config, catalogs["closed"], models, still=True), enrol, detect, crop, box)
    taught = {label: confirmed(catalog, crops) for label, catalog in catalogs.items()}
    coarse = {p.name: p.coarse for p in products}
    out: dict = {"enrolment_photos": len(enrolled), "enrolment_crops": sum(map(len, crops.values())), "levels": {}}
    fields = {"closed": EMPTY, "open": EMPTY}
    for level in sorted({0, *levels}):
        for label, catalog in catalogs.items():
            chosen = [pair for pairs in taught[label].values() for pair in pairs[:level]]
            fields[label] = field_set(catalog, chosen, models.embedder, models.verifier, known=fields[label]) if chosen else EMPTY
        timings = Timings()
        closed = run_photos(identifier_for(config, catalogs["closed"], models, fields["closed"], still=True), scored,
                            {p.name for p in products}, detect, crop, timings, f"{name} enrol {level} closed", main)
        opened = run_photos(identifier_for(config, catalogs["open"], models, fields["open"], still=True), outsiders,
                            {p.name for p in kept}, detect, crop, Timings(), f"{name} enrol {level} open", main)
        result = metrics(closed, opened) | lookalikes(opened, coarse, {p.name for p in kept})
        if detect:
            result["central_box"] = central_metrics(closed, opened) | lookalikes(opened, coarse, {p.name for p in kept}, central=True)
        result |= {"references": len(fields["closed"]), "open_references": len(fields["open"]),
                   "products_taught": len({image.product_index for image in fields["closed"].images}),
                   "ms": {k: round(v / max(len(scored), 1), 1) for k, v in timings.ms.items()}, "confusions": confusion(closed)}
        out["levels"][str(level)] = result
    return out


def central_metrics(closed: list[PhotoResult], outsiders: list[PhotoResult]) -> dict:
    """Identified right / wrong and false id judged on the box nearest each photo's centre (named_at_centre)."""
    n = max(len(closed), 1)
    return {"top1": sum(r.central == ("identified", r.truth) for r in closed) / n,
            "wrong_identifications": sum(r.central[0] == "identified" and r.central[1] != r.truth for r in closed) / n,
            "false_id_rate": sum(r.central[0] == "identified" for r in outsiders) / max(len(outsiders), 1)}


def print_enrolment(report: dict, subsets: list[str]) -> None:
    print(f"enrolment: first N {report['split']} photos of each product (by file name) taught; every level scored on the "
          "photos no level enrols; open-set photos never taught")
    for subset in subsets:
        for level, r in report[subset]["levels"].items():
            print(f"{subset:9s} enrol {level:>2s}  refs {r['references']:3d}  photos {r['photos']:4d}  identified {r['top1']:.3f}  "
                  f"wrong {r['wrong_identifications']:.3f}  recall@1 {r['recall_at_1']:.3f}  false-id {r['false_id_rate']:.3f} "
                  f"({r['open_set_photos']} open-set photos)  look-alike {r['lookalike_false_ids']} of {r['lookalike_photos']}")
            if "central_box" in r:
                c = r["central_box"]
                print(f"{'':9s}   box nearest the centre: identified {c['top1']:.3f}  wrong {c['wrong_identifications']:.3f}  "
                      f"false-id {c['false_id_rate']:.3f}  look-alike {c['lookalike_false_ids']} of {c['lookalike_photos']}")
            for line in r["confusions"]:
                print(f"    confused: {line}")


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
    parser.add_argument("--decision", choices=["thresholds", "calibrated"], help="override the config's decision.kind")
    parser.add_argument("--enrol", help="photos per product taught as field references, comma-separated levels (e.g. 1,2,3): see above")
    parser.add_argument("--enrol-box", choices=["judged", "retrieved"], default="judged",
                        help="with --detect, the enrolment photo's box taught: the one judged (default), or the one retrieving its product first")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    try:
        levels = sorted({int(n) for n in args.enrol.split(",")}) if args.enrol else []
    except ValueError:
        parser.error(f"--enrol {args.enrol}: comma-separated whole numbers, e.g. 1,2,3")
    if levels and (min(levels) < 0 or args.limit):
        parser.error("--enrol takes numbers >= 0 and does not go with --limit")

    config = evaluation_config(load_config(args.config) if args.config else Config(), args.decision)
    products, photos = read_dataset(args.data, args.split)
    models = Models.open(config)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"split": args.split, "verifier": models.verifier.id, "embedder": models.embedder.model_id[:12],
                    "decision": config.decision.kind, "photo_crop": None if args.detect else args.photo_crop,
                    "catalog_variants": args.catalog_variants, "shots": args.shots}
    shots = pick_shots(args.data, args.shots, args.seed)
    # --detect judges the detections over the photo's labelled product where we labelled it (the packaged val photos)
    labelled = main_boxes(args.data) if args.detect else None
    if labelled:
        report["judged"] = "the detections over the labelled product (samples/grocery-val-boxes.json), else the most convincing"
    started = time.perf_counter()
    total_photos = 0
    with tempfile.TemporaryDirectory() as tmp:
        for subset in args.subsets.split(","):
            members = [p for p in products if p.packaged] if subset == "packaged" else products
            if levels:
                report[subset] = evaluate_enrolment(subset, members, photos, config, models, args.detect, args.seed, Path(tmp),
                                                    levels, args.catalog_variants, args.photo_crop, shots, args.enrol_box, labelled)
                continue
            result, closed = evaluate_subset(subset, members, photos, config, models, args.detect, args.seed, Path(tmp), args.limit,
                                             args.catalog_variants, args.photo_crop, shots, labelled)
            pr_curve(closed, args.out / f"pr-{subset}-{args.split}.png", f"{subset} ({args.split}, {config.decision.kind})")
            report[subset] = result
            total_photos += 2 * result["photos"]
    report["ms_per_image"] = round((time.perf_counter() - started) * 1000 / max(total_photos, 1), 1)
    if levels:
        report["enrol"], report["enrol_box"] = levels, args.enrol_box if args.detect else "photo centre"
        del report["ms_per_image"]  # levels query other photos than the plain run: its wall time instead
        report["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(report))
    elif levels:
        print_enrolment(report, args.subsets.split(","))
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
