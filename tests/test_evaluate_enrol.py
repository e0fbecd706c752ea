"""tools/evaluate.py --enrol on tests/data/grocery-mini: field references taught from the first photos of each
product, every level scored on the photos no level enrols, the open-set third never taught."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

MINI = REPO / "tests" / "data" / "grocery-mini"  # 12 packaged products, 9 with two val photos each


def test_enrolling_one_photo_per_product_scores_the_other_photos_at_every_level(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tools.evaluate", "--data", str(MINI), "--split", "val", "--subsets", "packaged",
                          "--enrol", "1", "--json", "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["enrol"] == [1]
    packaged = report["packaged"]
    assert packaged["enrolment_photos"] == 9 and packaged["enrolment_crops"] == 9
    levels = packaged["levels"]
    assert list(levels) == ["0", "1"]
    for level, taught in (("0", 0), ("1", 9)):
        r = levels[level]
        assert r["photos"] == 9  # the 18 val photos less the 9 enrolled, at level 0 too
        assert r["references"] == taught and r["products_taught"] == taught
        assert r["open_set_photos"] == 6  # all photos of the removed third's 3 products with photos
        assert r["wrong_identifications"] == 0.0 and r["false_id_rate"] == 0.0 and r["lookalike_false_ids"] == 0
    assert levels["0"]["open_references"] == 0 and levels["1"]["open_references"] == 6  # the removed third never taught


def test_enrol_does_not_go_with_limit():
    run = subprocess.run([sys.executable, "-m", "tools.evaluate", "--data", str(MINI), "--enrol", "1", "--limit", "3"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2 and "--limit" in run.stderr
