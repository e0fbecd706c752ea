"""INT8 static quantisation on real images, and the model benchmark's output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from models.backends import BackendOptions, open_backend
from models.bench import bench_model
from models.embedder import Embedder
from models.errors import ModelError
from models.metadata import describe_onnx
from models.quantize import calibration_images, quantize_int8
from models.runtime import preprocessor_for
from tests.conftest import REPO, SAMPLES
from tests.models.test_embedder import real_crops


@pytest.fixture(scope="module")
def quantised(small_embedder, shelf_frames, tmp_path_factory):
    crops = real_crops(shelf_frames)
    return quantize_int8(small_embedder, preprocessor_for(small_embedder), crops), crops


def test_int8_model_is_qdq_keeps_metadata_and_is_picked_by_precision(quantised, small_embedder):
    path, _ = quantised
    assert path.name == "embedder.int8.onnx"
    meta = describe_onnx(path)["metadata"]
    assert meta["kind"] == "embedder" and meta["precision"] == "int8-static-qdq"
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    backend = open_backend(small_embedder, "onnxruntime", BackendOptions(precision="int8"))
    assert backend.path == path


def test_int8_embeddings_stay_close_to_fp32(quantised, small_embedder):
    _, crops = quantised
    fp32 = Embedder(open_backend(small_embedder, "onnxruntime")).embed(crops)
    int8 = Embedder(open_backend(small_embedder, "onnxruntime", BackendOptions(precision="int8"))).embed(crops)
    assert np.median((fp32 * int8).sum(1)) > 0.95


def test_calibration_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ModelError, match="no readable calibration images"):
        calibration_images(tmp_path, 10)


def test_calibration_reads_real_frames():
    assert len(calibration_images(SAMPLES, 2)) == 2


def test_bench_rows_cover_each_setting(small_embedder):
    rows = bench_model(small_embedder, "onnxruntime", "fp32", [1, 4], [1], repeats=2, warmup=1)
    assert [(r.batch, r.threads) for r in rows] == [(1, 1), (4, 1)]
    assert all(r.p50_ms > 0 and r.p95_ms >= r.p50_ms and r.input_size == 96 for r in rows)


def test_bench_json_from_the_cli(bundled_detector_path):
    run = subprocess.run([sys.executable, "-m", "edge.cli", "bench", "models", str(bundled_detector_path), "--batch", "1,8",
                          "--threads", "1", "--repeats", "2", "--json"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    [row] = json.loads(run.stdout)  # the detector's static batch skips batch 8
    assert row["model"] == "product-detector-320.onnx" and row["batch"] == 1 and row["input_size"] == 320
