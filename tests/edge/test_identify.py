"""The whole still-image path: decisions, and `shelfid detect` on a tiny real catalog."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import jsonschema
import numpy as np
import pytest

from edge.core.assembly import Models
from edge.core.catalog import Product, empty_catalog
from edge.core.config import DecisionConfig, VerifierConfig
from edge.core.decision import NOT_COMPARED, Calibration, Evidence, Thresholds
from edge.core.identify import Detected, Identification, Identifier, decide
from edge.core.index import Candidate, CatalogIndex
from edge.core.records import to_record
from edge.core.verifier import Match, open_verifier
from models.backends import open_backend
from models.embedder import Embedder
from tests.conftest import REPO

DATA = REPO / "tests" / "data"
DETECT_SCHEMA = json.loads((REPO / "schemas" / "detect.schema.json").read_text())


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    """The tiny shelf catalog, built with the default (bundled) models, as `shelfid detect` will use them."""
    out = tmp_path_factory.mktemp("shelf") / "catalog"
    run = shelfid("catalog", "build", str(REPO / "samples" / "shelf-catalog"), "--out", str(out), "--catalog-id", "shelf")
    assert run.returncode == 0, run.stderr
    assert "3 products, 3 images, 0 skipped" in run.stdout
    return out


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """The defaults, written out: the pipeline every device runs unless told otherwise."""
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text("{}\n")
    return path


def shelfid(*args):
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_empty_catalog_never_invents_a_match(small_embedder):
    embedder = Embedder(open_backend(small_embedder, "onnxruntime"))
    verifier = open_verifier(VerifierConfig())
    catalog = empty_catalog(512, 128)
    identifier = Identifier(Models(None, embedder, verifier), catalog, CatalogIndex(catalog.embeddings))
    [result] = identifier.identify_crops([cv2.imread(str(DATA / "queries" / "cha-mate-limao.jpg"))])
    assert result.status == "unknown" and result.product is None and result.guess is None


def seen(matches: int, inliers: int, inlier_ratio: float, spread: float) -> Evidence:
    return Evidence(match=Match(matches=matches, inliers=inliers, inlier_ratio=inlier_ratio, spread=spread))


def test_decide_prefers_a_clearly_identical_candidate_and_else_says_unknown_with_a_guess():
    catalog = empty_catalog(4, 4)
    catalog.products.extend([Product("a", "a", "A"), Product("b", "b", "B")])
    cands = [Candidate(0, 0, 0.9), Candidate(1, 1, 0.8)]
    result = decide(catalog.products, cands, [seen(100, 40, 0.4, 0.2), seen(150, 120, 0.8, 0.5)], Thresholds(20, 0.2, 0.1))
    assert result.status == "identified" and result.product.product_id == "b" and result.inliers == 120
    result = decide(catalog.products, cands, [seen(50, 10, 0.2, 0.1), seen(50, 5, 0.1, 0.1)], Thresholds(20, 0.2, 0.1))
    assert result.status == "unknown" and result.product is None and result.guess.product_id == "a"


def test_an_unknown_says_why_no_candidate_is_identical():
    """The reason is read off the candidate with the most inliers: the people who act on an unknown need to know
    whether to move the camera closer, teach the product, or look for a look-alike."""
    catalog = empty_catalog(4, 4)
    catalog.products.extend([Product("a", "a", "A"), Product("b", "b", "B")])
    cands = [Candidate(0, 0, 0.9), Candidate(1, 1, 0.8)]
    rule = Thresholds(10, 0.0, 0.01)

    def why(*evidence: Evidence, size: tuple[int, int] = (200, 300)) -> str | None:
        return decide(catalog.products, cands, list(evidence), rule, crop_size=size).reason

    few = seen(40, 6, 0.15, 0.1)
    assert why(few, seen(30, 2, 0.1, 0.0)) == "no_match"
    assert why(few, size=(30, 60)) == "small"  # under SMALL_PX: too small to verify, not evidence of another product
    assert why(Evidence(match=seen(60, 30, 0.5, 0.3).match, differing=0.2), few) == "colours_differ"
    assert why(few, Evidence(match=seen(60, 30, 0.5, 0.3).match, differing=NOT_COMPARED)) == "partly_visible"
    assert why(Evidence(match=seen(60, 30, 0.5, 0.3).match, differing=0.005), size=(30, 60)) is None  # identified: no reason
    assert decide(catalog.products, cands, [few], rule, Calibration((0.0,) * 7, -9.0, 0.5, "x")).reason == "undecided"
    assert Identification.unknown_empty().reason == "no_candidates"


def test_a_detect_record_names_its_product_as_an_mqtt_event_does():
    """One product shape across CLI, HTTP and MQTT: `product` and `guess` are {id, sku, name} or null, never flat keys."""
    event_schema = json.loads((REPO / "schemas" / "event.schema.json").read_text())
    assert DETECT_SCHEMA["$defs"]["product"] == event_schema["$defs"]["product"]
    limao, natural = Product("limao", "111", "Limão"), Product("natural", "222", "Natural")
    named = to_record(Detected((1.04, 2.0, 30.0, 40.0), Identification(
        status="identified", product=limao, guess=natural, similarity=0.91234, inliers=80, inlier_ratio=0.61, spread=0.4, verified=2,
        confidence=0.9876)))
    unknown = to_record(Detected((0.0, 0.0, 5.0, 5.0), Identification(
        status="unknown", product=None, guess=natural, similarity=0.5, inliers=3, inlier_ratio=0.1, spread=0.0, verified=3,
        reason="small")))
    for record in (named, unknown, to_record(Detected((0.0, 0.0, 1.0, 1.0), Identification.unknown_empty()))):
        jsonschema.validate({"image": "x.jpg", "detections": [record], "ms": {"embed": 1.0}}, DETECT_SCHEMA)
    assert named == {"bbox": [1.0, 2.0, 30.0, 40.0], "status": "identified", "product": {"id": "limao", "sku": "111", "name": "Limão"},
                     "guess": None, "similarity": 0.9123, "inliers": 80, "inlier_ratio": 0.61, "spread": 0.4, "verified": 2,
                     "confidence": 0.988, "reason": None}
    assert (unknown["product"], unknown["guess"], unknown["reason"]) == (None, {"id": "natural", "sku": "222", "name": "Natural"}, "small")
    assert not {"product_id", "sku", "name"} & (set(named) | set(unknown))


def test_detect_identifies_the_product_and_not_its_look_alike(catalog_dir, config_file):
    run = shelfid("detect", str(DATA / "queries" / "cha-mate-limao.jpg"), "--catalog", str(catalog_dir),
                  "--config", str(config_file), "--whole-image", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    jsonschema.validate(out, DETECT_SCHEMA)
    [det] = out["detections"]
    assert det["status"] == "identified" and det["guess"] is None
    assert det["product"] == {"id": "cha-mate-limao", "sku": "7891234000011", "name": "Chá Mate Limão Orgânico 1.25 L"}
    assert det["inliers"] >= 60


def test_detect_says_unknown_for_a_product_not_in_the_catalog(catalog_dir, config_file):
    run = shelfid("detect", str(DATA / "queries" / "matte-leao.jpg"), "--catalog", str(catalog_dir),
                  "--config", str(config_file), "--whole-image", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    jsonschema.validate(out, DETECT_SCHEMA)
    [det] = out["detections"]
    assert det["status"] == "unknown" and det["product"] is None and set(det["guess"]) == {"id", "sku", "name"}
    assert set(out["ms"]) == {"embed", "search", "verify"}


def test_a_crop_showing_too_little_of_the_face_to_compare_its_colours_is_not_named(catalog_dir, config_file, tmp_path):
    # keypoints on the foot of a bottle agree with its reference, but the aligned crop covers too little of the face for
    # the colour check: unchecked colours once passed (the learned matcher named a dark bottle as a white one so)
    bottle = cv2.imread(str(DATA / "queries" / "cha-mate-limao.jpg"))
    cv2.imwrite(str(tmp_path / "foot.png"), bottle[int(bottle.shape[0] * 0.7):])
    run = shelfid("detect", str(tmp_path / "foot.png"), "--catalog", str(catalog_dir), "--config", str(config_file), "--whole-image",
                  "--json")
    assert run.returncode == 0, run.stderr
    [det] = json.loads(run.stdout)["detections"]
    assert det["inliers"] >= DecisionConfig().min_inliers, det  # the keypoints alone would name it
    assert det["status"] == "unknown" and det["guess"]["id"] == "cha-mate-limao", det
    assert det["reason"] == "partly_visible", det  # and it says so: more of the pack in view would settle it


def test_a_sticker_over_the_label_is_refused_on_colour_and_explain_draws_where(catalog_dir, config_file, tmp_path):
    bottle = cv2.imread(str(DATA / "queries" / "cha-mate-limao.jpg"))
    h, w = bottle.shape[:2]
    bottle[int(h * 0.55):int(h * 0.66)] = (40, 40, 230)  # a red promo banner across the label, under the brand
    cv2.imwrite(str(tmp_path / "banner.png"), bottle)
    run = shelfid("detect", str(tmp_path / "banner.png"), "--catalog", str(catalog_dir), "--config", str(config_file), "--whole-image",
                  "--json", "--explain", str(tmp_path / "why"))
    assert run.returncode == 0, run.stderr
    [det] = json.loads(run.stdout)["detections"]
    assert det["reason"] == "colours_differ" and det["guess"]["id"] == "cha-mate-limao", det
    drawn = cv2.imread(str(tmp_path / "why" / "banner-0.png"))
    assert f"explained: {tmp_path / 'why' / 'banner-0.png'}" in run.stderr
    # reference | the bottle aligned onto it | the face compared: red where the banner lies, little red elsewhere
    marks = drawn[:, drawn.shape[1] * 2 // 3:]  # (the caption above it is black on white)
    red = (marks[..., 2] == 255) & (marks[..., 0] == 0)
    rows = red.mean(axis=1)
    assert rows.max() > 0.3 and (rows > 0.3).mean() < 0.3, "the differing rows are a band, not the whole face"
    other = shelfid("detect", str(DATA / "queries" / "cha-mate-limao.jpg"), "--catalog", str(catalog_dir), "--config", str(config_file),
                    "--whole-image", "--explain", str(tmp_path / "none"))
    assert other.returncode == 0 and "1 identified" in other.stdout and not (tmp_path / "none").exists()  # named: nothing to explain


def test_packshot_references_are_verified_like_field_photos_and_nothing_is_named_without_keypoints(tmp_path):
    # the bundled decision once scored packshot references by the embedding alone: a product of another brand was
    # named with 0 inliers at confidence 0.997. Now one rule for every kind of reference: keypoints, then colour
    iconic = DATA / "grocery-mini" / "iconic-images-and-descriptions" / "Packages"
    packshots = tmp_path / "packshots"
    images = sorted(iconic.rglob("*_Iconic.jpg"))
    for image in images[:4]:
        (packshots / image.parent.name).mkdir(parents=True)
        (packshots / image.parent.name / image.name).write_bytes(image.read_bytes())
    assert shelfid("catalog", "build", str(packshots), "--out", str(tmp_path / "packshot-catalog")).returncode == 0
    photos = sorted((DATA / "grocery-mini" / "val").rglob("*.jpg"))
    run = shelfid("detect", *map(str, photos), "--catalog", str(tmp_path / "packshot-catalog"), "--whole-image", "--json")
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) == len(photos)
    for photo, result in zip(photos, results):
        [det] = result["detections"]
        assert det["verified"] >= 1
        if det["status"] == "identified":
            assert det["inliers"] >= DecisionConfig().min_inliers and photo.parent.name == det["product"]["id"], (photo, det)


def test_detect_on_a_full_shelf_frame_with_the_detector(catalog_dir, config_file, tmp_path):
    frame = REPO / "samples" / "shelf" / "frame_0150.jpg"
    annotated = tmp_path / "annotated.jpg"
    run = shelfid("detect", str(frame), "--catalog", str(catalog_dir), "--config", str(config_file), "--json",
                  "--annotate", str(annotated))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    jsonschema.validate(out, DETECT_SCHEMA)
    identified = [d for d in out["detections"] if d["status"] == "identified"]
    assert {d["product"]["id"] for d in identified} >= {"cha-mate-limao"}
    assert "coca-cola-can" not in {d["product"]["id"] for d in identified}
    assert {"detect", "embed", "search", "verify"} <= set(out["ms"])
    image = cv2.imread(str(annotated))
    assert image is not None and image.shape == (720, 1280, 3)
    assert not np.array_equal(image, cv2.imread(str(frame)))


def test_detect_reports_an_unreadable_image_and_goes_on(catalog_dir, config_file, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    run = shelfid("detect", str(bad), str(DATA / "queries" / "matte-leao.jpg"), "--catalog", str(catalog_dir),
                  "--config", str(config_file), "--whole-image")
    assert run.returncode == 1
    assert "bad.jpg: empty file" in run.stderr and "matte-leao.jpg: 1 products" in run.stdout
    assert "unknown: no_match 1" in run.stdout, run.stdout  # why it is unknown: its print matches no catalog product


def test_detect_refuses_a_catalog_built_with_another_embedder(catalog_dir, tmp_path):
    other = tmp_path / "other.onnx"
    from models.export import export_embedder

    export_embedder(other, input_size=64, seed=7)
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  embedder: {other}\n")
    run = shelfid("detect", str(DATA / "queries" / "matte-leao.jpg"), "--catalog", str(catalog_dir), "--config", str(config))
    assert run.returncode == 1 and "rebuild the catalog with this device's embedder" in run.stderr


def one_product_catalog(tmp_path, pack: int, second: str, per_image_thumbnails: bool = True):
    """A catalog of one Grocery pack with two images: its packshot, then `second` ("front": the front, upscaled;
    "edition": the packshot with red and blue swapped, another edition of the pack). Its identifier, the pack's face
    and the face's colour twin (red and blue swapped)."""
    from edge.core.assembly import identifier_for
    from edge.core.catalog import load_catalog
    from edge.core.catalog_build import build_catalog
    from edge.core.config import Config
    from models.transfer_suite import _face, colour_twin, reference_image

    packshot = cv2.imread(str(sorted((DATA / "grocery-mini" / "iconic-images-and-descriptions").rglob("*_Iconic.jpg"))[pack]))
    face, _ = _face(packshot)
    images = tmp_path / "images" / "the-product"
    images.mkdir(parents=True)
    cv2.imwrite(str(images / "0-packshot.jpg"), packshot)
    later = reference_image(packshot, face, "upscaled") if second == "front" else colour_twin(packshot, "swap", np.random.default_rng(0))
    cv2.imwrite(str(images / f"1-{second}.jpg"), later)
    config = Config()
    models = Models.open(config)
    build_catalog(tmp_path / "images", tmp_path / "catalog", models.embedder, models.verifier, None, "twins")
    if not per_image_thumbnails:  # as a catalog built before them holds only each product's first image's pixels
        shutil.rmtree(tmp_path / "catalog" / "image-thumbnails")
    return identifier_for(config, load_catalog(tmp_path / "catalog"), models), face, colour_twin(face, "swap", np.random.default_rng(0))


@pytest.mark.parametrize("pack", [0, 4, 11])
@pytest.mark.parametrize("per_image_thumbnails", [True, False])
def test_a_colour_twin_is_not_named_through_a_second_catalog_image(tmp_path, pack, per_image_thumbnails):
    """A colour twin (same artwork, red and blue swapped) that matches the product's second image best was named on
    keypoints alone when the device held the pixels of a product's first catalog image only. Its colours are judged
    on the second image's own thumbnail, and in a catalog built before those, on the first image, which it also
    matches. The product itself is still named."""
    identifier, face, twin = one_product_catalog(tmp_path, pack, "front", per_image_thumbnails)
    product, other = identifier.examine([cv2.resize(face, None, fx=1.5, fy=1.5), cv2.resize(twin, None, fx=1.5, fy=1.5)])
    assert product.identification.status == "identified"
    assert other.evidence[0].match.inliers >= DecisionConfig().min_inliers  # its keypoints alone would name it
    assert other.identification.status == "unknown", other.evidence


@pytest.mark.parametrize("pack", [0, 4, 11])
def test_a_product_is_named_in_the_edition_a_later_catalog_image_shows(tmp_path, pack):
    """A shop adds a photo of the pack's other edition (here its red and blue swapped) to the product's images: the
    pack in that edition is named, by that image's own colours. Before, every match had its colours judged on the
    product's first image, the other edition, and the pack was refused whatever images the catalog held."""
    identifier, face, edition = one_product_catalog(tmp_path, pack, "edition")
    examined, = identifier.examine([cv2.resize(edition, None, fx=1.5, fy=1.5)])
    assert examined.identification.status == "identified", examined.evidence
    assert examined.identification.product.product_id == "the-product"


def test_a_still_verifies_deeper_than_a_track(tmp_path):
    """verifier.still_candidates for photos, verifier.candidates for the daemon's tracks: a crop of no catalog product
    (nothing stops verification early) is matched against every product of a 12-product catalog as a still, against
    the top 3 as a track; and the second opinion of a still asks as many as a track's."""
    from edge.core.assembly import identifier_for
    from edge.core.catalog import load_catalog
    from edge.core.catalog_build import build_catalog
    from edge.core.config import Config
    from edge.core.second_opinion import SecondOpinion

    config, models = Config(), Models.open(Config())
    images = tmp_path / "images"
    for iconic in sorted((DATA / "grocery-mini").rglob("*_Iconic.jpg")):
        (images / iconic.stem).mkdir(parents=True)
        shutil.copy(iconic, images / iconic.stem)
    build_catalog(images, tmp_path / "catalog", models.embedder, models.verifier, models.detector, "grocery-mini")
    catalog = load_catalog(tmp_path / "catalog")
    assert len(catalog.products) == 12 and config.verifier.still_candidates >= 12 > config.verifier.candidates
    crop = cv2.imread(str(DATA / "queries" / "cha-mate-limao.jpg"))
    [track] = identifier_for(config, catalog, models).examine([crop])
    still_identifier = identifier_for(config, catalog, models, still=True)
    [still] = still_identifier.examine([crop])
    assert track.identification.status == still.identification.status == "unknown"
    assert len(still.candidates) == 12 and len(still.evidence) == 12
    assert 3 <= len(track.evidence) < 12  # 3, and any that tie with the third
    asked, opinion = [], SecondOpinion(still_identifier, models.verifier, config.verifier.candidates)  # SIFT as the second
    references = opinion.references  # counted on their way through, not replaced
    opinion.references = lambda product_index: asked.append(product_index) or references(product_index)
    assert opinion.identify(crop).status == "unknown" and len(asked) == len(track.evidence)  # 3, as a track


def _named(box: tuple, product: Product | None, inliers: int) -> Detected:
    status = "identified" if product is not None else "unknown"
    return Detected(box, Identification(status=status, product=product, guess=None, similarity=0.9, inliers=inliers,
                                        inlier_ratio=0.5, spread=0.3, verified=1))


def test_a_still_names_each_facing_once():
    """Tiles (and the detector's own nested boxes) give a bottle and its label, or one pack at two levels: both named,
    one facing. The box with more inliers stays; another product, a neighbour and an unknown box are not facings of it."""
    from edge.core.identify import one_per_facing

    limao, natural = Product("limao", "1", "Limão"), Product("natural", "2", "Natural")
    bottle = _named((0.0, 0.0, 100.0, 300.0), limao, 14)
    label = _named((2.0, 150.0, 98.0, 310.0), limao, 10)  # its lower half: more than half of the smaller box inside
    other = _named((10.0, 10.0, 90.0, 290.0), natural, 20)
    neighbour = _named((60.0, 0.0, 160.0, 300.0), limao, 12)  # 40 of its 100 px across overlap: another bottle
    unknown = _named((0.0, 0.0, 100.0, 150.0), None, 3)
    assert one_per_facing([label, bottle, other, neighbour, unknown]) == [bottle, other, neighbour, unknown]
    stronger_label = _named(label.bbox, limao, 30)
    assert one_per_facing([bottle, stronger_label]) == [stronger_label]


def test_a_second_look_names_no_facing_the_first_opinion_named():
    """The second opinion's inliers are another matcher's: a box it names over a facing the first named is dropped
    (the first's name stands), a box elsewhere is named."""
    from edge.core.second_opinion import second_look

    limao = Product("limao", "1", "Limão")
    first = _named((0.0, 0.0, 100.0, 300.0), limao, 14)
    found = [first, _named((2.0, 150.0, 98.0, 310.0), None, 3), _named((200.0, 0.0, 300.0, 300.0), None, 2)]

    class Opinion:
        def identify(self, crop):
            return Identification(status="identified", product=limao, guess=None, similarity=0.9, inliers=60,
                                  inlier_ratio=0.6, spread=0.4, verified=1, clear=True)

    out = second_look(Opinion(), np.zeros((320, 320, 3), np.uint8), found)
    assert [(d.bbox, d.identification.product) for d in out] == [(first.bbox, limao), ((200.0, 0.0, 300.0, 300.0), limao)]
    assert out[0] is first
