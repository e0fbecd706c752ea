"""tools/evaluate_transfer.py: the tally on hand-made records, and end to end on real store photos (grocery-mini)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2

from tests.conftest import REPO
from tools.evaluate import read_dataset
from tools.evaluate_transfer import grocery_val, read_editions, summarise

MINI = REPO / "tests" / "data" / "grocery-mini"


def rec(truth: str, named: str | None, in_catalog: bool, family: str, sibling_in_catalog: bool = False, **families) -> dict:
    candidates = [{"product": p, "family": f} for p, f in families.items()]
    return {"source": "s", "truth": truth, "named": named, "in_catalog": in_catalog, "family": family,
            "sibling_in_catalog": sibling_in_catalog, "detected": True, "candidates": candidates}


def test_the_tally_tells_right_wrong_sibling_and_open_set_false_identifications():
    records = [rec("a", "a", True, "A", a="A"),
               rec("a", "b", True, "A", b="A"),  # its colour twin: wrong, and a sibling confusion
               rec("a", "c", True, "A", c="C"),  # another brand: wrong, not a sibling
               rec("c", None, True, "C", c="C"),
               rec("b", "a", False, "A", True, a="A"),  # left out, named as the twin that stayed
               rec("d", "c", False, "D", c="C"),  # in no catalog, named
               rec("e", None, False, "E")]
    s = summarise(records)["s"]
    assert (s["catalog_instances"], s["right"], s["wrong_n"], s["sibling_n"]) == (4, 1, 2, 1)
    assert (s["recall"], s["wrong"], s["sibling"]) == (0.25, 0.5, 0.25)
    assert (s["open_instances"], s["false_id_n"], s["false_id"]) == (3, 2, 0.667)
    assert (s["twin_instances"], s["twin_false_id_n"], s["twin_false_id"]) == (1, 1, 1.0)
    assert "recall_front" not in s  # no instance labelled with the side it shows


def test_recall_over_the_front_leaves_out_the_sides_no_catalog_image_shows():
    """The shelf video's can is also seen from its back and its end, which its one catalog image does not show: the
    report tells recall over the boxes that show the front apart from recall over all."""
    records = [rec("can", "can", True, "can"), rec("can", None, True, "can"), rec("can", None, True, "can") | {"face": "back"},
               rec("other", None, False, "other") | {"face": "back"}]
    s = summarise(records)["s"]
    assert (s["recall"], s["recall_front"], s["front_instances"]) == (0.333, 0.5, 2)


def test_the_video_labels_say_which_boxes_show_a_side_the_catalog_does_not():
    from tools.evaluate_video import read_labels

    faces = [lab for labels in read_labels().values() for lab in labels if lab.face]
    assert len(faces) == 13 and {lab.face for lab in faces} == {"back", "end"}
    assert {lab.product for lab in faces} == {"coca-cola-can"} and all(lab.scored for lab in faces)


def test_grocery_and_synthetic_sources_report_apart_with_one_record_per_instance_and_run(tmp_path):
    out = tmp_path / "records.jsonl"
    run = subprocess.run([sys.executable, "-m", "tools.evaluate_transfer", "--sources", "grocery-val,synthetic", "--data", str(MINI),
                          "--twins", "2", "--conditions", "shelf,sticker", "--json", "--out", str(out),
                          "--examples", str(tmp_path / "examples.png"), "--differing-images", str(tmp_path / "differing")],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)["sources"]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    grocery, synthetic = report["grocery-val"], report["synthetic"]
    # 18 val photos of 12 packaged products; the open run asks only the photos of the third left out
    assert grocery["catalog_instances"] == 18 and 0 < grocery["open_instances"] < 18
    closed_grocery = [r for r in records if r["source"] == "grocery-val" and r["run"] == "closed"]
    assert sum(r["candidates"][0]["product"] == r["truth"] for r in closed_grocery) >= 0.8 * len(closed_grocery)  # retrieval
    assert grocery["wrong"] == 0 and grocery["false_id"] == 0  # the decision names nothing SIFT cannot confirm
    # 12 packs + 2 colour twins, 2 conditions each; one twin of each pair left out: 2 x 2 open-set queries
    assert synthetic["catalog_instances"] == 14 * 2 and synthetic["twin_instances"] == synthetic["open_instances"] == 4
    assert len(records) == sum(r["catalog_instances"] + r["open_instances"] for r in report.values())
    closed = [r for r in records if r["run"] == "closed"]
    assert all(r["candidates"] and r["candidates"][0]["similarity"] > 0 for r in closed)
    twins = {r["truth"] for r in closed if r["truth"].endswith("-twin")}
    assert len(twins) == 2 and twins <= {c["product"] for r in closed for c in r["candidates"]}  # in the full catalog
    assert {r["status"] for r in records} <= {"identified", "unknown"}
    for numbers in report.values():  # every catalog instance left unknown is counted under one reason
        left = numbers["catalog_instances"] - numbers["right"] - numbers["wrong_n"]
        assert sum(numbers["unknown_reasons"].values()) == left
        assert set(numbers["unknown_reasons"]) <= {"not_detected", "small", "no_match", "partly_visible", "colours_differ"}
    assert all((r["reason"] is None) == (r["named"] is not None) and len(r["crop"]) == 2 for r in records)
    for name, numbers in summarise(records).items():
        assert {k: v for k, v in report[name].items() if k != "seconds"} == numbers
    assert (tmp_path / "examples.png").stat().st_size > 10_000
    # a comparison drawn for every right product refused on colour (stickers: its keypoints agree, its colours do not)
    refused = [r for r in records if r["named"] is None and r["reason"] == "colours_differ"
               and any(c["product"] == r["truth"] and c.get("differing") is not None for c in r["candidates"])]
    drawn = sorted((tmp_path / "differing").glob("*.png"))
    assert refused and len(drawn) >= len(refused)
    assert all(cv2.imread(str(path)).shape[1] % 3 == 0 for path in drawn)  # reference | aligned crop | differing
    # and the open set's near misses: a left-out twin whose sibling's keypoints agreed, refused on its colours
    near = [r for r in records if r["run"] != "closed" and r["named"] is None
            and any(c.get("inliers", 0) >= 10 and c.get("differing") is not None for c in r["candidates"])]
    assert near and len([p for p in drawn if "-open-" in p.name]) == len(near)


def test_every_packaged_grocery_product_has_an_edition_label():
    editions = read_editions()
    products, _ = read_dataset(MINI, "val")
    assert {p.name for p in products if p.packaged} <= set(editions)
    assert set(editions.values()) == {"same", "other"} and len(editions) == 31


def test_grocery_open_set_each_leaves_every_product_with_photos_out_once_from_either_split(tmp_path):
    """--open-set each: one open run per product with photos, its line's others in the catalog; grocery-train reads the
    train split (here a copy of the mini val list) and is named for it."""
    third = grocery_val(MINI, None, False, 0)
    each = grocery_val(MINI, None, False, 0, each_left_out=True)
    truths = sorted({i.truth for i in each.instances})
    assert len(third.left_out) == 1 and 0 < len(third.left_out[0]) < len(third.references)
    assert each.name == "grocery-val" and [sorted(out) for out in each.left_out] == [[t] for t in truths] and len(truths) == 9
    assert each.references.keys() == third.references.keys()  # every packaged product's iconic image, photos or not
    for entry in MINI.iterdir():
        (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / "train.txt").write_text((MINI / "val.txt").read_text())
    train = grocery_val(tmp_path, None, False, 0, split="train", each_left_out=True)
    assert train.name == "grocery-train" and [i.key for i in train.instances] == [i.key for i in each.instances]


def test_synthetic_editions_are_the_same_product_with_a_second_catalog_image(tmp_path):
    """--editions: each colour twin is another edition of its pack, asked as that product; the report tells the queries
    of a pack in its other edition apart, and there is no open set."""
    out = tmp_path / "records.jsonl"
    run = subprocess.run([sys.executable, "-m", "tools.evaluate_transfer", "--sources", "synthetic", "--data", str(MINI), "--editions",
                          "--twins", "2", "--conditions", "shelf", "--json", "--out", str(out),
                          "--examples", str(tmp_path / "examples.png")], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    synthetic = json.loads(run.stdout)["sources"]["synthetic"]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert (synthetic["catalog_instances"], synthetic["open_instances"], synthetic["other_edition_instances"]) == (14, 0, 2)
    editions = [r for r in records if r["edition"] == "other"]
    assert {r["key"].split("/")[0].rsplit(".", 1)[0] for r in editions} == {r["truth"] for r in editions}  # a twin's queries are its pack's
    assert all(not c["product"].endswith("-twin") for r in records for c in r["candidates"])  # 12 products, no twin among them
    assert synthetic["recall_other_edition"] == round(sum(r["named"] == r["truth"] for r in editions) / 2, 3)


def test_our_shelf_photo_labels_name_known_products_and_boxes_inside_their_photo():
    """The hand labels the still-photo sources read (the photos themselves live in ../shared, outside the repo)."""
    import re

    from tools.evaluate_transfer import OS2D_LABELS, PAM_LABELS

    for path in (OS2D_LABELS, PAM_LABELS):
        spec = json.loads(path.read_text(encoding="utf-8"))
        width, height = map(int, re.search(r"(\d+)x(\d+) photo", spec["labelled_by"]).groups())
        products = set(spec["products"])
        assert set(spec["references"]) <= products and set(spec["families"]) <= products, path.name
        for boxes in spec["images"].values():
            for b in boxes:
                x1, y1, x2, y2 = b["box"]
                assert b["product"] in products | {"other"} and b["visible"] in ("half", "part"), (path.name, b)
                assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, (path.name, b)
    pam = json.loads(PAM_LABELS.read_text(encoding="utf-8"))
    assert sum(b["visible"] == "half" for boxes in pam["images"].values() for b in boxes) == 19
