"""YOLOv5 (v6.x family: n/s/m/l/x) written from the published architecture.

The network is built from the same yaml description upstream checkpoints
carry (`backbone` + `head` rows of [from, repeats, block, args]), and module
names follow upstream's so a checkpoint's state dict loads as-is. Output
follows upstream's export convention: [B, N, 5 + classes] with xywh centres in
input pixels, objectness and class scores after sigmoid, no NMS inside.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The standard yolov5n.yaml; s/m/l/x differ only in the two multipliers.
YOLOV5_BASE = {
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    "backbone": [
        [-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
        [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]], [-1, 1, "Conv", [512, 3, 2]],
        [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]], [-1, 3, "C3", [1024]], [-1, 1, "SPPF", [1024, 5]],
    ],
    "head": [
        [-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 6], 1, "Concat", [1]],
        [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]], [-1, 3, "C3", [256, False]], [-1, 1, "Conv", [256, 3, 2]],
        [[-1, 14], 1, "Concat", [1]], [-1, 3, "C3", [512, False]], [-1, 1, "Conv", [512, 3, 2]],
        [[-1, 10], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]], [[17, 20, 23], 1, "Detect", ["nc", "anchors"]],
    ],
}
SIZES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}


def yolov5_yaml(size: str = "n", nc: int = 80) -> dict:
    depth, width = SIZES[size]
    return {**YOLOV5_BASE, "nc": nc, "depth_multiple": depth, "width_multiple": width}


class Conv(nn.Module):
    """Conv2d (no bias) → BatchNorm → SiLU, 'same' padding."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, bn_eps: float = 1e-3):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=bn_eps)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, bn_eps: float = 1e-3):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1, bn_eps=bn_eps)
        self.cv2 = Conv(c2, c2, 3, bn_eps=bn_eps)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with three convolutions."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, bn_eps: float = 1e-3):
        super().__init__()
        hidden = c2 // 2
        self.cv1 = Conv(c1, hidden, 1, bn_eps=bn_eps)
        self.cv2 = Conv(c1, hidden, 1, bn_eps=bn_eps)
        self.cv3 = Conv(2 * hidden, c2, 1, bn_eps=bn_eps)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, bn_eps) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained max-pools."""

    def __init__(self, c1: int, c2: int, k: int = 5, bn_eps: float = 1e-3):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, bn_eps=bn_eps)
        self.cv2 = Conv(hidden * 4, c2, 1, bn_eps=bn_eps)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    def __init__(self, dim: int = 1):
        super().__init__()
        self.d = dim

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, self.d)


class Detect(nn.Module):
    """Per-level 1×1 heads decoded to boxes: [B, sum(na·h·w), 5 + nc]."""

    def __init__(self, nc: int, anchors: list[list[int]], ch: list[int], stride: list[int]):
        super().__init__()
        self.nc, self.no = nc, nc + 5
        self.nl, self.na = len(anchors), len(anchors[0]) // 2
        self.register_buffer("stride", torch.tensor(stride, dtype=torch.float32), persistent=False)
        # upstream stores anchors in grid units (pixels / stride)
        grid_anchors = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2) / self.stride.view(-1, 1, 1)
        self.register_buffer("anchors", grid_anchors)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """Decoded boxes in eval mode; in training mode the raw logits per level, [B, na, ny, nx, no] (the loss's input)."""
        if self.training:
            return [self.m[i](x).view(x.shape[0], self.na, self.no, *x.shape[2:]).permute(0, 1, 3, 4, 2).contiguous()
                    for i, x in enumerate(xs)]
        out = []
        for i, x in enumerate(xs):
            b, _, ny, nx = x.shape
            y = self.m[i](x).view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            rows, cols = (torch.arange(n, dtype=y.dtype, device=y.device) for n in (ny, nx))
            gy, gx = torch.meshgrid(rows, cols, indexing="ij")
            grid = torch.stack((gx, gy), 2).view(1, 1, ny, nx, 2) - 0.5
            anchor_px = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2)
            xy = (y[..., :2] * 2 + grid) * self.stride[i]
            wh = (y[..., 2:4] * 2) ** 2 * anchor_px
            out.append(torch.cat((xy, wh, y[..., 4:]), -1).view(b, -1, self.no))
        return torch.cat(out, 1)


def _make_divisible(x: float, divisor: int = 8) -> int:
    return int(math.ceil(x / divisor) * divisor)


class YOLOv5(nn.Module):
    """The network described by an upstream-style yaml dict."""

    def __init__(self, cfg: dict, stride: list[int] = (8, 16, 32), bn_eps: float = 1e-3):
        super().__init__()
        self.cfg = cfg
        nc, gd, gw = cfg["nc"], cfg["depth_multiple"], cfg["width_multiple"]
        # channels[i] is layer i's output width once layer 0 exists (upstream's bookkeeping)
        channels, layers, self.sources = [cfg.get("ch", 3)], [], []
        for i, (src, repeats, block, args) in enumerate(cfg["backbone"] + cfg["head"]):
            n = max(round(repeats * gd), 1) if repeats > 1 else repeats
            if block in ("Conv", "C3", "SPPF"):
                c1, c2 = channels[src], _make_divisible(args[0] * gw)
                if block == "Conv":
                    layer = Conv(c1, c2, *args[1:], bn_eps=bn_eps)
                elif block == "C3":
                    layer = C3(c1, c2, n, *args[1:], bn_eps=bn_eps)
                else:
                    layer = SPPF(c1, c2, *args[1:], bn_eps=bn_eps)
            elif block == "nn.Upsample":
                layer, c2 = nn.Upsample(scale_factor=args[1], mode=args[2]), channels[src]
            elif block == "Concat":
                layer, c2 = Concat(args[0]), sum(channels[s] for s in src)
            elif block == "Detect":
                layer, c2 = Detect(nc, cfg["anchors"], [channels[s] for s in src], list(stride)), 0
            else:
                raise ValueError(f"unsupported YOLOv5 block {block!r}; supported: Conv, C3, SPPF, nn.Upsample, Concat, Detect")
            if i == 0:
                channels = []
            channels.append(c2)
            layers.append(layer)
            self.sources.append(src)
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list = []
        for layer, src in zip(self.model, self.sources):
            if isinstance(src, list):
                x = [x if s == -1 else outputs[s] for s in src]
            elif src != -1:
                x = outputs[src]
            x = layer(x)
            outputs.append(x)
        return x
