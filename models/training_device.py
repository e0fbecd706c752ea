"""The device a training tool runs on: `auto` (a CUDA GPU when torch sees one, else the CPU), `cpu` or `cuda`.

The rule is models.device's, shared with inference; training tools announce it on stderr.
"""

from __future__ import annotations

import sys

import torch

from models.device import CHOICES, choose_device
from models.errors import ModelError
from models.torch_device import gpu_count

__all__ = ["CHOICES", "training_device"]


def training_device(choice: str) -> torch.device:
    """The torch device for `choice`, announced in one line on stderr; `cuda` without a GPU is an error."""
    if choice not in CHOICES:
        raise ModelError(f"device {choice!r}: expected one of {', '.join(CHOICES)}")
    try:
        device = torch.device(choose_device(choice, gpu_count()))
    except ModelError:
        raise ModelError("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is false)") from None
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"training on {device} ({where})", file=sys.stderr)
    return device
