"""tools/gpu_check.sh in its CPU mode, tiny, so the script a lent GPU machine runs cannot rot between loans."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


def test_the_gpu_check_runs_on_the_cpu_and_writes_its_table(tmp_path):
    """DEVICE=cpu: every check (embedder, detector, verifier, one training epoch) CPU vs CPU, batch 1; ~20 s here."""
    env = {**os.environ, "DEVICE": "cpu", "OUT": str(tmp_path), "PYTHON": sys.executable, "CARRY": str(tmp_path / "no-carry"),
           "BATCHES": "1", "FRAMES": "1", "REPEATS": "1", "EXTRA": "--verifier-size 256 --keypoints 256 --train-size 64",
           # one thread: beside the suite's other workers on two cores, torch's threads waiting on each other took this
           # 23 s check past 190 s (its timeout is 240)
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run(["bash", "tools/gpu_check.sh"], capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert [c["check"] for c in report["checks"]] == [
        "embedder", "detector", "verifier ALIKED+LightGlue", "embedder training, 1 epoch"]
    assert all(c["ok"] and c["device"] == "cpu" for c in report["checks"])
    assert {(t["model"], t["batch"]) for t in report["timings"]} == {
        ("embedder 224", 1), ("detector 320", 1), ("ALIKED features 256", 1), ("LightGlue match + RANSAC", 1)}
    table = (tmp_path / "gpu-check.md").read_text()
    assert "| embedder | cpu | fp32 | min cosine 1.00000 | >= 0.999 | yes |" in table and "| p50 ms |" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: nothing to refuse")
def test_the_gpu_check_refuses_cuda_where_torch_sees_no_gpu(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tools.gpu_check", "--device", "cuda", "--out", str(tmp_path), "--no-train"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 2 and "error: device cuda: torch sees no CUDA GPU here" in run.stderr
