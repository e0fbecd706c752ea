"""PyTorch eager: the reference backend, and the stop-gap where ONNX export is not possible.

Runs our own checkpoints (`.pt`, see models.torch_io); given `X.onnx` it uses
`X.pt` beside it. `options.device` says where (models.device: auto, cpu, cuda,
cuda:N); precision fp16 (or int8, which PyTorch has no kernels for here) is
float16 autocast on CUDA, where convolutions and matrix products run in float16
and normalisations and reductions stay in float32; on the CPU it is fp32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.backends import BackendOptions, TensorSpec
from models.errors import BackendUnavailable
from models.torch_device import autocast, torch_device
from models.torch_io import load_checkpoint


class TorchBackend:
    name = "torch"

    def __init__(self, path: Path, options: BackendOptions = BackendOptions()):
        if path.suffix != ".pt":
            sibling = path.with_suffix(".pt")
            if not sibling.is_file():
                raise BackendUnavailable(f"the torch backend needs PyTorch weights: no {sibling.name} beside {path.name}")
            path = sibling
        self.device = torch_device(options.device, f"the torch backend ({path.name})")
        if options.threads:
            torch.set_num_threads(options.threads)
        self.path, self.precision = path, options.precision
        model, self.metadata = load_checkpoint(path)
        self.model = model.to(self.device)
        size = int(self.metadata.get("input_size", 0)) or None
        self.inputs = [TensorSpec("images", ("batch", 3, size, size), "float32")]
        self.outputs = [TensorSpec(self.metadata.get("output_name", "output0"), (), "float32")]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = torch.from_numpy(np.ascontiguousarray(feed["images"], dtype=np.float32)).to(self.device, non_blocking=True)
        with torch.inference_mode(), autocast(self.device, self.precision):
            out = self.model(images)
        return {self.outputs[0].name: out.float().cpu().numpy()}
