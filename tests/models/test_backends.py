"""The backend seam: choice, fall-back, and clear errors for bad model files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from models.backends import BackendOptions, backend_class, open_backend
from models.backends.onnxruntime_backend import choose_providers
from models.detector import Detector
from models.embedder import Embedder
from models.errors import BackendUnavailable, ModelError
from models.export import export_onnx


def test_unknown_backend_lists_the_valid_ones(bundled_detector_path):
    with pytest.raises(ModelError, match="unknown inference backend 'cuda'; valid: auto, tensorrt, onnxruntime, torch"):
        open_backend(bundled_detector_path, "cuda")


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="nope.onnx: no such model file"):
        open_backend(tmp_path / "nope.onnx")


def test_corrupted_onnx_names_the_file(tmp_path, bundled_detector_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(bundled_detector_path.read_bytes()[:5000])
    with pytest.raises(ModelError, match="broken.onnx: ONNX Runtime cannot load it"):
        open_backend(broken, "onnxruntime")


def test_auto_picks_onnxruntime_when_tensorrt_is_absent(bundled_detector_path):
    backend = open_backend(bundled_detector_path, "auto")
    assert backend.name == "onnxruntime"
    assert backend.providers[-1] == "CPUExecutionProvider"


def test_tensorrt_backend_says_what_is_missing(bundled_detector_path):
    with pytest.raises(BackendUnavailable, match="TensorRT is not installed here"):
        open_backend(bundled_detector_path, "tensorrt")


def test_torch_backend_needs_weights_beside_the_onnx(bundled_detector_path):
    with pytest.raises(BackendUnavailable, match="no product-detector-320.pt beside product-detector-320.onnx"):
        backend_class("torch")(bundled_detector_path, BackendOptions())


def test_provider_preference_order():
    options = BackendOptions(precision="fp16", engine_cache_dir=None)
    chosen = choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"], options)
    assert [p if isinstance(p, str) else p[0] for p in chosen] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert chosen[0][1]["trt_fp16_enable"] is True
    assert choose_providers(["CPUExecutionProvider"], options) == ["CPUExecutionProvider"]


def test_int8_on_cpu_without_a_quantised_model_says_how_to_make_one(small_embedder, tmp_path):
    alone = tmp_path / small_embedder.name  # the shared one may have its quantised model beside it (test_quantize_and_bench)
    shutil.copy(small_embedder, alone)
    with pytest.raises(ModelError, match="embedder.int8.onnx; make it with `shelfid models quantize"):
        open_backend(alone, "onnxruntime", BackendOptions(precision="int8"))


class Flat(torch.nn.Module):
    def forward(self, images):
        return images.mean(dim=(2, 3))  # [B, 3]: not a YOLOv5 output


def test_detector_refuses_a_model_with_the_wrong_output_shape(tmp_path):
    path = export_onnx(Flat(), tmp_path / "flat.onnx", 64, "output0", {"kind": "detector"}, dynamic_batch=False)
    with pytest.raises(ModelError, match=r"flat.onnx: expected a YOLOv5 output \[1, N, 5 \+ classes\], found \[1, 3\]"):
        Detector(open_backend(path, "onnxruntime"))


def test_embedder_refuses_a_detector(bundled_detector_path):
    with pytest.raises(ModelError, match="model kind is 'detector', expected an embedder"):
        Embedder(open_backend(bundled_detector_path, "onnxruntime"))


def test_run_returns_named_outputs(small_embedder):
    backend = open_backend(small_embedder, "onnxruntime", BackendOptions(threads=1))
    out = backend.run({"images": np.zeros((3, 3, 96, 96), np.float32)})
    assert list(out) == ["embedding"] and out["embedding"].shape == (3, 512)
