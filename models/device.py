"""Where a PyTorch network runs: `auto` (a CUDA GPU when torch sees one, else the CPU), `cpu`, `cuda` or `cuda:N`.

One decision for every PyTorch user (the torch backend, the learned verifiers, the
training tools): `choose_device` is the pure rule and `torch_device` asks torch.
`cuda` without a GPU is a ModelError when the model is opened, not a crash at the
first frame; `auto` without one says so in one log line and runs on the CPU.
Mixed precision (`autocast`) is float16 on CUDA only: on the CPU it is plain fp32.
"""

from __future__ import annotations

import contextlib
import logging
import re

import torch

from models.errors import ModelError

log = logging.getLogger(__name__)

CHOICES = ("auto", "cpu", "cuda")
PATTERN = r"auto|cpu|cuda(:[0-9]+)?"  # for config validation: cuda:N picks the Nth GPU
_said: set[str] = set()  # fallback lines already logged: one per reason, not one per model


def choose_device(choice: str, gpus: int) -> str:
    """'cpu' or 'cuda:N' for `choice`, given how many CUDA GPUs torch sees; ModelError when `choice` cannot be met."""
    if not re.fullmatch(PATTERN, choice):
        raise ModelError(f"device {choice!r}: expected auto, cpu, cuda or cuda:N")
    if choice == "cpu" or (choice == "auto" and gpus == 0):
        return "cpu"
    index = device_index(choice)
    if gpus == 0:
        raise ModelError(f"device {choice}: torch sees no CUDA GPU here (torch.cuda.is_available() is false); "
                         "use auto or cpu, or install a CUDA build of PyTorch")
    if index >= gpus:
        raise ModelError(f"device {choice}: torch sees {gpus} CUDA GPU(s), numbered 0 to {gpus - 1}")
    return f"cuda:{index}"


def device_index(choice: str) -> int:
    """The GPU number in `cuda:N` (0 for cuda and auto)."""
    return int(choice.partition(":")[2] or 0)


def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def torch_device(choice: str, what: str = "PyTorch") -> torch.device:
    """The torch device for `choice`; `auto` without a GPU logs one line (once per process) and returns the CPU."""
    device = torch.device(choose_device(choice, gpu_count()))
    if device.type == "cuda":
        log.info("%s runs on %s (%s)", what, device, torch.cuda.get_device_name(device))
    elif choice == "auto" and "auto" not in _said:
        _said.add("auto")
        log.info("device auto: torch sees no CUDA GPU here, so PyTorch models (%s first) run on the CPU", what)
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when `precision` is fp16 (or int8, which PyTorch runs as fp16); else nothing."""
    if device.type == "cuda" and precision in ("fp16", "int8"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
