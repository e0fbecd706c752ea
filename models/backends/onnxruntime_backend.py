"""ONNX Runtime: TensorRT EP > CUDA EP > CPU, whichever this build has."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.backends import BackendOptions, TensorSpec
from models.errors import ModelError

log = logging.getLogger(__name__)

_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64", "tensor(int32)": "int32",
          "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


def choose_providers(available: list[str], options: BackendOptions) -> list:
    """Execution providers in preference order, with options for the TensorRT EP."""
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        trt_options = {"trt_fp16_enable": options.precision in ("fp16", "int8"), "trt_int8_enable": options.precision == "int8"}
        if options.engine_cache_dir is not None:
            trt_options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(options.engine_cache_dir),
                            "trt_timing_cache_enable": True}
        providers.append(("TensorrtExecutionProvider", trt_options))
    if "CUDAExecutionProvider" in available:
        providers.append("CUDAExecutionProvider")
    providers.append("CPUExecutionProvider")
    return providers


def quantized_path(path: Path) -> Path:
    return path.with_name(path.stem + ".int8.onnx")


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
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.inputs = [TensorSpec(i.name, tuple(i.shape), _TYPES.get(i.type, i.type)) for i in self.session.get_inputs()]
        self.outputs = [TensorSpec(o.name, tuple(o.shape), _TYPES.get(o.type, o.type)) for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self.session.run(self._output_names, feed)))
