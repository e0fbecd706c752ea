"""Crops → L2-normalised embeddings on any backend, batched."""

from __future__ import annotations

import cv2
import numpy as np

from models.backends import Backend
from models.errors import ModelError


def crops_to_batch(crops_bgr: list[np.ndarray], size: int) -> np.ndarray:
    """Crops (BGR uint8, any size) → [N x 3 x size x size] RGB float in 0–1."""
    resized = [cv2.cvtColor(cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB) for c in crops_bgr]
    return np.stack(resized).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


class Embedder:
    def __init__(self, backend: Backend, max_batch: int = 32):
        self.backend, self.max_batch = backend, max_batch
        meta = backend.metadata
        if meta.get("kind", "embedder") != "embedder":
            raise ModelError(f"{backend.path}: model kind is {meta.get('kind')!r}, expected an embedder")
        self.input_name, self.output_name = backend.inputs[0].name, backend.outputs[0].name
        self.input_size = int(meta.get("input_size") or backend.inputs[0].shape[2])
        self.dim = int(meta.get("embedding_dim") or backend.outputs[0].shape[-1])
        self.model_id = meta.get("model_id", "unknown")
        fixed_batch = backend.inputs[0].shape[0]
        self.fixed_batch = fixed_batch if isinstance(fixed_batch, int) else None

    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """[N x dim] float32, one row per crop."""
        if not crops_bgr:
            return np.zeros((0, self.dim), dtype=np.float32)
        step = self.fixed_batch or self.max_batch
        out = [self.backend.run({self.input_name: crops_to_batch(crops_bgr[i:i + step], self.input_size)})[self.output_name]
               for i in range(0, len(crops_bgr), step)]
        return np.concatenate(out).astype(np.float32)
