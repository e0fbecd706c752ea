"""PyTorch → ONNX with our metadata: YOLOv5 checkpoints and the embedder."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch
from torch import nn

from models.checkpoint import load_yolov5_checkpoint
from models.errors import ModelError
from models.metadata import sha256_file, weights_sha256, write_metadata
from models.resnet import ResNet34Embedder
from models.safe_write import replacing
from models.torch_io import load_checkpoint, save_checkpoint
from models.yolov5 import YOLOv5

log = logging.getLogger(__name__)

OPSET = 17
YOLOV5_LICENCE = "GPL-3.0 (derived from Ultralytics YOLOv5 weights)"


def export_onnx(model: nn.Module, out: Path, imgsz: int, output_name: str, metadata: dict, dynamic_batch: bool) -> Path:
    """Export with input `images` [B, 3, imgsz, imgsz]; written to a temp file, fsynced, then renamed into place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, imgsz, imgsz)
    axes = {"images": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with replacing(out) as path:
        tmp = str(path)
        with torch.inference_mode():
            torch.onnx.export(model.eval(), example, tmp, input_names=["images"], output_names=[output_name],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        proto = onnx.load(tmp)
        write_metadata(proto, metadata)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
    return out


def import_yolov5(weights: Path | str, out: Path | str, imgsz: int = 640, save_torch: bool = False,
                  product_classes: list[str] | None = None) -> dict:
    """Upstream YOLOv5 `.pt` → our architecture → ONNX in upstream's I/O convention; returns the metadata.

    `product_classes` (e.g. bottle, cup for a COCO model) are recorded in the model: the detector keeps only
    those unless the config's models.classes says otherwise.
    """
    weights, out = Path(weights), Path(out)
    if imgsz % 32:
        raise ModelError(f"--imgsz must be a multiple of 32, got {imgsz}")
    ckpt = load_yolov5_checkpoint(weights)
    unknown = [c for c in product_classes or [] if c not in ckpt.names]
    if unknown:
        raise ModelError(f"--classes {unknown} are not among {weights.name}'s classes ({', '.join(ckpt.names[:12])}"
                         f"{'...' if len(ckpt.names) > 12 else ''})")
    model = YOLOv5(ckpt.yaml, ckpt.stride, ckpt.bn_eps)
    missing, unexpected = model.load_state_dict(ckpt.state_dict, strict=False)
    if missing or unexpected:
        raise ModelError(f"{weights}: does not fit the YOLOv5 architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    expected_rows = sum(3 * (imgsz // s) ** 2 for s in ckpt.stride)
    with torch.inference_mode():
        rows, cols = model(torch.zeros(1, 3, imgsz, imgsz)).shape[1:]
    if (rows, cols) != (expected_rows, 5 + len(ckpt.names)):
        raise ModelError(f"{weights}: network output is {rows}×{cols}, expected {expected_rows}×{5 + len(ckpt.names)}")
    metadata = {
        "kind": "detector", "arch": "yolov5", "model_id": sha256_file(weights), "input_size": imgsz,
        "stride": max(ckpt.stride), "names": ckpt.names, "licence": YOLOV5_LICENCE, "source": weights.name,
        "input": "images: [1,3,H,W] RGB 0-1, letterboxed (pad 114)", "output_name": "output0",
        **({"product_classes": list(product_classes)} if product_classes else {}),
    }
    export_onnx(model, out, imgsz, "output0", metadata, dynamic_batch=False)
    if save_torch:
        config = {"yaml": ckpt.yaml, "stride": ckpt.stride, "bn_eps": ckpt.bn_eps}
        save_checkpoint(out.with_suffix(".pt"), model, "yolov5", config, {k: str(v) for k, v in metadata.items()})
    log.info("imported %s -> %s (%d classes, imgsz %d)", weights, out, len(ckpt.names), imgsz)
    return metadata


def export_detector(model: YOLOv5, out: Path | str, imgsz: int, metadata: dict) -> Path:
    """Our trained detector in the same ONNX contract as an imported upstream YOLOv5: input `images`, output `output0`."""
    if imgsz % 32:
        raise ModelError(f"the input size must be a multiple of 32, got {imgsz}")
    return export_onnx(model.eval(), Path(out), imgsz, "output0", {**metadata, "input_size": imgsz}, dynamic_batch=False)


def export_detector_checkpoint(weights: Path | str, out: Path | str, imgsz: int) -> dict:
    """A detector checkpoint of ours (tools/train_detector.py) → ONNX at `imgsz`, with the metadata training recorded."""
    model, saved = load_checkpoint(weights)
    if not isinstance(model, YOLOv5):
        raise ModelError(f"{weights}: not a detector checkpoint (architecture {type(model).__name__})")
    export_detector(model, out, imgsz, saved)  # the values are already the strings ONNX metadata holds
    return {**saved, "input_size": imgsz}


def embedder_metadata(model: ResNet34Embedder, weights_note: str) -> dict:
    return {
        "kind": "embedder", "arch": "resnet34", "model_id": weights_sha256(model.state_dict()),
        "input_size": model.input_size, "embedding_dim": model.embedding_dim, "licence": "Apache-2.0",
        "source": weights_note, "input": "images: [B,3,S,S] RGB 0-1", "output_name": "embedding",
    }


def export_embedder(out: Path | str, weights: Path | str | None = None, input_size: int = 224,
                    embedding_dim: int = 512, seed: int = 0, save_torch: bool = False) -> dict:
    """An embedder checkpoint of ours (ResNet34 or EfficientNet-Lite0) → ONNX with a dynamic batch, keeping the
    checkpoint's own metadata (origin, licence, model id). Without `weights`, a seeded random ResNet34 (tests, shapes)."""
    out = Path(out)
    if weights is not None:
        model, saved = load_checkpoint(weights)
        if not hasattr(model, "embedding_dim"):
            raise ModelError(f"{weights}: not an embedder checkpoint")
        metadata = {**embedder_metadata(model, Path(weights).name), **saved}  # what training recorded wins
    else:
        torch.manual_seed(seed)
        model = ResNet34Embedder(embedding_dim, input_size).eval()
        metadata = embedder_metadata(model, f"random init, seed {seed} (untrained)")
    export_onnx(model, out, model.input_size, "embedding", metadata, dynamic_batch=True)
    if save_torch:
        config = {"embedding_dim": model.embedding_dim, "input_size": model.input_size}
        arch = "resnet34-embedder" if isinstance(model, ResNet34Embedder) else "efficientnet-lite0-embedder"
        save_checkpoint(out.with_suffix(".pt"), model, arch, config, {k: str(v) for k, v in metadata.items()})
    return metadata


def embedder_to_torch2trt(weights: Path | str, out: Path | str, fp16: bool = True, max_batch: int = 32) -> Path:
    """The alternative engine path: torch2trt converts the PyTorch embedder directly (Jetson only).

    The engine is written with the same sidecar as `build_engine`, so the TensorRT
    backend opens it like any other. NOT RUN on the development machine.
    """
    try:
        from torch2trt import torch2trt
    except ImportError as exc:
        raise ModelError(f"torch2trt is not installed ({exc}); it is built from NVIDIA-AI-IOT/torch2trt on the Jetson") from None
    from models.trt_engine import gpu_name, import_tensorrt, write_engine

    trt = import_tensorrt()
    model, metadata = load_checkpoint(weights)
    example = torch.zeros(1, 3, model.input_size, model.input_size).cuda()
    trt_module = torch2trt(model.cuda().eval(), [example], fp16_mode=fp16, max_batch_size=max_batch,
                           input_names=["images"], output_names=["embedding"])
    out = Path(out)
    info = {"onnx": None, "onnx_sha256": None, "precision": "fp16" if fp16 else "fp32", "trt_version": trt.__version__,
            "gpu": gpu_name(), "metadata": metadata, "built_by": "torch2trt"}
    write_engine(out, bytes(trt_module.engine.serialize()), info)
    return out
