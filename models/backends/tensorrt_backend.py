"""TensorRT: deserialise an engine (or build one from ONNX into the cache) and run it.

Name-based I/O (TensorRT >= 8.5, 10): set_input_shape, set_tensor_address,
execute_async_v3. Device memory through cuda-python's runtime bindings (models/cuda_runtime.py:
12.x and 13.x), so the run-time
path needs no PyTorch. NOT RUN on the development machine (no GPU there);
written against NVIDIA's documented Python API for JetPack 6 (TensorRT 8.6/10).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from models.backends import BackendOptions, TensorSpec
from models.cuda_runtime import cudart as cuda_runtime
from models.device import device_index
from models.errors import BackendUnavailable, ModelError
from models.trt_engine import build_engine, check_engine_sidecar, gpu_name, import_tensorrt

log = logging.getLogger(__name__)


def _check(result):
    """cudart calls return (err, *values); raise on error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise ModelError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else values


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, path: Path, options: BackendOptions = BackendOptions()):
        if options.device == "cpu":
            raise BackendUnavailable("the tensorrt backend runs on a GPU only, and models.device is cpu")
        trt = import_tensorrt()
        self._cudart = cudart = cuda_runtime()
        gpu = gpu_name()  # BackendUnavailable when there is no CUDA device (auto then tries the next backend)
        if device_index(options.device):
            _check(cudart.cudaSetDevice(device_index(options.device)))  # engines are cached by device 0's name
        if path.suffix == ".onnx":
            cache = options.engine_cache_dir or path.parent
            path = build_engine(path, cache, "fp32" if options.precision == "fp32" else options.precision)
        info = check_engine_sidecar(path, trt.__version__, gpu)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelError(f"{path}: TensorRT could not deserialise the engine (corrupt, or another TensorRT version)")
        self.context = self.engine.create_execution_context()
        self.path, self.metadata = path, dict(info.get("metadata", {}))
        self.inputs, self.outputs = [], []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            spec = TensorSpec(name, tuple(self.engine.get_tensor_shape(name)), np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))).name)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(spec)
        self.stream = _check(cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self._lock = threading.Lock()  # one context, stream and set of buffers: the daemon's identify threads take turns

    def _device_buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self._cudart.cudaFree(ptr))
            ptr = _check(self._cudart.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self._run(feed)

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, h2d, d2h = self._cudart, self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for spec in self.inputs:
            array = np.ascontiguousarray(feed[spec.name], dtype=spec.dtype)
            self.context.set_input_shape(spec.name, array.shape)
            ptr = self._device_buffer(spec.name, array.nbytes)
            _check(cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, h2d, self.stream))
            self.context.set_tensor_address(spec.name, ptr)
        results = {}
        for spec in self.outputs:
            shape = tuple(self.context.get_tensor_shape(spec.name))
            results[spec.name] = np.empty(shape, dtype=spec.dtype)
            self.context.set_tensor_address(spec.name, self._device_buffer(spec.name, results[spec.name].nbytes))
        if not self.context.execute_async_v3(self.stream):
            raise ModelError(f"{self.path}: TensorRT execution failed")
        for name, array in results.items():
            _check(cudart.cudaMemcpyAsync(array.ctypes.data, self._buffers[name][0], array.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return results

    def __del__(self):
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self._cudart.cudaFree(ptr)
