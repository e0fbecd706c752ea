"""Where PyTorch and ONNX Runtime run (issue 17): the decision rules on this CPU, a GPU simulated only where the
rule asks torch or ONNX Runtime what is there, and the real CPU path end to end. No tensor is moved to a GPU here."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import models.backends.onnxruntime_backend as ort_backend
import models.torch_device as device_module
from edge.core.assembly import backend_options
from edge.core.config import Config, ModelsConfig, VerifierConfig
from models.backends import BackendOptions, backend_class, open_backend
from models.backends.onnxruntime_backend import check_gpu_provider_loaded, choose_providers
from models.device import choose_device
from models.errors import BackendUnavailable, ModelError
from models.runtime import BUNDLED_EMBEDDER, WEIGHTS_DIR
from models.torch_device import autocast, torch_device

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def names(providers: list) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]


@pytest.mark.parametrize("choice,gpus,expected", [
    ("auto", 0, "cpu"), ("auto", 2, "cuda:0"), ("cpu", 1, "cpu"), ("cuda", 1, "cuda:0"), ("cuda:1", 2, "cuda:1")])
def test_choose_device_picks_the_gpu_only_when_asked_and_present(choice, gpus, expected):
    assert choose_device(choice, gpus) == expected


@pytest.mark.parametrize("choice,gpus,message", [
    ("cuda", 0, "device cuda: torch sees no CUDA GPU here"), ("cuda:2", 2, "sees 2 CUDA GPU\\(s\\), numbered 0 to 1"),
    ("gpu", 1, "expected auto, cpu, cuda or cuda:N")])
def test_choose_device_refuses_what_cannot_be_met(choice, gpus, message):
    with pytest.raises(ModelError, match=message):
        choose_device(choice, gpus)


def test_auto_without_a_gpu_says_so_in_one_line_however_many_models_open(monkeypatch, caplog):
    monkeypatch.setattr(device_module, "_said", set())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="models.torch_device"):
        assert torch_device("auto", "the detector").type == "cpu"
        assert torch_device("auto", "the verifier").type == "cpu"
    assert [r.getMessage() for r in caplog.records] == [
        "device auto: torch sees no CUDA GPU here, so PyTorch models (the detector first) run on the CPU"]


def test_auto_with_a_simulated_gpu_chooses_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Simulated H200")
    assert torch_device("auto") == torch.device("cuda:0")  # the decision only: nothing is moved there


def test_autocast_is_float16_on_cuda_only():
    assert not isinstance(autocast(torch.device("cpu"), "fp16"), torch.autocast)
    assert not isinstance(autocast(torch.device("cuda:0"), "fp32"), torch.autocast)
    with pytest.warns(UserWarning):  # this CPU-only torch warns that CUDA autocast is off; the choice is what is tested
        chosen = autocast(torch.device("cuda:0"), "fp16")
    assert isinstance(chosen, torch.autocast) and chosen.fast_dtype == torch.float16


def test_gpu_providers_carry_the_options_onnx_runtime_documents(tmp_path):
    options = BackendOptions(precision="fp16", engine_cache_dir=tmp_path, device="cuda:1")
    trt, cuda, cpu = choose_providers(ALL, options)
    assert trt == ("TensorrtExecutionProvider", {
        "device_id": 1, "trt_fp16_enable": True, "trt_int8_enable": False, "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(tmp_path / "ort-trt"), "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(tmp_path / "ort-trt")})
    assert cuda == ("CUDAExecutionProvider", {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC",
                                              "arena_extend_strategy": "kSameAsRequested", "do_copy_in_default_stream": True})
    assert cpu == "CPUExecutionProvider"


def test_int8_asks_tensorrt_for_int8_with_fp16_fallback_and_no_cache_without_a_folder():
    [(_, trt), *_] = choose_providers(ALL, BackendOptions(precision="int8"))
    assert trt == {"device_id": 0, "trt_fp16_enable": True, "trt_int8_enable": True}


def test_device_cpu_keeps_onnx_runtime_off_the_gpu():
    assert choose_providers(ALL, BackendOptions(device="cpu")) == ["CPUExecutionProvider"]


def test_device_cuda_without_a_gpu_provider_is_an_error_at_open():
    with pytest.raises(ModelError, match="models.device cuda: this ONNX Runtime has no GPU execution provider"):
        choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"], BackendOptions(device="cuda"))


def test_auto_without_a_gpu_provider_falls_back_to_the_cpu_in_one_line(monkeypatch, caplog):
    monkeypatch.setattr(ort_backend, "_said", set())
    with caplog.at_level(logging.DEBUG, logger="models.backends.onnxruntime_backend"):  # DEBUG: the usual CPU-only case
        for _ in range(3):
            assert choose_providers(["CPUExecutionProvider"], BackendOptions()) == ["CPUExecutionProvider"]
    assert len(caplog.records) == 1 and "run on the CPU" in caplog.records[0].getMessage()


def test_a_gpu_provider_that_fails_to_start_is_an_error_for_cuda_and_a_warning_for_auto(tmp_path, caplog):
    asked = choose_providers(ALL, BackendOptions(device="cuda"))
    with pytest.raises(ModelError, match="offered TensorrtExecutionProvider, CUDAExecutionProvider but could not start it"):
        check_gpu_provider_loaded(tmp_path / "m.onnx", asked, ["CPUExecutionProvider"], "cuda")
    with caplog.at_level(logging.WARNING):
        check_gpu_provider_loaded(tmp_path / "m.onnx", asked, ["CPUExecutionProvider"], "auto")
    assert "running on the CPU" in caplog.text
    check_gpu_provider_loaded(tmp_path / "m.onnx", asked, ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda")


def test_onnx_runtime_on_this_cpu_end_to_end_with_device_cpu_and_auto():
    for device in ("cpu", "auto"):
        backend = open_backend(BUNDLED_EMBEDDER, "onnxruntime", BackendOptions(threads=1, device=device))
        assert backend.providers == ["CPUExecutionProvider"]


def test_onnx_runtime_with_device_cuda_on_this_cpu_is_a_model_error():
    with pytest.raises(ModelError, match="models.device cuda"):
        open_backend(BUNDLED_EMBEDDER, "onnxruntime", BackendOptions(device="cuda"))


def test_tensorrt_backend_steps_aside_for_device_cpu_so_auto_picks_onnx_runtime():
    with pytest.raises(BackendUnavailable, match="runs on a GPU only, and models.device is cpu"):
        backend_class("tensorrt")(BUNDLED_EMBEDDER, BackendOptions(device="cpu"))
    assert open_backend(BUNDLED_EMBEDDER, "auto", BackendOptions(device="cpu")).name == "onnxruntime"


def test_torch_backend_runs_on_the_cpu_and_agrees_with_onnx_runtime():
    feed = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    torch_run = backend_class("torch")(WEIGHTS_DIR / "embedder.pt", BackendOptions(threads=1, device="cpu", precision="fp16"))
    assert torch_run.device.type == "cpu"  # fp16 asks for autocast on a GPU; on the CPU it runs fp32
    ours = torch_run.run({"images": feed})["embedding"]
    onnx = open_backend(BUNDLED_EMBEDDER, "onnxruntime", BackendOptions(threads=1, device="cpu"))
    reference = onnx.run({onnx.inputs[0].name: feed})[onnx.outputs[0].name]
    assert ours.dtype == np.float32 and np.min(np.sum(ours * reference, axis=1)) > 0.999


def test_torch_backend_with_device_cuda_on_this_cpu_fails_at_open_not_at_the_first_frame():
    with pytest.raises(ModelError, match="device cuda: torch sees no CUDA GPU here"):
        backend_class("torch")(WEIGHTS_DIR / "embedder.pt", BackendOptions(device="cuda"))


def test_config_device_keys_and_their_path_into_the_backend_options():
    config = Config(models=ModelsConfig(device="cuda:1"), verifier=VerifierConfig(device="cpu", precision="fp16"))
    assert backend_options(config).device == "cuda:1"
    assert Config().models.device == "auto" and Config().verifier.device == "auto"
    for bad in ("gpu", "cuda:", "CUDA"):
        with pytest.raises(ValidationError, match="device"):
            ModelsConfig(device=bad)


def test_learned_verifier_with_device_cuda_on_this_cpu_fails_at_open():
    from edge.core.verifier import open_verifier

    with pytest.raises(ModelError, match="device cuda: torch sees no CUDA GPU here"):
        open_verifier(VerifierConfig(kind="aliked-lightglue", device="cuda"))


def test_the_daemons_run_time_path_never_imports_torch():
    """Devices install no PyTorch: the ONNX Runtime and TensorRT backends and the daemon must import without it
    (the live systemd check caught 'No module named torch' when the device rule imported torch)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import sys; import models.backends.onnxruntime_backend, models.backends.tensorrt_backend, models.runtime, "
            "edge.core.identify, edge.daemon.run, edge.commands.device; print('torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr[-1500:]
    assert run.stdout.strip() == "False"
