"""TensorRT engine cache: naming, sidecars, and refusing foreign engines (no GPU needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.errors import ModelError
from models.trt_engine import check_engine_sidecar, engine_path, sidecar_path, write_engine

SHA = "ab" * 32


def test_engine_name_is_keyed_by_onnx_precision_version_and_gpu(tmp_path):
    path = engine_path(tmp_path, Path("/m/embedder.onnx"), SHA, "fp16", "10.3.0", "Orin (nvgpu)")
    assert path == tmp_path / f"embedder-{SHA[:16]}-fp16-trt10.3.0-orin-nvgpu.engine"
    other_gpu = engine_path(tmp_path, Path("/m/embedder.onnx"), SHA, "fp16", "10.3.0", "NVIDIA H100")
    other_trt = engine_path(tmp_path, Path("/m/embedder.onnx"), SHA, "fp16", "8.6.2", "Orin (nvgpu)")
    assert len({path, other_gpu, other_trt}) == 3


def test_unknown_precision(tmp_path):
    with pytest.raises(ModelError, match="unknown precision 'int4'; valid: fp32, fp16, int8"):
        engine_path(tmp_path, Path("m.onnx"), SHA, "int4", "10.3.0", "Orin")


def built(tmp_path, trt_version="10.3.0", gpu="Orin") -> Path:
    engine = tmp_path / "m.engine"
    write_engine(engine, b"engine-bytes", {"trt_version": trt_version, "gpu": gpu, "metadata": {"kind": "embedder"}})
    return engine


def test_written_engine_and_sidecar_roundtrip_without_temp_files(tmp_path):
    engine = built(tmp_path)
    assert engine.read_bytes() == b"engine-bytes"
    assert json.loads(sidecar_path(engine).read_text())["gpu"] == "Orin"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]
    assert check_engine_sidecar(engine, "10.3.0", "Orin")["metadata"] == {"kind": "embedder"}


def test_engine_from_another_tensorrt_version_is_refused(tmp_path):
    engine = built(tmp_path, trt_version="8.6.2")
    with pytest.raises(ModelError, match=r"m.engine: built with TensorRT 8.6.2, this device has 10.3.0; .*rebuild"):
        check_engine_sidecar(engine, "10.3.0", "Orin")


def test_engine_from_another_gpu_is_refused(tmp_path):
    with pytest.raises(ModelError, match="built for GPU 'Orin', this device has 'NVIDIA H100'"):
        check_engine_sidecar(built(tmp_path), "10.3.0", "NVIDIA H100")


def test_engine_without_sidecar_is_refused(tmp_path):
    engine = tmp_path / "bare.engine"
    engine.write_bytes(b"x")
    with pytest.raises(ModelError, match="no bare.engine.json beside it"):
        check_engine_sidecar(engine, "10.3.0", "Orin")
