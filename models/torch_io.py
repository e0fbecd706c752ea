"""Our PyTorch checkpoint format: {format, arch, config, state_dict, metadata}.

Plain tensors and builtins only, so it loads with `weights_only=True`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.errors import ModelError
from models.safe_write import replacing

FORMAT = "shelfid-torch-1"


def _build(arch: str, config: dict) -> nn.Module:
    if arch == "resnet34-embedder":
        from models.resnet import ResNet34Embedder

        return ResNet34Embedder(**config)
    if arch == "efficientnet-lite0-embedder":
        from models.efficientnet import EfficientNetLite0Embedder

        return EfficientNetLite0Embedder(**config)
    if arch == "yolov5":
        from models.yolov5 import YOLOv5

        return YOLOv5(config["yaml"], config["stride"], config["bn_eps"])
    raise ModelError(f"unknown architecture {arch!r}; known: resnet34-embedder, efficientnet-lite0-embedder, yolov5")


def save_checkpoint(path: Path | str, model: nn.Module, arch: str, config: dict, metadata: dict[str, str],
                    half: bool = False) -> None:
    """`half` stores floating tensors as float16 (half the file); loading casts them back."""
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()}
    with replacing(path) as tmp:
        torch.save({"format": FORMAT, "arch": arch, "config": config, "state_dict": state, "metadata": metadata}, tmp)


def load_checkpoint(path: Path | str) -> tuple[nn.Module, dict[str, str]]:
    """The model in eval mode and its metadata."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and weights_only refusals all land here
        raise ModelError(f"{path}: not a ShelfID PyTorch checkpoint: {str(exc)[:200]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"{path}: not a ShelfID PyTorch checkpoint (expected format {FORMAT!r})")
    model = _build(ckpt["arch"], ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), dict(ckpt["metadata"])
