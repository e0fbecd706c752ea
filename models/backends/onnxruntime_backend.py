"""ONNX Runtime: TensorRT EP > CUDA EP > CPU, whichever this build has."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.backends import BackendOptions, TensorSpec
from models.device import device_index
from models.errors import ModelError

log = logging.getLogger(__name__)
_said: set[str] = set()  # the CPU fallback is said once per process, not once per model

_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32",
          "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
ORT_TRT_CACHE = "ort-trt"  # ONNX Runtime's own TensorRT engines, in a folder beside ours (different format and key)


def tensorrt_options(options: BackendOptions) -> dict:
    """TensorRT EP options as ONNX Runtime documents them (TensorRT-ExecutionProvider, "Configurations")."""
    trt = {"device_id": device_index(options.device), "trt_fp16_enable": options.precision in ("fp16", "int8"),
           "trt_int8_enable": options.precision == "int8"}
    if options.engine_cache_dir is not None:
        cache = str(Path(options.engine_cache_dir) / ORT_TRT_CACHE)
        trt |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}
    return trt


def cuda_options(options: BackendOptions) -> dict:
    """CUDA EP options (CUDA-ExecutionProvider, "Configuration Options"). The embedder sees a new batch size on most
    calls, and an EXHAUSTIVE cuDNN search would run again for each; the arena grows by what is asked, not by powers of
    two, which matters on a 4 GB Jetson whose GPU memory is the system's."""
    return {"device_id": device_index(options.device), "cudnn_conv_algo_search": "HEURISTIC",
            "arena_extend_strategy": "kSameAsRequested", "do_copy_in_default_stream": True}


def choose_providers(available: list[str], options: BackendOptions) -> list:
    """Execution providers in preference order (TensorRT EP > CUDA EP > CPU), each GPU one with its options.

    device cpu: the CPU only; cuda: a GPU provider must be in `available` (ModelError otherwise); auto: the GPU
    providers present, else the CPU with one log line."""
    if options.device == "cpu":
        return ["CPUExecutionProvider"]
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", tensorrt_options(options)))
    if "CUDAExecutionProvider" in available:
        providers.append(("CUDAExecutionProvider", cuda_options(options)))
    if not providers and options.device != "auto":
        raise ModelError(f"models.device {options.device}: this ONNX Runtime has no GPU execution provider (it has "
                         f"{', '.join(available)}); install onnxruntime-gpu (on a Jetson, the Jetson Zoo wheel) or use auto")
    if not providers and "ort-cpu" not in _said:
        _said.add("ort-cpu")
        # DEBUG: the usual case on a CPU-only device (pip's onnxruntime), not news for every command an operator runs
        log.debug("device auto: this ONNX Runtime has no CUDA or TensorRT execution provider, so ONNX models run on the CPU")
    return providers + ["CPUExecutionProvider"]


def quantized_path(path: Path) -> Path:
    return path.with_name(path.stem + ".int8.onnx")


def check_gpu_provider_loaded(path: Path, asked: list, got: list[str], device: str) -> None:
    """ONNX Runtime drops a GPU provider whose libraries (CUDA, cuDNN, TensorRT) fail to load with only a warning on
    stderr: an error when the config said cuda, one log line under auto."""
    wanted = [p if isinstance(p, str) else p[0] for p in asked if (p if isinstance(p, str) else p[0]) in GPU_PROVIDERS]
    if not wanted or any(p in got for p in GPU_PROVIDERS):
        return
    message = f"{path.name}: ONNX Runtime offered {', '.join(wanted)} but could not start it (CUDA/cuDNN/TensorRT libraries?)"
    if device != "auto":
        raise ModelError(f"{message}; models.device is {device}")
    log.warning("%s; running on the CPU", message)


class ONNXRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, path: Path, options: BackendOptions = BackendOptions()):
        if path.suffix != ".onnx":
            raise ModelError(f"{path}: ONNX Runtime needs an .onnx file")
        providers = choose_providers(ort.get_available_providers(), options)
        on_cpu = len(providers) == 1
        if options.precision == "int8" and on_cpu:
            # int8 on CPU means the statically quantised (QDQ) copy; dynamic quantisation is slower than fp32
            if not quantized_path(path).is_file():
                raise ModelError(f"{path}: precision int8 needs {quantized_path(path).name}; "
                                 f"make it with `shelfid models quantize {path} --images DIR`")
            path = quantized_path(path)
        session_options = ort.SessionOptions()
        if options.threads:
            session_options.intra_op_num_threads = options.threads
            session_options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), session_options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types per failure kind
            raise ModelError(f"{path}: ONNX Runtime cannot load it: {str(exc).strip()[:300]}") from None
        self.path = path
        self.providers = self.session.get_providers()
        check_gpu_provider_loaded(path, providers, self.providers, options.device)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self._run_options = _releasing(self.providers, options) if options.release_memory else None
        self.inputs = [TensorSpec(i.name, tuple(i.shape), _TYPES.get(i.type, i.type)) for i in self.session.get_inputs()]
        self.outputs = [TensorSpec(o.name, tuple(o.shape), _TYPES.get(o.type, o.type)) for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self.session.run(self._output_names, feed, self._run_options)))


def _releasing(providers: list[str], options: BackendOptions) -> ort.RunOptions:
    """Run options that shrink the arenas after each run (ONNX Runtime's memory.enable_memory_arena_shrinkage): the
    CPU's, and the GPU's where the CUDA EP runs (on a Jetson that is the system's memory too; not run here)."""
    arenas = ["cpu:0"] + ([f"gpu:{device_index(options.device)}"] if "CUDAExecutionProvider" in providers else [])
    run_options = ort.RunOptions()
    run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", ";".join(arenas))
    return run_options
