"""The device a training tool runs on: `auto` (a CUDA GPU when torch sees one, else the CPU), `cpu` or `cuda`."""

from __future__ import annotations

import sys

import torch

from models.errors import ModelError

CHOICES = ("auto", "cpu", "cuda")


def training_device(choice: str) -> torch.device:
    """The torch device for `choice`, announced in one line on stderr; `cuda` without a GPU is an error."""
    if choice not in CHOICES:
        raise ModelError(f"device {choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is false)")
    device = torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"training on {device} ({where})", file=sys.stderr)
    return device
