"""What training a class-agnostic product detector needs beside the loss: the network's start, batches, EMA, metadata.

The start decides the licence: from the upstream COCO checkpoint (GPL-3.0) the
result is GPL-3.0; from scratch it is ours (Apache-2.0).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.checkpoint import load_yolov5_checkpoint
from models.errors import ModelError
from models.metadata import weights_sha256
from models.shelf_scenes import Sources, compose_scene
from models.yolo_postprocess import letterbox
from models.yolov5 import YOLOv5, yolov5_yaml

NAMES = ["product"]
LICENCE = {"coco": "GPL-3.0 (fine-tuned from the Ultralytics YOLOv5n COCO weights, GPL-3.0)",
           "scratch": "Apache-2.0 (trained from scratch by ShelfID on synthetic scenes)"}


def product_detector(init: str, coco_weights: Path | None = None, size: str = "n") -> YOLOv5:
    """A one-class YOLOv5: from scratch, or with every COCO weight that fits (the head keeps its box and objectness rows)."""
    model = YOLOv5(yolov5_yaml(size, nc=len(NAMES)))
    head = model.model[-1]
    with torch.no_grad():
        for conv, stride in zip(head.m, head.stride.tolist()):  # upstream's prior: a few objects per image
            conv.bias.view(head.na, -1)[:, 4] = math.log(8 / (640 / stride) ** 2)
    if init == "coco":
        if coco_weights is None:
            raise ModelError("--init coco needs --coco-weights (the upstream yolov5n.pt)")
        ckpt = load_yolov5_checkpoint(coco_weights)
        state = model.state_dict()
        for key, value in ckpt.state_dict.items():
            if key in state and state[key].shape == value.shape:
                state[key] = value
            elif key.startswith(f"model.{len(model.model) - 1}.m."):  # Detect: keep xywh + objectness per anchor
                rows = value.view(head.na, -1, *value.shape[1:])[:, :5]
                new = state[key].view(head.na, -1, *value.shape[1:]).clone()
                new[:, :5] = rows
                state[key] = new.view(state[key].shape)
        model.load_state_dict(state)
    elif init != "scratch":
        raise ModelError(f"unknown --init {init!r}; choose coco or scratch")
    # one class: the class score carries no information (objectness is all), so pin it at ~1
    with torch.no_grad():
        for conv in head.m:
            conv.weight.view(head.na, head.no, -1)[:, 5:] = 0
            conv.bias.view(head.na, head.no)[:, 5:] = 6.0
    return model


def scene_batch(sources: Sources, seed: int, step: int, batch: int, imgsz: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scenes for one step, letterboxed like inference: images [B, 3, S, S] RGB 0–1 and targets [N, 6] (image, class, xywh 0–1)."""
    images, targets = [], []
    for i in range(batch):
        rng = np.random.default_rng([seed, step, i])
        scene, boxes = compose_scene(rng, sources, imgsz)
        padded, scale, (px, py) = letterbox(scene, imgsz)
        if rng.random() < 0.5:  # a mirrored shelf is still a shelf
            padded = padded[:, ::-1]
            boxes = boxes.copy()
            boxes[:, [0, 2]] = (scene.shape[1] - boxes[:, [2, 0]])
            px = imgsz - scene.shape[1] * scale - px
        xyxy = boxes * scale + [px, py, px, py]
        xywh = np.concatenate(((xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]), 1) / imgsz
        targets.append(np.concatenate((np.full((len(xywh), 1), i), np.zeros((len(xywh), 1)), xywh), 1))
        images.append(np.ascontiguousarray(padded[..., ::-1].transpose(2, 0, 1)))
    return (torch.from_numpy(np.stack(images)).float() / 255.0,
            torch.from_numpy(np.concatenate(targets).astype(np.float32)).reshape(-1, 6))


class ModelEMA:
    """Exponential moving average of the weights (what is evaluated and shipped); decay ramps up over the first steps."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000, updates: int = 0):
        self.ema = copy.deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, updates
        for p in self.ema.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        current = model.state_dict()
        for k, v in self.ema.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(current[k].detach(), alpha=1 - d)


def detector_metadata(model: YOLOv5, imgsz: int, licence: str, source: str) -> dict:
    return {
        "kind": "detector", "arch": "yolov5", "model_id": weights_sha256(model.state_dict()), "input_size": imgsz,
        "stride": 32, "names": NAMES, "licence": licence, "source": source,
        "input": "images: [1,3,H,W] RGB 0-1, letterboxed (pad 114)", "output_name": "output0",
    }
