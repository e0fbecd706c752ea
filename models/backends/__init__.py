"""One inference interface over TensorRT, ONNX Runtime and PyTorch.

`open_backend(path, "auto")` picks TensorRT when it is importable and a GPU is
there, else ONNX Runtime (TensorRT EP > CUDA EP > CPU), else PyTorch. Each
implementation lives in its own module and is imported only when asked for.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from models.errors import BackendUnavailable, ModelError

log = logging.getLogger(__name__)

BACKENDS = {
    "tensorrt": "models.backends.tensorrt_backend:TensorRTBackend",
    "onnxruntime": "models.backends.onnxruntime_backend:ONNXRuntimeBackend",
    "torch": "models.backends.torch_backend:TorchBackend",
}
AUTO_ORDER = ("tensorrt", "onnxruntime", "torch")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, or strings/None for dynamic axes
    dtype: str


class Backend(Protocol):
    name: str
    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, str]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on named input arrays; returns named output arrays."""
        ...


@dataclass(frozen=True)
class BackendOptions:
    threads: int = 0  # 0: the runtime's default
    precision: str = "fp32"  # fp32 | fp16 | int8
    engine_cache_dir: Path | None = None  # TensorRT engines built on this device
    device: str = "auto"  # auto | cpu | cuda | cuda:N (models.device): cpu keeps every backend off the GPU
    # ONNX Runtime: hand the arena's unused memory back after each run. For models whose input size changes with every
    # call (the learned matcher's crops): the arena otherwise keeps what its largest calls took, and more
    release_memory: bool = False


def backend_class(name: str) -> type:
    """The implementation registered under `name`, imported now."""
    if name not in BACKENDS:
        raise ModelError(f"unknown inference backend {name!r}; valid: auto, {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} is not available here: {exc}") from None
    return getattr(module, class_name)


def open_backend(path: Path | str, backend: str = "auto", options: BackendOptions = BackendOptions()) -> Backend:
    """Open a model file with the named backend, or the best one available for `auto`."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    if backend != "auto":
        return backend_class(backend)(path, options)
    reasons = []
    for name in AUTO_ORDER:
        try:
            opened = backend_class(name)(path, options)
        except BackendUnavailable as exc:
            reasons.append(str(exc))
            continue
        log.debug("backend auto chose %s for %s", name, path)
        return opened
    raise BackendUnavailable(f"{path}: no inference backend can run it here: " + "; ".join(reasons))
