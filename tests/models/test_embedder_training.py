"""Training and distilling the embedder, and catalogs with several references per product (tools/evaluate.py --shots)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from models.errors import ModelError
from models.training_device import training_device
from tools.distill_embedder import distill_loss
from tools.train_embedder import hard_negatives, read_families

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests" / "data" / "grocery-mini"


@pytest.fixture(scope="module")
def mini_with_train(tmp_path_factory) -> Path:
    """grocery-mini with a train split: its val photos again, so a catalog holding them must retrieve every query first."""
    root = tmp_path_factory.mktemp("grocery")
    for entry in MINI.iterdir():
        (root / entry.name).symlink_to(entry)
    (root / "train.txt").write_text((MINI / "val.txt").read_text())
    return root


def test_hard_negatives_are_the_family_and_the_nearest_proxies_never_the_product_itself():
    family = np.array([0, 0, 1, 2, 2])
    proxies = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.9, 0.1, 0], [0, 0, 1.0], [0, 0.1, 1.0]])
    hard = hard_negatives(proxies, family, neighbours=1)
    assert not hard.diagonal().any()
    assert hard[0, 1] and hard[1, 0] and hard[3, 4]  # same family
    assert hard[0, 2] and hard[2, 0]  # different families, nearest proxies: mined
    assert not hard[1, 3] and not hard[0, 3]
    assert hard_negatives(proxies, family, neighbours=0).sum() == 4  # families only: (0,1), (1,0), (3,4), (4,3)


def test_families_come_from_the_coarse_classes():
    family = read_families(MINI, 60)
    assert family[28] == family[29] == 19  # Bravo apple and orange juice: both juice
    assert family[0] != family[1]  # products the file does not name are their own family


def test_distillation_loss_is_zero_on_the_teacher_and_positive_elsewhere():
    teacher = F.normalize(torch.randn(6, 16), dim=1)
    assert distill_loss(teacher, teacher, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_loss(F.normalize(torch.randn(6, 16), dim=1), teacher, 1.0).item() > 0.1


def test_distillation_trains_a_resnet34_and_exports_it(mini_with_train, tmp_path):
    out = tmp_path / "student.onnx"
    run = subprocess.run([sys.executable, "-m", "tools.distill_embedder", "--data", str(mini_with_train), "--out", str(out),
                          "--size", "64", "--steps", "3", "--batch", "4", "--eval-every", "3", "--work", str(tmp_path / "work")],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["arch"] == "resnet34" and meta["input_size"] == "64" and "distill_embedder.py" in meta["source"]
    emb = session.run(None, {"images": np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)})[0]
    assert emb.shape == (2, 512) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-3)
    history = json.loads((tmp_path / "work" / "history.json").read_text())
    assert history[-1]["step"] == 3 and 0 <= history[-1]["val_all"]["r1"] <= 1
    assert out.with_suffix(".pt").is_file()


def test_distillation_refuses_a_folder_without_the_dataset(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tools.distill_embedder", "--data", str(tmp_path), "--out", str(tmp_path / "x.onnx")],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2 and "train.txt missing" in run.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_train_photos_added_to_the_catalog_are_searched(mini_with_train, tmp_path):
    def evaluate(shots: int) -> dict:
        run = subprocess.run([sys.executable, "-m", "tools.evaluate", "--data", str(mini_with_train), "--split", "val", "--subsets", "packaged",
                              "--shots", str(shots), "--json", "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
        assert run.returncode == 0, run.stderr[-2000:]
        return json.loads(run.stdout)["packaged"]

    shots = evaluate(5)  # (without --shots the catalog is the 12 iconic images: tests/test_accuracy_floor.py runs it)
    assert shots["catalog_images"] == 12 + 18  # every val photo went in beside its iconic image
    assert shots["recall_at_1"] == 1.0  # each query's own photo is in the catalog: found first


def test_training_device_is_the_cpu_here_or_a_gpu_only_when_torch_sees_one():
    assert training_device("cpu").type == "cpu"
    assert training_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            training_device("cuda")
    with pytest.raises(ModelError, match="expected one of"):
        training_device("tpu")


def test_embedder_training_runs_an_epoch_with_hard_negatives_and_exports(mini_with_train, tmp_path):
    out = tmp_path / "e.onnx"
    run = subprocess.run([sys.executable, "-m", "tools.train_embedder", "--data", str(mini_with_train), "--out", str(out), "--size", "64",
                          "--epochs", "1", "--photo-views", "1", "--iconic-views", "2", "--batch", "16", "--work", str(tmp_path / "w"),
                          "--device", "cpu", "--trainable-blocks", "11", "--hard-margin", "0.1", "--hard-neighbours", "3",
                          "--plain-catalog-view"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    meta = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert meta["arch"] == "efficientnet-lite0" and meta["input_size"] == "64"
    assert "--trainable-blocks 11" in meta["source"] and "--hard-margin 0.1" in meta["source"] and "--plain-catalog-view" in meta["source"]
    assert json.loads((tmp_path / "w" / "history.json").read_text())[0]["epoch"] == 1


def test_the_gpu_job_runs_end_to_end_on_the_cpu_with_tiny_settings(mini_with_train, tmp_path):
    """tools/gpu_pack.py + tools/gpu_job.sh as a lent GPU machine would run them, on the CPU and tiny (CUDA is not here)."""
    carry, out = tmp_path / "carry", tmp_path / "out"
    pack = subprocess.run([sys.executable, "-m", "tools.gpu_pack", "--data", str(mini_with_train), "--out", str(carry), "--side", "96",
                           "--no-wheels"], capture_output=True, text=True, cwd=REPO)
    assert pack.returncode == 0, pack.stderr[-2000:]
    assert "of the 64 MiB that travel" in pack.stdout
    assert len(list((carry / "grocery" / "val").rglob("*.jpg"))) == 18 and (carry / "grocery" / "train.txt").is_file()
    env = {**os.environ, "OUT": str(out), "CARRY": str(carry), "PYTHON": sys.executable, "DEVICE": "cpu", "EPOCHS": "1", "SIZE": "64",
           "EXTRA": "--photo-views 1 --iconic-views 2 --batch 16"}
    job = subprocess.run(["bash", "tools/gpu_job.sh"], capture_output=True, text=True, cwd=REPO, env=env)
    assert job.returncode == 0, (job.stdout + job.stderr)[-3000:]
    meta = ort.InferenceSession(str(out / "embedder-gpu.onnx"), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert "--trainable-blocks 16" in meta["source"] and "--init embedder.pt" in meta["source"]
    assert json.loads((out / "history.json").read_text())[0]["epoch"] == 1
    assert not (out / "work" / "last.pt").exists()  # the training state is not brought back


def test_the_gpu_pack_refuses_a_folder_without_the_dataset(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tools.gpu_pack", "--data", str(tmp_path), "--out", str(tmp_path / "carry"), "--no-wheels"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2 and "Grocery Store Dataset root" in run.stderr
    assert not (tmp_path / "carry").exists()
