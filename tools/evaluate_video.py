#!/usr/bin/env python3
"""Identification on the real shelf video, judged against our own hand labels, with the detector in the loop.

    python -m tools.evaluate_video [--video ../shared/data/shelf-video/output.m3u8] [--json] [--catalogs full,natural-only]
    python -m tools.evaluate_video --enrol 1,2,5 [--enrol-until 16]     # learning from the shelf, below

Labels: samples/shelf-video-labels.json, boxes of every product facing on 32
frames of the shared video (every 30th, 1280×720), labelled by hand. The
repo's samples/shelf.mp4 (the first 8 s, every other frame, 640×360) works
too: labels are scaled to the frame and mapped by --frame-step (2 for it).

Catalogs, all built from samples/shelf-catalog (crops of frames 0 and 300):
  full          Chá Mate Limão, Chá Mate Natural, Coca-Cola Sem Açúcar can
  natural-only  Chá Mate Natural alone: every Limão is the look-alike open-set case
  absent        none of the video's products (the Grocery mini set): whatever is identified is false

Per box, on the labelled frames (boxes at least half visible are scored):
  detected      the detector's boxes (IoU ≥ 0.5 with the label), as the daemon crops them
  labelled      the labelled boxes as crops: identification alone, without the detector's misses
  recall (catalog products named right), wrong (named as another catalog product),
  false_id (products not in the catalog named as one), lookalike_false_id (Limão named Natural).
Per track: the daemon's Pipeline over every --stride-th frame, identification
inline (results do not depend on this CPU's speed); a track takes the label of
the labelled boxes it overlaps (IoU ≥ 0.5): an identified track the label nearest
the moment it was named (a track can drift onto a neighbour later), another the
majority; recall over tracks of
catalog products in view ≥ 1 s, false_id over tracks of other products, and
the time from a track's first sight to its identification. Catalog tracks left unknown are counted by why
(`unknown_reasons`: the reason of the identification that came nearest, by inliers, or `never_identified`);
--tracks-out FILE writes every scored track with each identification of it, to see why.

--enrol N,…: an installer teaching the device from the shelf, as the video plays. At each labelled frame of
the first --enrol-until seconds, a track of a catalog product that the device confirmed as unknown is
"confirmed on the page" by its label, as a person would (its sharpest crops become field references,
edge.core.field_set; the pipeline switches to them at once, as the daemon does), up to N tracks per product.
Scored for 0 (no teaching) and each N: while teaching, the tracks the installer did not touch (the taught ones
are not scored: they are named because a person said so); then the whole video played again from the start
with what was taught, every track scored, as a shelf camera sees the same shelf all day (this replays frames
that were taught from: an upper bound for a moving camera, the everyday case for a fixed one). Products not in
the catalog are never taught: under natural-only every Limão stays the look-alike that must not be named
Natural.

--self-teach MIN_INLIERS,PER_PRODUCT: the device teaching itself, with no label and no installer. As the video
plays, each track the device names with at least MIN_INLIERS inliers gives its box on that frame as a field
reference of the product it was named, up to PER_PRODUCT tracks per product; then the video is played again with
those references (the next pass, as above). Scored untaught, while teaching and on the next pass. Not what the
daemon does: a measure of what it would buy (docs/accuracy.md), and of the risk, a wrong name teaching itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections import Counter, defaultdict
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
from edge.core.field_references import new_reference
from edge.core.field_set import EMPTY, FieldSet, field_set
from edge.core.identify import Identification, Identifier, crop_boxes
from edge.core.verifier import Features, Match, Verifier
from edge.daemon.grabber import Frame
from edge.daemon.pipeline import Pipeline
from edge.daemon.tracker import UNKNOWN, Box, iou_matrix
from edge.daemon.unknowns import RecentUnknowns, sharpness
from edge.reporting.sinks import MemorySink
from models.embedder import Embedder

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "samples" / "shelf-video-labels.json"
SHARED_VIDEO = REPO.parent / "shared" / "data" / "shelf-video" / "output.m3u8"
SAMPLE_IMAGES = REPO / "samples" / "shelf-catalog"
GROCERY_MINI = REPO / "tests" / "data" / "grocery-mini" / "iconic-images-and-descriptions"
CATALOGS = {"full": ["cha-mate-limao", "cha-mate-natural", "coca-cola-can"], "natural-only": ["cha-mate-natural"], "absent": []}
UNSCORED = {"cha-mate-unsure"}  # a Chá Mate whose variant the labeller could not read: neither right nor wrong
LABEL_SIZE = (1280, 720)
IOU = 0.5
MIN_TRACK_S = 1.0


@dataclass(frozen=True)
class Label:
    box: tuple[float, float, float, float]
    product: str
    scored: bool  # at least half visible
    face: str | None = None  # the side the camera sees where it is not the front the catalog's image shows (back, end)


@dataclass
class Tally:
    """Counts for one kind of item (boxes or tracks) under one catalog."""
    catalog_items: int = 0
    right: int = 0
    wrong: int = 0
    other_items: int = 0
    false_id: int = 0
    lookalike_items: int = 0
    lookalike_false_id: int = 0
    confusions: Counter = field(default_factory=Counter)

    def add(self, truth: str, named: str | None, in_catalog: set[str]) -> None:
        if truth in UNSCORED:
            return
        if truth in in_catalog:
            self.catalog_items += 1
            self.right += named == truth
            self.wrong += named is not None and named != truth
        else:
            self.other_items += 1
            self.false_id += named is not None
            if truth == "cha-mate-limao" and "cha-mate-natural" in in_catalog:
                self.lookalike_items += 1
                self.lookalike_false_id += named == "cha-mate-natural"
        if named != (truth if truth in in_catalog else None):
            self.confusions[f"{truth} -> {named or 'unknown'}"] += 1

    def summary(self) -> dict:
        def rate(a: int, b: int) -> float | None:
            return round(a / b, 3) if b else None
        return {"catalog_items": self.catalog_items, "recall": rate(self.right, self.catalog_items),
                "wrong": rate(self.wrong, self.catalog_items), "other_items": self.other_items,
                "false_id": rate(self.false_id, self.other_items), "lookalike_items": self.lookalike_items,
                "lookalike_false_id": rate(self.lookalike_false_id, self.lookalike_items),
                "confusions": dict(self.confusions.most_common(6))}


def read_labels(path: Path = LABELS) -> dict[int, list[Label]]:
    """Labelled frames of the shared video (frame index → labels, in LABEL_SIZE pixels)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {int(f): [Label(tuple(map(float, b["box"])), b["product"], b.get("visible") == "half", b.get("face")) for b in boxes]
            for f, boxes in data["frames"].items()}


def assign(labels: list[Label], boxes: list) -> dict[int, int]:
    """label index → box index, greedily by IoU (≥ IOU), each box used once."""
    ious = iou_matrix(np.array([lab.box for lab in labels], np.float64).reshape(-1, 4), np.array(boxes, np.float64).reshape(-1, 4))
    taken, used = {}, set()
    for flat in np.argsort(-ious, axis=None):
        li, bi = (int(v) for v in np.unravel_index(flat, ious.shape))
        if ious[li, bi] < IOU:
            break
        if li not in taken and bi not in used:
            taken[li] = bi
            used.add(bi)
    return taken


def read_frames(video: Path, frame_step: int, stride: int, limit: int | None = None):
    """(original frame index, image) for every `stride`-th frame of the file (`frame_step` original frames per file frame)."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise SystemExit(f"{video}: cannot open the video (pass --video; the shared one is {SHARED_VIDEO})")
    index = 0
    while limit is None or index < limit:
        ok, image = capture.read()
        if not ok:
            break
        if index % stride == 0:
            yield index * frame_step, image
        index += 1
    capture.release()


def scaled(labels: list[Label], image: np.ndarray) -> list[Label]:
    s = image.shape[1] / LABEL_SIZE[0]
    return [replace(lab, box=tuple(v * s for v in lab.box)) for lab in labels]


def named(identification) -> str | None:
    return identification.product.product_id if identification.product is not None else None


def per_box(identifier: Identifier, frames: list[tuple[int, np.ndarray]], labels: dict[int, list[Label]], in_catalog: set[str]) -> dict:
    detected, labelled, found = Tally(), Tally(), Counter()
    for index, image in tqdm(frames, desc="boxes", leave=False):
        truth = scaled(labels[index], image)
        boxes = [d.bbox for d in identifier.detector.detect(image)]
        results = dict(identifier.identify_boxes(image, boxes))
        matched = assign(truth, boxes)
        for li, lab in enumerate(truth):
            if not lab.scored:
                continue
            found["labelled"] += 1
            found["detected"] += li in matched
            hit = results.get(matched[li]) if li in matched else None
            detected.add(lab.product, named(hit) if hit is not None else None, in_catalog)
        unmatched = [bi for bi in range(len(boxes)) if bi not in matched.values()]
        found["unlabelled_boxes"] += len(unmatched)
        found["unlabelled_identified"] += sum(1 for bi in unmatched if bi in results and named(results[bi]) is not None)
        scored = [lab for lab in truth if lab.scored]
        for lab, (_, ident) in zip(scored, identifier.identify_boxes(image, [lab.box for lab in scored])):
            labelled.add(lab.product, named(ident), in_catalog)
    detector = {"recall": round(found["detected"] / max(found["labelled"], 1), 3), "labelled_boxes": found["labelled"],
                "unlabelled_boxes": found["unlabelled_boxes"], "unlabelled_identified": found["unlabelled_identified"]}
    return {"detected": detected.summary(), "labelled": labelled.summary(), "detector": detector}


def video_fps(video: Path) -> float:
    return cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 30.0


class Attempts(RecentUnknowns):
    """The pipeline's recent unknowns (edge.daemon.unknowns), which it tells of every identification it makes, keeping
    each per track as well."""

    def __init__(self):
        super().__init__()
        self.by_track: dict[int, list[dict]] = defaultdict(list)

    def observe(self, track_id: int, ident: Identification, crop: np.ndarray, now: float, named: bool = False,
                box: Box | None = None) -> None:
        self.by_track[track_id].append({"t": round(now, 2), "product": ident.product.product_id if ident.product else None,
                                        "inliers": ident.inliers, "reason": ident.reason, "sharpness": round(sharpness(crop))})
        super().observe(track_id, ident, crop, now, named, box)


def unknown_reason(attempts: list[dict]) -> str:
    """Why a track stayed unknown: the reason of its attempt with the most inliers (the nearest it came to a name)."""
    if not attempts:
        return "never_identified"  # always waiting for a sharper crop, or behind other tracks
    return max(attempts, key=lambda a: a["inliers"])["reason"] or "unknown"


def per_track(config: Config, identifier: Identifier, video: Path, frame_step: int, stride: int, labels: dict[int, list[Label]],
              in_catalog: set[str], limit: int | None, teacher: Teacher | None = None, details: list | None = None) -> dict:
    """Track numbers over the video; with a `teacher` (Installer, SelfTeacher) teaching as it plays, shown every frame
    (the tracks it was told about are not scored); with the models' second opinion (verifier.second_opinion) as the
    daemon asks it, once per unknown track. `details`: gets one dict per scored track (its label, name, time in view
    and every identification of it)."""
    fps = video_fps(video)
    pipeline = Pipeline(config, identifier, MemorySink(), background=False)
    attempts = pipeline.unknowns = Attempts()
    seen: dict[int, list[float]] = {}  # track → [first, last] time in view
    first_identified: dict[int, tuple[str, float, int]] = {}  # track → (product, seconds from first sight, frame)
    observed: dict[int, list[tuple[int, str]]] = defaultdict(list)  # track → (labelled frame, product there)
    # streamed, not listed: the shared video's frames held at once (478 of 1280x720 at stride 2) were most of its 2.2 GB
    for index, image in tqdm(read_frames(video, frame_step, stride, limit), desc="tracks", unit="frame", leave=False):
        now = index / (fps * frame_step)
        events = pipeline.process(Frame(index, now, image))
        live = [t for t in pipeline.tracker.tracks if t.last_seen == now]
        for t in live:
            seen.setdefault(t.track_id, [now, now])[1] = now
        for event in events:
            if event["type"] == "identified" and event["track_id"] not in first_identified:
                first_identified[event["track_id"]] = (event["product"]["id"], now - seen[event["track_id"]][0], index)
        truth = scaled(labels[index], image) if index in labels else None
        if truth is not None:
            for li, ti in assign(truth, [t.bbox for t in live]).items():
                observed[live[ti].track_id].append((index, truth[li].product))
        if teacher is not None:
            teacher(pipeline, Seen(now, image, events, truth, live))
    tally, delays, reasons = Tally(), [], Counter()
    for track_id, labelled in observed.items():
        if teacher is not None and track_id in teacher.taught_tracks:
            continue
        product, delay, at = first_identified.get(track_id, (None, None, None))
        if product is None:
            truth = Counter(p for _, p in labelled).most_common(1)[0][0]
        else:  # what was in the box when it was named: a track can drift onto a neighbour later (seen: a pan to another aisle)
            truth = min(labelled, key=lambda obs: abs(obs[0] - at))[1]
        start, end = seen[track_id]
        if truth in in_catalog and end - start < MIN_TRACK_S:
            continue
        tally.add(truth, product, in_catalog)
        if product is not None and product == truth:
            delays.append(delay * 1000)
        if product is None and truth in in_catalog:
            reasons[unknown_reason(attempts.by_track[track_id])] += 1
        if details is not None:
            details.append({"track": track_id, "truth": truth, "named": product, "in_view_s": [round(start, 2), round(end, 2)],
                            "labelled_frames": [i for i, _ in labelled], "attempts": attempts.by_track[track_id]})
    out = tally.summary() | {"unknown_reasons": dict(reasons.most_common()), "tracks_labelled": len(observed), "time_to_identification_ms": {
        "p50": round(float(np.percentile(delays, 50))) if delays else None,
        "p95": round(float(np.percentile(delays, 95))) if delays else None}}
    if pipeline.second is not None:
        ms = list(pipeline.second.ms)
        out["second_opinion"] = {"verifier": pipeline.second.verifier.id, "tracks_asked": pipeline.second.asked,
                                 "tracks_named": pipeline.second.named,
                                 "ms_per_track": {"p50": round(float(np.percentile(ms, 50))) if ms else None,
                                                  "max": round(max(ms)) if ms else None}}
    return out


@dataclass(frozen=True)
class Seen:
    """One frame as a teacher is shown it: its time, pixels, the pipeline's events, the labels (None between labelled
    frames) and the tracks in view."""
    now: float
    image: np.ndarray
    events: list[dict]
    truth: list[Label] | None
    live: list


class Teacher:
    """Field references taught as the video plays; each lesson switches the pipeline to an identifier with them from the
    next frame on, as the daemon does. `taught_tracks`: tracks named because someone said so, not scored."""

    def __init__(self, config: Config, models: Models, catalog, per_product: int):
        self.config, self.models, self.catalog, self.per_product = config, models, catalog, per_product
        self.references: list = []
        self.field: FieldSet = EMPTY
        self.taught: Counter = Counter()
        self.taught_tracks: set[int] = set()

    def add(self, product: str, track_id: int, crops: list[np.ndarray], by: str) -> None:
        info = next(p for p in self.catalog.products if p.product_id == product)
        for crop in crops:
            self.references.append((new_reference(self.catalog.catalog_id, product, info.sku, info.name, new_product=False,
                                                  device_id=by, track_id=track_id, confirmed_by=by), crop))
        self.taught[product] += 1

    def learn(self, pipeline: Pipeline) -> None:
        self.field = field_set(self.catalog, self.references, self.models.embedder, self.models.verifier, known=self.field)
        pipeline.switch(identifier_for(self.config, self.catalog, self.models, self.field))


class Installer(Teacher):
    """Confirms on the page, by the labels, tracks the device called unknown (see --enrol): up to `per_product` tracks
    of each catalog product, in the first `until_s` seconds."""

    def __init__(self, config: Config, models: Models, catalog, in_catalog: set[str], per_product: int, until_s: float):
        super().__init__(config, models, catalog, per_product)
        self.in_catalog, self.until_s = in_catalog, until_s

    def __call__(self, pipeline: Pipeline, seen: Seen) -> None:
        if seen.truth is None or seen.now >= self.until_s:
            return
        added = False
        for li, ti in assign(seen.truth, [t.bbox for t in seen.live]).items():
            product, track = seen.truth[li].product, seen.live[ti]
            if product not in self.in_catalog or self.taught[product] >= self.per_product or track.confirmed is not UNKNOWN:
                continue
            entry = pipeline.unknowns.take(track.track_id)
            if entry is None or not entry.crops:
                continue
            self.add(product, track.track_id, [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for _, jpeg in entry.crops],
                     "evaluate")
            self.taught_tracks.add(track.track_id)
            added = True
        if added:
            self.learn(pipeline)


class SelfTeacher(Teacher):
    """The device teaching itself (see --self-teach): each track it names with at least `min_inliers` inliers gives its box
    on that frame as a field reference of the product it was named, up to `per_product` tracks of each; no label is
    read, and the tracks it taught from are scored like the rest."""

    def __init__(self, config: Config, models: Models, catalog, min_inliers: int, per_product: int):
        super().__init__(config, models, catalog, per_product)
        self.min_inliers = min_inliers

    def __call__(self, pipeline: Pipeline, seen: Seen) -> None:
        added = False
        for event in seen.events:
            if event["type"] != "identified" or event["scores"]["inliers"] < self.min_inliers:
                continue
            product = event["product"]["id"]
            track = next((t for t in pipeline.tracker.tracks if t.track_id == event["track_id"]), None)
            if track is None or self.taught[product] >= self.per_product:
                continue
            _, crops = crop_boxes(seen.image, [track.bbox])
            if crops:
                self.add(product, track.track_id, [crops[0].copy()], "self")
                added = True
        if added:
            self.learn(pipeline)


class RememberedVerifier:
    """The models' verifier, each crop's keypoints kept by its pixels: every catalog of one evaluation is shown the same
    frames, the detector boxes the same crops whatever the catalog, and extracting them again was most of the time."""

    def __init__(self, verifier: Verifier):
        self.verifier, self.id, self.descriptor_dim, self.config = verifier, verifier.id, verifier.descriptor_dim, verifier.config
        self.kept: dict[bytes, Features] = {}

    def features(self, image_bgr: np.ndarray) -> Features:
        key = pixels_key(image_bgr)
        if key not in self.kept:
            self.kept[key] = self.verifier.features(image_bgr)
        return self.kept[key]

    def match(self, query: Features, reference: Features) -> Match:
        return self.verifier.match(query, reference)


class RememberedEmbedder:
    """The models' embedder, each crop's embedding kept by its pixels (as RememberedVerifier)."""

    def __init__(self, embedder: Embedder):
        self.embedder, self.dim, self.model_id, self.input_size = embedder, embedder.dim, embedder.model_id, embedder.input_size
        self.kept: dict[bytes, np.ndarray] = {}

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        keys = [pixels_key(crop) for crop in crops_bgr]
        todo = {key: crop for key, crop in zip(keys, crops_bgr) if key not in self.kept}
        if todo:
            self.kept.update(zip(todo, self.embedder.embed(list(todo.values()))))
        return np.stack([self.kept[key] for key in keys]) if keys else self.embedder.embed([])


def pixels_key(image: np.ndarray) -> bytes:
    return hashlib.blake2b(repr((image.shape, image.dtype.str)).encode() + image.tobytes(), digest_size=16).digest()


def remembering(models: Models) -> Models:
    """The models with the crops' keypoints and embeddings kept across catalogs (the detector still runs once per frame
    and catalog: ~25 ms a frame here, against ~26 ms for each crop's keypoints)."""
    return replace(models, verifier=RememberedVerifier(models.verifier), embedder=RememberedEmbedder(models.embedder))


def build(products: list[str], out: Path, config: Config, models) -> Path:
    """A catalog of the named sample products (or, for none, the Grocery mini set: products never in the video)."""
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    images = out / "images"
    images.mkdir(parents=True)
    if products:
        for pid in products:
            (images / pid).symlink_to(SAMPLE_IMAGES / pid)
    else:
        for iconic in sorted(GROCERY_MINI.rglob("*.jpg")):
            folder = images / iconic.stem.lower().replace("_iconic", "")
            folder.mkdir(exist_ok=True)
            (folder / iconic.name).symlink_to(iconic)
    build_catalog(images, out / "catalog", embedder, verifier, detector, "video-eval")
    return out / "catalog"


def built_catalogs(names: list[str], config: Config, models):
    """(name, products, catalog) for each named catalog, built in a temporary folder that lasts while they are used."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            products = CATALOGS[name]
            yield name, products, load_catalog(build(products, Path(tmp) / name, config, models))


def evaluate_enrolment(config: Config, video: Path, frame_step: int, stride: int, catalogs: list[str], levels: list[int],
                       until_s: float) -> dict:
    """Per level: the tracks the installer did not touch while teaching (`while_teaching`), and every track of the video
    played again with what was taught (`next_pass`: a shelf camera sees the same shelf all day); level 0 teaches nothing."""
    labels = read_labels()
    models = Models.open(config)
    report = {"video": str(video), "enrol_until_s": until_s, "stride": stride, "decision": config.decision.kind,
              "verifier": config.verifier.kind, "catalogs": {}}
    for name, products, catalog in built_catalogs(catalogs, config, models):
        levels_out = {}
        for level in [0, *levels]:
            installer = Installer(config, models, catalog, set(products), level, until_s)
            teaching = per_track(config, identifier_for(config, catalog, models), video, frame_step, stride, labels,
                                 set(products), None, installer) if level else None
            again = per_track(config, identifier_for(config, catalog, models, installer.field), video, frame_step, stride,
                              labels, set(products), None)
            levels_out[str(level)] = {"tracks_taught": dict(installer.taught), "references": len(installer.references),
                                      "while_teaching": teaching or again, "next_pass": again}
        report["catalogs"][name] = {"products": products, "enrolment": levels_out}
    return report


def evaluate_self_teaching(config: Config, video: Path, frame_step: int, stride: int, catalogs: list[str], min_inliers: int,
                           per_product: int, limit: int | None = None) -> dict:
    """Per catalog, the tracks untaught, while the device teaches itself (SelfTeacher), and on the next pass with what it
    taught itself."""
    labels = read_labels()
    models = remembering(Models.open(config))
    report = {"video": str(video), "stride": stride, "min_inliers": min_inliers, "per_product": per_product,
              "decision": config.decision.kind, "verifier": config.verifier.kind, "catalogs": {}}
    for name, products, catalog in built_catalogs(catalogs, config, models):
        teacher = SelfTeacher(config, models, catalog, min_inliers, per_product)
        untaught = per_track(config, identifier_for(config, catalog, models), video, frame_step, stride, labels, set(products), limit)
        teaching = per_track(config, identifier_for(config, catalog, models), video, frame_step, stride, labels, set(products), limit,
                             teacher)
        again = per_track(config, identifier_for(config, catalog, models, teacher.field), video, frame_step, stride, labels,
                          set(products), limit)
        report["catalogs"][name] = {"products": products, "taught": dict(teacher.taught), "references": len(teacher.references),
                                    "untaught": untaught, "while_teaching": teaching, "next_pass": again}
    return report


def evaluate(config: Config, video: Path, frame_step: int, stride: int, catalogs: list[str], limit: int | None = None,
             tracks: bool = True, frames_kept: str = "all", second_opinion: str | None = None, tracks_out: Path | None = None) -> dict:
    """`frames_kept`: all labelled frames, or the half thresholds may be tuned on (fit: 0, 60, 120 …) or the other (check);
    `second_opinion`: a learned verifier kind; the tracks are then measured again with it as the daemon asks it (once per
    unknown track, its features made from the catalog's thumbnails), as "tracks_second_opinion"; `tracks_out`: a JSON
    lines file of every scored track (catalog, label, name, time in view, each identification: time, product, inliers,
    reason, sharpness)."""
    labels = read_labels()
    if frames_kept != "all":
        labels = {i: b for i, b in labels.items() if (i // 30) % 2 == (frames_kept == "check")}
    models = remembering(Models.open(config))
    frames = [(i, im) for i, im in read_frames(video, frame_step, 1, limit) if i in labels]
    if not frames:
        raise SystemExit(f"{video}: none of its frames is labelled (check --frame-step)")
    report = {"video": str(video), "labelled_frames": len(frames), "frames": frames_kept, "stride": stride,
              "decision": config.decision.kind,
              "verifier": config.verifier.kind, "catalogs": {}}
    every_track: list[dict] = []
    for name, products, catalog in built_catalogs(catalogs, config, models):
        identifier = identifier_for(config, catalog, models)
        result = {"products": products or "grocery-mini (none in the video)", "boxes": per_box(identifier, frames, labels, set(products))}
        if tracks:
            details: list[dict] = []
            result["tracks"] = per_track(config, identifier, video, frame_step, stride, labels, set(products), limit, details=details)
            every_track += [{"catalog": name} | d for d in details]
        if tracks and second_opinion:
            with_second = replace(models, second=open_second_opinion(config.verifier, second_opinion))
            result["tracks_second_opinion"] = per_track(config, identifier_for(config, catalog, with_second), video, frame_step,
                                                        stride, labels, set(products), limit)
        report["catalogs"][name] = result
    if tracks_out is not None:
        tracks_out.write_text("".join(json.dumps(d) + "\n" for d in every_track))
    return report


def scores(t: dict) -> str:
    """A Tally summary in one line, as the tool prints it."""
    return (f"recall {t['recall']} wrong {t['wrong']} false_id {t['false_id']} lookalike_false_id {t['lookalike_false_id']} "
            f"(catalog {t['catalog_items']}, other {t['other_items']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=SHARED_VIDEO, help="the shared video (default) or samples/shelf.mp4")
    parser.add_argument("--frame-step", type=int, default=None, help="original frames per file frame (default: 2 for samples/shelf.mp4, else 1)")
    parser.add_argument("--stride", type=int, default=2, help="track on every n-th frame of the file (2: 15 fps)")
    parser.add_argument("--catalogs", default=",".join(CATALOGS), help=f"comma-separated, of {', '.join(CATALOGS)}")
    parser.add_argument("--no-tracks", action="store_true", help="per-box numbers only (faster)")
    parser.add_argument("--until", type=int, help="read only this many frames of the file (quick checks)")
    parser.add_argument("--frames", choices=["all", "fit", "check"], default="all",
                        help="labelled frames scored: all, or the half thresholds may be tuned on (0, 60, 120 …), or the other")
    parser.add_argument("--config", type=Path, help="a config file (models, verifier, decision); default: built-in defaults")
    parser.add_argument("--enrol", help="tracks taught per product, comma-separated levels (e.g. 1,2,5): see above")
    parser.add_argument("--enrol-until", type=float, default=60.0, help="seconds of video the installer teaches in (default: the first minute)")
    parser.add_argument("--self-teach", metavar="MIN_INLIERS,PER_PRODUCT",
                        help="the device teaching itself from its own identifications (e.g. 30,3): see above")
    parser.add_argument("--second-opinion", metavar="VERIFIER", help="a learned verifier kind (aliked-lightglue, disk-lightglue): the "
                        "track numbers again with it as the daemon's second opinion (verifier.second_opinion), reported beside")
    parser.add_argument("--tracks-out", type=Path, metavar="FILE",
                        help="write every scored track as a JSON line: its label, its name, and each identification of it (time, "
                             "product, inliers, reason, the crop's sharpness): why a track stayed unknown")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    config = load_config(args.config) if args.config else Config()
    frame_step = args.frame_step or (2 if args.video.name == "shelf.mp4" else 1)
    catalogs = [c for c in args.catalogs.split(",") if c]
    unknown = [c for c in catalogs if c not in CATALOGS]
    if unknown:
        parser.error(f"unknown catalogs {unknown}; valid: {', '.join(CATALOGS)}")
    if args.enrol:
        report = evaluate_enrolment(config, args.video, frame_step, args.stride, [c for c in catalogs if c != "absent"],
                                    [int(n) for n in args.enrol.split(",")], args.enrol_until)
        if args.json:
            print(json.dumps(report, indent=1))
            return 0
        for name, result in report["catalogs"].items():
            for level, r in result["enrolment"].items():
                for when in ("while_teaching", "next_pass"):
                    t = r[when]
                    print(f"{name:13s} taught {level} tracks/product ({r['references']:2d} references) {when:14s} tracks "
                          f"{scores(t)}")
        return 0
    if args.self_teach:
        try:
            min_inliers, per_product = (int(n) for n in args.self_teach.split(","))
        except ValueError:
            parser.error(f"--self-teach {args.self_teach!r}: two whole numbers, MIN_INLIERS,PER_PRODUCT (e.g. 30,3)")
        report = evaluate_self_teaching(config, args.video, frame_step, args.stride, [c for c in catalogs if c != "absent"],
                                        min_inliers, per_product, args.until)
        if args.json:
            print(json.dumps(report, indent=1))
            return 0
        for name, result in report["catalogs"].items():
            for when in ("untaught", "while_teaching", "next_pass"):
                t = result[when]
                print(f"{name:13s} self-taught {result['taught']} {when:14s} tracks {scores(t)}")
        return 0
    report = evaluate(config, args.video, frame_step, args.stride, catalogs, args.until, not args.no_tracks, args.frames,
                      args.second_opinion, args.tracks_out)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for name, result in report["catalogs"].items():
        for kind in ("detected", "labelled"):
            b = result["boxes"][kind]
            print(f"{name:13s} boxes/{kind:9s} {scores(b)}")
        if "tracks" in result:
            t = result["tracks"]
            print(f"{name:13s} tracks          {scores(t)} time to id p50/p95 {t['time_to_identification_ms']}; catalog "
                  f"tracks left unknown, by why: {t['unknown_reasons']}")
        if "tracks_second_opinion" in result:
            t = result["tracks_second_opinion"]
            s = t["second_opinion"]
            print(f"{name:13s} + {s['verifier']} second opinion: tracks recall {t['recall']} wrong {t['wrong']} false_id "
                  f"{t['false_id']} lookalike_false_id {t['lookalike_false_id']} ({s['tracks_named']} of {s['tracks_asked']} "
                  f"asked named, {s['ms_per_track']['p50']} ms each)")
        print(f"{name:13s} detector recall {result['boxes']['detector']['recall']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
