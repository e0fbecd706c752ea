#!/usr/bin/env python3
"""Transfer benchmark: the decision on several sources, each reported on its own.

    python -m tools.evaluate_transfer [--sources grocery-val,shelf-video,os2d-demo,synthetic,pam-cereals] [--json] [--out FILE]

Sources (a source is catalog references, labelled instances, and the products left out for the open set):
  grocery-val  the Grocery Store Dataset val photos of the 31 packaged products against their iconic images,
               the photo's centre as tools/evaluate.py queries it (--detect: the detector's most convincing box over
               the photo's labelled product, samples/grocery-val-boxes.json);
               open set: tools/evaluate.py's seeded third of the products left out (--open-set each: each product
               with photos left out in turn, its line's others staying: every photo judged once without its product)
  grocery-train the same from the train split: not one of the five (the embedder was trained on these photos, so
               their recall flatters it); for the open set with --open-set each (--limit to sample): it holds packaged
               products val has no photos of, Alpro Shelf and Fresh Soy Milk among them, one artwork on two cartons
  shelf-video  the shared video's 32 hand-labelled frames (samples/shelf-video-labels.json), boxes at least half
               visible, the detector's box matched to each (IoU >= 0.5; --boxes labelled: the label's box);
               catalog: Chá Mate Limão, Chá Mate Natural, Coca-Cola Sem Açúcar can (samples/shelf-catalog);
               open set: the video's other products, and each Chá Mate left out in turn (its twin stays)
  os2d-demo    the fridge shelf photo of ../shared/data/os2d-demo with our labels (samples/os2d-demo-labels.json):
               two Danissimo Fantasy packshots; open set: other Danissimos and yoghurts, and each Fantasy left out
  pam-cereals  the cereal shelf photo of ../shared/data/pam-cereals with our labels (samples/pam-cereals-labels.json):
               19 facings of 9 packshots in three look-alike lines (Special Flakes x3, Muesli x2, Choko x2); open set:
               each product left out in turn (its line's others stay). Added after the decision was fitted: held out
  synthetic    models/transfer_suite.py from the Grocery iconic images of the packaged products: references
               as packshot / tight crop / upscaled, queries on a shelf, small, under a sticker, in other light,
               colour twins with one of each pair left out

Per source: recall (right product named), wrong (another catalog product named; `sibling`: one of the same
family — brand for Grocery, colour twin for synthetic, look-alike line on the shelves), false_id (instances
whose product is in no catalog the run used, named), twin_false_id (of those, ones whose sibling stayed in the
catalog, named as it), with counts and seconds; for grocery-val also recall_same_edition, over the photos whose
iconic image shows the edition of the pack they show (samples/grocery-editions.csv: our labels), and
recall_other_edition over the others; for synthetic --editions (each colour twin another edition of its pack, its
image the product's second catalog image) recall_other_edition over the queries of a pack in its other edition; for
shelf-video recall_front, over the boxes that show the side the catalog's images show (our labels: 13 of the can's
boxes show its back or its end).
unknown_reasons: where recall is lost, the catalog instances left unknown counted by why (not_detected: no
detector box over it; small, no_match, partly_visible, colours_differ: edge.core.decision).

--out writes one JSON line per instance and run: source, run (closed / open-N), truth, its family, whether its
product was in the catalog, the judged crop's size, the retrieved candidates with similarity and, where verified,
inliers, inlier ratio, spread, appearance residual, reference kind, and the decision (status, product named,
confidence, reason). A calibration tool can fit on some sources' records and evaluate on the others (summarise()
takes any subset).

--differing-images DIR draws the colour comparison (reference | the crop aligned onto it | the face compared, red
where its colours differ) of each catalog instance whose right product's keypoints agreed but whose colours were
refused, of each wrong or false identification, and of each open-set instance whose look-alike's keypoints agreed
but whose colours were refused (the near misses): what to look at before changing the colour check.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.core.assembly import Models, identifier_for, open_second_opinion
from edge.core.catalog import load_catalog
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from edge.core.config_file import load_config
from edge.core.decision import keypoints_agree, passes
from edge.core.explain import explained
from edge.core.identify import Examined, crop_boxes
from edge.core.images import centre_crop, read_image
from edge.core.second_opinion import opinion_for
from models.transfer_suite import CONDITIONS, contact_sheet, make_suite, reference_image
from tools.evaluate import PHOTO_CROP, convincing, evaluation_config, main_boxes, open_set_split, over_box, read_dataset
from tools.evaluate_video import LABELS, SAMPLE_IMAGES, SHARED_VIDEO, UNSCORED, assign, read_frames, read_labels, scaled

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
OS2D_LABELS = REPO / "samples" / "os2d-demo-labels.json"
PAM_LABELS = REPO / "samples" / "pam-cereals-labels.json"
EDITIONS = REPO / "samples" / "grocery-editions.csv"
SOURCES = ("grocery-val", "shelf-video", "os2d-demo", "synthetic", "pam-cereals")
VIDEO_CATALOG = ("cha-mate-limao", "cha-mate-natural", "coca-cola-can")
VIDEO_FAMILIES = {"cha-mate-limao": "cha-mate", "cha-mate-natural": "cha-mate", "cha-mate-unsure": "cha-mate",
                  "coca-cola-can": "coca-cola-can", "coca-cola-can-original": "coca-cola-can"}
BACKGROUNDS = 12  # Grocery train photos the synthetic packs are pasted onto


@dataclass(frozen=True)
class Instance:
    key: str  # where it comes from (photo, frame and box, synthetic condition)
    truth: str  # product id; products in no catalog keep their own id (or "other")
    crops: tuple[np.ndarray, ...]  # the query, or a detector's boxes of one photo (the most convincing is judged); none: missed
    edition: str | None = None  # "same" / "other": whether the catalog image shows the edition of the pack it shows
    face: str | None = None  # the side of the pack it shows where the catalog's images show another (back, end): labelled


@dataclass
class Source:
    name: str
    references: dict[str, list]  # product id -> catalog images (paths or BGR arrays)
    instances: list[Instance]
    left_out: list[set[str]] = field(default_factory=list)  # one open-set run per set: the catalog without them
    families: dict[str, str] = field(default_factory=dict)  # product id -> family (absent: its own)
    detector_builds: bool = False  # the catalog build crops references with the detector (as tools/evaluate_video.py)

    def family(self, product: str) -> str:
        return self.families.get(product, product)


def grocery_val(data: Path, models, detect: bool, seed: int, limit: int | None = None, split: str = "val",
                each_left_out: bool = False) -> Source:
    """The packaged products' photos of one split; open set: the seeded third, or each product with photos in turn."""
    products, photos = read_dataset(data, split)
    packaged = {p.class_id: p for p in products if p.packaged}
    chosen = [(path, packaged[c].name) for path, c in photos if c in packaged]
    if limit:
        chosen = random.Random(seed).sample(chosen, min(limit, len(chosen)))
    instances = []
    main = main_boxes(data) if detect else {}
    editions = read_editions()
    for path, truth in tqdm(chosen, desc="grocery-val photos", unit="photo", disable=None):
        image = read_image(path)
        if detect:  # the detections over the photo's labelled product: a pack on the shelf behind is not the instance
            boxes = [d.bbox for d in models.detector.detect(image)]
            if path in main:
                boxes = [b for b, over in zip(boxes, over_box(boxes, main[path])) if over]
            crops = tuple(crop_boxes(image, boxes)[1])
        else:
            crops = (centre_crop(image, PHOTO_CROP),)
        instances.append(Instance(str(path.relative_to(data)), truth, crops, editions.get(truth)))
    names = [p.name for p in packaged.values()]
    left_out = [{n} for n in sorted({i.truth for i in instances})] if each_left_out else [open_set_split(names, seed)]
    return Source(f"grocery-{split}", {p.name: [p.iconic] for p in packaged.values()}, instances, left_out,
                  {n: n.split("-")[0] for n in names})


def read_editions(path: Path = EDITIONS) -> dict[str, str]:
    """Product -> "same" or "other": whether its Grocery iconic image shows the pack edition of its val photos (our
    labels: 11 of the 20 products with val photos show another edition there, a summer or redesigned pack, which no
    identical-product decision should name from that image)."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row["product"]: "same" if row["same_edition"] == "yes" else "other" for row in csv.DictReader(f)}


def labelled_instances(image: np.ndarray, key: str, labels: list[tuple[tuple, str]], models, boxes: str,
                       tiled: bool = False) -> list[Instance]:
    """One instance per label ((x1, y1, x2, y2), product): the detector's box matched to it, or the label's own box.
    `tiled`: detected at the image's own scale (a still, as `shelfid detect --tiles` does), not the camera's."""
    if boxes == "labelled":
        found = [b for b, _ in labels]
        matched = {i: i for i in range(len(labels))}
    else:
        found = [d.bbox for d in (models.detector.detect_tiled(image) if tiled else models.detector.detect(image))]
        matched = assign([_Label(b) for b, _ in labels], found)
    keep, crops = crop_boxes(image, found)
    crop_of = dict(zip(keep, crops))
    return [Instance(f"{key}#{i}", product, (crop_of[matched[i]],) if matched.get(i) in crop_of else ())
            for i, (_, product) in enumerate(labels)]


@dataclass(frozen=True)
class _Label:  # what tools.evaluate_video.assign reads
    box: tuple


def video_references() -> dict[str, list[Path]]:
    """The shelf video's catalog: each product's crops in samples/shelf-catalog."""
    return {p: sorted((SAMPLE_IMAGES / p).glob("*.jpg")) for p in VIDEO_CATALOG}


def shelf_video(video: Path, models, boxes: str) -> Source:
    labels = read_labels(LABELS)
    instances = []
    for index, image in tqdm(read_frames(video, 1, 1), desc="shelf-video frames", unit="frame", disable=None):
        if index in labels:
            scored = [lab for lab in scaled(labels[index], image) if lab.scored and lab.product not in UNSCORED]
            made = labelled_instances(image, f"frame {index}", [(lab.box, lab.product) for lab in scored], models, boxes)
            instances += [replace(instance, face=lab.face) for instance, lab in zip(made, scored)]
    return Source("shelf-video", video_references(), instances, [{"cha-mate-limao"}, {"cha-mate-natural"}], VIDEO_FAMILIES, True)


def labelled_stills(name: str, labels_file: Path, folder: Path, models, boxes: str) -> Source:
    """A source of still photos labelled as samples/os2d-demo-labels.json is: references, families, boxes per image."""
    spec = json.loads(labels_file.read_text(encoding="utf-8"))
    instances = []
    for file, boxes_of in spec["images"].items():
        scored = [(tuple(map(float, b["box"])), b["product"]) for b in boxes_of if b.get("visible") == "half"]
        instances += labelled_instances(read_image(folder / file), file, scored, models, boxes, tiled=True)
    references = {p: [folder / f for f in files] for p, files in spec["references"].items()}
    return Source(name, references, instances, [{p} for p in sorted(references)], spec.get("families", {}))


def synthetic(data: Path, seed: int, twins: int, conditions: tuple[str, ...] = CONDITIONS,
              second_images: bool = False, editions: bool = False) -> tuple[Source, object]:
    """`second_images`: each product's catalog holds a second image of its front after its reference (the upscaled
    tight crop; the tight crop where the reference is that). `editions`: each colour twin is another edition of its
    pack, the same product, whose catalog holds the edition's image after the pack's; its queries are that product
    in the other edition (Instance.edition "other"); no open set (the plain suite's left-out twins are that)."""
    products, _ = read_dataset(data, "val")
    packshots = {p.name: read_image(p.iconic) for p in products if p.packaged}
    train = sorted(read_dataset(data, "train")[1]) if (data / "train.txt").is_file() else []  # else plain shelves
    backgrounds = [read_image(path) for path, _ in random.Random(seed).sample(train, min(BACKGROUNDS, len(train)))]
    suite = make_suite(packshots, backgrounds, seed, twins, conditions)
    instances = [Instance(f"{q.product_id}/{q.condition}", q.product_id, (q.crop,)) for q in suite.queries]
    references = {p.product_id: [p.reference] for p in suite.packs}
    if second_images:
        for p in suite.packs:
            references[p.product_id].append(reference_image(p.reference, p.face, "tight" if p.reference_kind == "upscaled" else "upscaled"))
    families = {p.product_id: p.family for p in suite.packs}
    if editions:
        instances = [replace(i, truth=families[i.truth], edition="same" if families[i.truth] == i.truth else "other")
                     for i in instances]
        for p in suite.packs:
            if p.family != p.product_id:
                references[p.family] += references.pop(p.product_id)
        return Source("synthetic", references, instances, []), suite
    return Source("synthetic", references, instances, [set(suite.left_out)], families), suite


def build(references: dict[str, list], folder: Path, models, detector_builds: bool) -> Path:
    images = folder / "images"
    for product, refs in references.items():
        (images / product).mkdir(parents=True)
        for n, ref in enumerate(refs):
            if isinstance(ref, Path):
                (images / product / f"{n}-{ref.name}").write_bytes(ref.read_bytes())
            else:
                cv2.imwrite(str(images / product / f"{n}.png"), ref)
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    report = build_catalog(images, folder / "catalog", embedder, verifier, detector if detector_builds else None, folder.name)
    if report.skipped:  # a reference the catalog lacks turns its product's instances into an open set unnoticed
        raise SystemExit(f"{folder.name}: the catalog build skipped references: {'; '.join(report.skipped[:3])}")
    return folder / "catalog"


def record(source: Source, run: str, instance: Instance, catalog_products: set[str], examined: Examined | None, catalog) -> dict:
    """One instance's evidence and decision, as --out writes it."""
    family = source.family(instance.truth)
    in_catalog = instance.truth in catalog_products
    out = {"source": source.name, "run": run, "key": instance.key, "truth": instance.truth, "family": family,
           "in_catalog": in_catalog, "sibling_in_catalog": any(source.family(p) == family for p in catalog_products - {instance.truth}),
           "detected": bool(instance.crops), "candidates": [], "status": "unknown", "named": None, "guess": None, "confidence": 0.0,
           "reason": "not_detected" if not instance.crops else None}
    if instance.edition:
        out["edition"] = instance.edition
    if instance.face:
        out["face"] = instance.face
    if examined is None:
        return out
    for n, cand in enumerate(examined.candidates):
        pid = catalog.products[cand.product_index].product_id
        row = {"product": pid, "family": source.family(pid), "similarity": round(cand.similarity, 4), "verified": n < len(examined.evidence)}
        if row["verified"]:
            e = examined.evidence[n]
            row |= {"inliers": e.match.inliers, "inlier_ratio": round(e.match.inlier_ratio, 3), "spread": round(e.match.spread, 3),
                    "differing": None if e.differing is None else round(e.differing, 3)}
        out["candidates"].append(row)
    ident = examined.identification
    return out | {"status": ident.status, "named": ident.product.product_id if ident.product else None,
                  "guess": ident.guess.product_id if ident.guess else None, "confidence": round(ident.confidence, 4),
                  "reason": ident.reason}


def run_source(source: Source, config: Config, models, workdir: Path, differing_images: Path | None = None) -> list[dict]:
    """Records of every instance against the full catalog (run "closed"), and of the left-out products' instances
    against the catalog without them (runs "open-1", "open-2" …); `differing_images`: draw_differing's folder."""
    runs = [("closed", set(), source.instances)]
    runs += [(f"open-{n}", out, [i for i in source.instances if i.truth in out]) for n, out in enumerate(source.left_out, 1)]
    records = []
    for run, out, instances in runs:
        references = {p: refs for p, refs in source.references.items() if p not in out}
        catalog = load_catalog(build(references, workdir / f"{source.name}-{run}", models, source.detector_builds))
        identifier = identifier_for(config, catalog, models, still=True)  # each instance is judged as shelfid detect judges a box
        second = opinion_for(config, identifier)
        for instance in tqdm(instances, desc=f"{source.name} {run}", unit="instance", disable=None):
            examined = identifier.examine(list(instance.crops)) if instance.crops else []
            best = max(examined, key=lambda e: convincing(e.identification), default=None)
            rec = record(source, run, instance, set(references), best, catalog)
            crop = instance.crops[next(i for i, e in enumerate(examined) if e is best)] if best is not None else None
            if crop is not None:
                rec["crop"] = [crop.shape[1], crop.shape[0]]
                if differing_images is not None:
                    draw_differing(differing_images / f"{source.name}-{run}-{len(records):04d}.png", rec, crop, best, identifier)
            if second is not None and rec["named"] is None and crop is not None:
                # as the daemon asks it: once, about what the first opinion left unknown, on its most convincing crop
                ident = second.identify(crop)
                rec["named_first"], rec["reason_first"] = None, rec["reason"]
                if ident.product is not None:
                    rec |= {"status": "identified", "named": ident.product.product_id, "second_opinion": True, "reason": None}
            records.append(rec)
    return records


def draw_differing(path: Path, rec: dict, crop: np.ndarray, examined: Examined, identifier) -> None:
    """The colour comparison behind a refusal of the right product whose keypoints agreed, behind a wrong or false
    identification, or behind an open-set near miss (a product whose keypoints agreed, refused on its colours; nothing
    for the rest); the candidate and its evidence written on it."""
    named, truth = rec["named"], rec["truth"]
    products = [identifier.catalog.products[c.product_index].product_id for c in examined.candidates]
    if named is not None and named != truth:
        shown = products.index(named)
    elif named is None and truth in products[:len(examined.evidence)]:
        shown = products.index(truth)
        e = examined.evidence[shown]
        if not keypoints_agree(e.match, identifier.thresholds) or passes(e, identifier.thresholds):
            return  # its keypoints did not agree, or its colours were not what refused it
    elif named is None and not rec["in_catalog"]:  # the near miss: the product whose keypoints agreed and colours came closest
        agreed = [i for i, e in enumerate(examined.evidence) if keypoints_agree(e.match, identifier.thresholds)]
        if not agreed:
            return
        shown = min(agreed, key=lambda i: 1.0 if examined.evidence[i].differing is None else examined.evidence[i].differing)
    else:
        return
    image = explained(identifier, crop, examined.evidence[shown],
                      [rec["key"][-40:], f"truth {truth}", f"{'named' if named else 'refused'} {products[shown]}"])
    if image is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)


def summarise(records: list[dict]) -> dict:
    """Per source: recall, wrong, sibling, false_id, twin_false_id and their counts (any subset of records)."""
    report = {}
    for name in dict.fromkeys(r["source"] for r in records):
        mine = [r for r in records if r["source"] == name]
        known = [r for r in mine if r["in_catalog"]]
        unknown = [r for r in mine if not r["in_catalog"]]
        twins = [r for r in unknown if r["sibling_in_catalog"]]
        right = sum(r["named"] == r["truth"] for r in known)
        wrong = [r for r in known if r["named"] not in (None, r["truth"])]
        sibling = sum(_family_of(r, r["named"]) == r["family"] for r in wrong)
        false_ids = [r for r in unknown if r["named"] is not None]
        twin_false = sum(_family_of(r, r["named"]) == r["family"] for r in twins if r["named"] is not None)
        report[name] = {"recall": _rate(right, len(known)), "wrong": _rate(len(wrong), len(known)), "sibling": _rate(sibling, len(known)),
                        "false_id": _rate(len(false_ids), len(unknown)), "twin_false_id": _rate(twin_false, len(twins)),
                        "catalog_instances": len(known), "right": right, "wrong_n": len(wrong), "sibling_n": sibling,
                        "open_instances": len(unknown), "false_id_n": len(false_ids), "twin_instances": len(twins),
                        "twin_false_id_n": twin_false, "detected": _rate(sum(r["detected"] for r in mine), len(mine)),
                        "confusions": dict(Counter(f"{r['truth']} -> {r['named']}" for r in wrong + false_ids).most_common(6)),
                        # where recall is lost: why the catalog's instances left unknown are unknown (edge.core.decision)
                        "unknown_reasons": dict(Counter(r.get("reason") for r in known if r["named"] is None).most_common())}
        for edition in ("same", "other"):  # same: instances whose (first) catalog image shows their pack's edition
            these = [r for r in known if r.get("edition") == edition]
            if these:
                report[name] |= {f"recall_{edition}_edition": _recall(these), f"{edition}_edition_instances": len(these)}
        if any("face" in r for r in known):  # the catalog's images show the side these instances show (the front)
            front = [r for r in known if "face" not in r]
            report[name] |= {"recall_front": _recall(front), "front_instances": len(front)}
    return report


def _rate(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def _recall(records: list[dict]) -> float | None:
    """The share of these catalog instances named as their own product."""
    return _rate(sum(r["named"] == r["truth"] for r in records), len(records))


def _family_of(rec: dict, product: str | None) -> str | None:
    return next((c["family"] for c in rec["candidates"] if c["product"] == product), None)


def open_source(name: str, args, models) -> tuple[Source, object]:
    """The named source, prepared, and its synthetic suite (for the examples image) or None."""
    if name in ("grocery-val", "grocery-train"):
        return grocery_val(args.data, models, args.detect, args.seed, args.limit, name.split("-")[1], args.open_set == "each"), None
    if name == "shelf-video":
        return shelf_video(args.video, models, args.boxes), None
    if name == "os2d-demo":
        return labelled_stills(name, OS2D_LABELS, DATA / "os2d-demo", models, args.boxes), None
    if name == "pam-cereals":
        return labelled_stills(name, PAM_LABELS, DATA / "pam-cereals", models, args.boxes), None
    if name == "synthetic":
        return synthetic(args.data, args.seed, args.twins, tuple(c for c in args.conditions.split(",") if c), args.second_images,
                         args.editions)
    raise SystemExit(f"unknown source {name!r}: expected some of {', '.join(SOURCES)}, grocery-train")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"comma-separated, of {', '.join(SOURCES)}")
    parser.add_argument("--data", type=Path, default=DATA / "grocery", help="the Grocery Store Dataset (grocery-val, synthetic)")
    parser.add_argument("--video", type=Path, default=SHARED_VIDEO, help="the shared shelf video")
    parser.add_argument("--detect", action="store_true", help="grocery-val: the detector's boxes instead of the photo's centre")
    parser.add_argument("--boxes", choices=["detected", "labelled"], default="detected",
                        help="shelf-video, os2d-demo: the detector's box matched to each label, or the label's box")
    parser.add_argument("--seed", type=int, default=0, help="open-set split, synthetic suite")
    parser.add_argument("--twins", type=int, default=8, help="synthetic: colour twins made")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help=f"synthetic: comma-separated, of {', '.join(CONDITIONS)}")
    parser.add_argument("--second-images", action="store_true",
                        help="synthetic: a second catalog image of each product's front beside its reference")
    parser.add_argument("--editions", action="store_true",
                        help="synthetic: each colour twin is another edition of its pack (the same product, its image the "
                             "product's second catalog image); recall_other_edition: those queries named as the product")
    parser.add_argument("--limit", type=int, help="grocery-val, grocery-train: photos (a seeded sample), for quick checks")
    parser.add_argument("--open-set", choices=["third", "each"], default="third",
                        help="grocery: the open-set catalog lacks a seeded third of the products, or each product in turn")
    parser.add_argument("--config", type=Path, help="config naming models and thresholds (default: built-in defaults)")
    parser.add_argument("--out", type=Path, default=Path("eval-out/transfer/records.jsonl"), help="per-instance records (JSON lines)")
    parser.add_argument("--examples", type=Path, default=Path("eval-out/transfer/synthetic-examples.png"),
                        help="an image of the synthetic suite (references and queries)")
    parser.add_argument("--second-opinion", metavar="VERIFIER", help="a learned verifier kind (aliked-lightglue, disk-lightglue) "
                        "asked once about each instance the first opinion left unknown, as the daemon's verifier.second_opinion; "
                        "the first opinion's figures are reported beside (the records' candidates stay the first opinion's)")
    parser.add_argument("--differing-images", type=Path, metavar="DIR",
                        help="draw the colour comparison behind each right product refused on colour, each wrong or false "
                             "identification and each open-set near miss")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    config = evaluation_config(load_config(args.config) if args.config else Config())
    models = Models.open(config)
    if args.second_opinion:
        models = replace(models, second=open_second_opinion(config.verifier, args.second_opinion))
    records, seconds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [s for s in args.sources.split(",") if s]:
            started = time.perf_counter()
            source, suite = open_source(name, args, models)
            if suite is not None:
                args.examples.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(args.examples), contact_sheet(suite))
            records += run_source(source, config, models, Path(tmp), args.differing_images)
            seconds[name] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    report = {"verifier": models.verifier.id, "embedder": models.embedder.model_id[:12], "decision": config.decision.kind,
              "max_differing": config.decision.max_differing, "boxes": args.boxes, "grocery_detect": args.detect,
              "synthetic_editions": args.editions,
              "sources": {name: s | {"seconds": seconds[name]} for name, s in summarise(records).items()}}
    if models.second is not None:
        report["second_opinion"] = models.second.id
        report["first_opinion_sources"] = summarise([r | {"named": r.get("named_first", r["named"]), "reason": r.get("reason_first", r["reason"])}
                                                     for r in records])
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{'source':12s} {'recall':>6s} {'wrong':>6s} {'sibling':>7s} {'false_id':>8s} {'twin_fid':>8s}  counts")
        for name, s in report["sources"].items():
            print(f"{name:12s} {s['recall']!s:>6s} {s['wrong']!s:>6s} {s['sibling']!s:>7s} {s['false_id']!s:>8s} {s['twin_false_id']!s:>8s}  "
                  f"{s['right']}/{s['catalog_instances']} right, {s['false_id_n']}/{s['open_instances']} open named, {s['seconds']} s")
            print(f"{'':12s} left unknown: {', '.join(f'{why} {n}' for why, n in s['unknown_reasons'].items()) or 'none'}")
        print(f"records: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
