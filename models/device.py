"""The device rule: `auto` (a CUDA GPU when there is one, else the CPU), `cpu`, `cuda` or `cuda:N`.

Pure, and free of PyTorch on purpose: the ONNX Runtime and TensorRT backends use it on devices that have no
torch installed (the daemon's run-time path). models/torch_device.py applies it to PyTorch.
`cuda` without a GPU is a ModelError when the model is opened, not a crash at the first frame.
"""

from __future__ import annotations

import re

from models.errors import ModelError

CHOICES = ("auto", "cpu", "cuda")
PATTERN = r"auto|cpu|cuda(:[0-9]+)?"  # for config validation: cuda:N picks the Nth GPU


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
