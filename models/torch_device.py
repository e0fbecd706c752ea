"""Where a PyTorch network runs (the torch backend, the learned verifiers, the training tools): the device rule of
models/device.py asked of torch. `auto` without a GPU says so in one log line per process and runs on the CPU.
Mixed precision (`autocast`) is float16 on CUDA only: on the CPU it is plain fp32.
"""

from __future__ import annotations

import contextlib
import logging

import torch

from models.device import choose_device

log = logging.getLogger(__name__)
_said: set[str] = set()  # fallback lines already logged: one per reason, not one per model


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
