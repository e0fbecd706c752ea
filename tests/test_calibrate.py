"""tools/calibrate.py end to end on real store photos (grocery-mini): a calibration file the decision loads."""

from __future__ import annotations

import subprocess
import sys

from edge.core.decision import EVIDENCE, load_calibration
from tests.conftest import REPO

MINI = REPO / "tests" / "data" / "grocery-mini"


def test_calibration_on_a_catalog_with_shelf_photos_writes_a_file_the_decision_loads(tmp_path):
    data = tmp_path / "grocery"
    data.mkdir()
    for entry in MINI.iterdir():
        (data / entry.name).symlink_to(entry)
    (data / "train.txt").write_text((MINI / "val.txt").read_text())  # shelf photos for the catalog: the val photos again
    out = tmp_path / "decision.json"
    run = subprocess.run([sys.executable, "-m", "tools.calibrate", "--data", str(data), "--shots", "1", "--repeats", "1", "--open-draws", "2",
                          "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    calibration = load_calibration(out)
    assert len(calibration.weights) == len(EVIDENCE) and 0 < calibration.threshold <= 1
    assert calibration.verifier_id.startswith("sift") and "shots 1" in calibration.note
    assert "cross-validated top1" in run.stdout
