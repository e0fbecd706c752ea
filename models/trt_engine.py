"""TensorRT engines: build from ONNX on the device, cache, and refuse foreign ones.

Engines are not portable across TensorRT versions or GPUs, so each is cached
under a name keyed by (ONNX sha256, precision, TensorRT version, GPU name) with
a JSON sidecar saying what it was built from; the ONNX metadata travels in it.

Written against the TensorRT 8.5–10 Python API (name-based I/O). NOT RUN on
the development machine (no GPU, no TensorRT); only the pure parts (naming,
sidecar checks) are unit-tested there.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from models.cuda_runtime import cudart as cuda_runtime
from models.errors import BackendUnavailable, ModelError
from models.metadata import sha256_file
from models.safe_write import write_bytes_atomic

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")


def import_tensorrt():
    try:
        import tensorrt as trt  # from JetPack (python3-libnvinfer) or NVIDIA's wheels
    except ImportError as exc:
        raise BackendUnavailable(f"TensorRT is not installed here ({exc}); it comes with JetPack") from None
    return trt


def gpu_name() -> str:
    """Name of CUDA device 0, via cuda-python."""
    err, props = cuda_runtime().cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise BackendUnavailable(f"no CUDA device: cudaGetDeviceProperties returned {err}")
    name = props.name
    return (name.decode() if isinstance(name, bytes) else str(name)).strip("\x00 ")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def engine_path(cache_dir: Path, onnx_path: Path, onnx_sha256: str, precision: str, trt_version: str, gpu: str) -> Path:
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    name = f"{onnx_path.stem}-{onnx_sha256[:16]}-{precision}-trt{trt_version}-{_slug(gpu)}.engine"
    return Path(cache_dir) / name


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


def check_engine_sidecar(engine: Path, trt_version: str, gpu: str) -> dict:
    """The sidecar of `engine`, after checking it was built for this TensorRT and GPU."""
    side = sidecar_path(engine)
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{engine}: no {side.name} beside it, so its TensorRT version and GPU are unknown; "
                         "rebuild it with `shelfid models build-engine MODEL.onnx`") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{side}: unreadable engine sidecar: {exc}") from None
    if info.get("trt_version") != trt_version:
        raise ModelError(f"{engine}: built with TensorRT {info.get('trt_version')}, this device has {trt_version}; "
                         "engines are not portable: rebuild it from the ONNX file")
    if info.get("gpu") != gpu:
        raise ModelError(f"{engine}: built for GPU {info.get('gpu')!r}, this device has {gpu!r}; rebuild it from the ONNX file")
    return info


def write_engine(engine: Path, serialized: bytes, info: dict) -> None:
    """Engine bytes then sidecar, each written atomically, so a reader never sees a half engine."""
    engine.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(engine, serialized)
    write_bytes_atomic(sidecar_path(engine), json.dumps(info, indent=2).encode())


def _make_calibrator(trt, batches: Callable[[], Iterator[np.ndarray]], cache_file: Path):
    """INT8 entropy calibrator over real preprocessed images (cached between builds)."""
    cudart = cuda_runtime()

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.iterator, self.device_ptr, self.batch_size = batches(), None, 1

        def get_batch_size(self):
            return self.batch_size

        def get_batch(self, names):
            batch = next(self.iterator, None)
            if batch is None:
                return None
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            self.batch_size = batch.shape[0]
            if self.device_ptr is None:
                _, self.device_ptr = cudart.cudaMalloc(batch.nbytes)
            cudart.cudaMemcpy(self.device_ptr, batch.ctypes.data, batch.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)
            return [int(self.device_ptr)]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            write_bytes_atomic(cache_file, bytes(cache))

    return Calibrator()


def build_engine(onnx_path: Path, cache_dir: Path, precision: str = "fp16", workspace_mb: int = 1024,
                 calibration: Callable[[], Iterator[np.ndarray]] | None = None, max_batch: int = 32) -> Path:
    """Build (or reuse) the engine for `onnx_path` on this device; returns its path."""
    trt = import_tensorrt()
    onnx_path, cache_dir = Path(onnx_path), Path(cache_dir)
    onnx_sha = sha256_file(onnx_path)
    gpu = gpu_name()
    engine = engine_path(cache_dir, onnx_path, onnx_sha, precision, trt.__version__, gpu)
    if engine.is_file() and sidecar_path(engine).is_file():
        check_engine_sidecar(engine, trt.__version__, gpu)
        log.info("engine cache hit: %s", engine)
        return engine

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{onnx_path}: TensorRT's ONNX parser refused it: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    timing_cache_file = cache_dir / "timing.cache"
    timing_cache = config.create_timing_cache(timing_cache_file.read_bytes() if timing_cache_file.is_file() else b"")
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibration is None:
            raise ModelError("INT8 needs calibration images: pass --calibration DIR with real frames")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _make_calibrator(trt, calibration, engine.with_suffix(".calib"))

    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = list(tensor.shape)
        if shape[0] == -1:  # dynamic batch (the embedder): 1 .. max_batch, tuned for 8
            fixed = shape[1:]
            profile.set_shape(tensor.name, [1, *fixed], [min(8, max_batch), *fixed], [max_batch, *fixed])
    config.add_optimization_profile(profile)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(timing_cache_file, bytes(config.get_timing_cache().serialize()))

    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    info = {"onnx": onnx_path.name, "onnx_sha256": onnx_sha, "precision": precision, "trt_version": trt.__version__,
            "gpu": gpu, "metadata": metadata}
    write_engine(engine, bytes(serialized), info)
    log.info("engine built: %s (%s, TensorRT %s, %s)", engine, precision, trt.__version__, gpu)
    return engine
