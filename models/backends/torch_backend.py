"""PyTorch eager: the reference backend, and the stop-gap where ONNX export is not possible.

Runs our own checkpoints (`.pt`, see models.torch_io); given `X.onnx` it uses
`X.pt` beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.backends import BackendOptions, TensorSpec
from models.errors import BackendUnavailable
from models.torch_io import load_checkpoint


class TorchBackend:
    name = "torch"

    def __init__(self, path: Path, options: BackendOptions = BackendOptions()):
        if path.suffix != ".pt":
            sibling = path.with_suffix(".pt")
            if not sibling.is_file():
                raise BackendUnavailable(f"the torch backend needs PyTorch weights: no {sibling.name} beside {path.name}")
            path = sibling
        if options.threads:
            torch.set_num_threads(options.threads)
        self.path = path
        self.model, self.metadata = load_checkpoint(path)
        size = int(self.metadata.get("input_size", 0)) or None
        self.inputs = [TensorSpec("images", ("batch", 3, size, size), "float32")]
        self.outputs = [TensorSpec(self.metadata.get("output_name", "output0"), (), "float32")]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(feed["images"])))
        return {self.outputs[0].name: out.numpy()}
