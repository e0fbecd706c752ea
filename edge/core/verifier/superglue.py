"""SuperPoint + SuperGlue, written from the published architectures (DeTone et al. 2018; Sarlin et al. 2020).

Module names follow the official weight files, so `superpoint_v1.pth` and
`superglue_indoor.pth` / `superglue_outdoor.pth` load as-is. Those weights are
licensed for non-commercial research only: ShelfID never ships them; the user
puts them in the folder named by `verifier.weights`. Tests here use random
weights (shapes, loading, matching an image with itself). PyTorch backend, on
`verifier.device` (models.device); `verifier.precision` fp16 autocasts SuperPoint
on a GPU, while SuperGlue stays in float32 (100 Sinkhorn iterations in log space
are where float16 would lose matches).
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge.core.config import VerifierConfig
from edge.core.errors import ShelfIDError
from edge.core.images import resize_longest
from edge.core.verifier import Features, Match
from edge.core.verifier.geometry import verify_geometry
from models.torch_device import autocast, torch_device

default_conf = {
    "descriptor_dim": 256, "nms_radius": 4, "keypoint_threshold": 0.005, "remove_borders": 4,
    "keypoint_encoder": [32, 64, 128, 256], "gnn_layers": ["self", "cross"] * 9, "sinkhorn_iterations": 100,
    "match_threshold": 0.2, "superglue_weights": "outdoor",
}


def simple_nms(scores: torch.Tensor, radius: int) -> torch.Tensor:
    """Non-maximum suppression of a score map [B x H x W], two refinement rounds as published."""
    def pool(x):
        return F.max_pool2d(x, kernel_size=radius * 2 + 1, stride=1, padding=radius)

    zeros = torch.zeros_like(scores)
    max_mask = scores == pool(scores)
    for _ in range(2):
        supp_mask = pool(max_mask.float()) > 0
        supp_scores = torch.where(supp_mask, zeros, scores)
        max_mask = max_mask | ((supp_scores == pool(supp_scores)) & ~supp_mask)
    return torch.where(max_mask, scores, zeros)


class SuperPoint(nn.Module):
    """image [1 x 1 x H x W] gray 0–1 → keypoints [N x 2] (x, y), scores [N], descriptors [N x 256]."""

    def __init__(self, conf: dict | None = None):
        super().__init__()
        self.conf = {**default_conf, **(conf or {})}
        c1, c2, c3, c4, c5 = 64, 64, 128, 128, 256
        self.conv1a, self.conv1b = nn.Conv2d(1, c1, 3, 1, 1), nn.Conv2d(c1, c1, 3, 1, 1)
        self.conv2a, self.conv2b = nn.Conv2d(c1, c2, 3, 1, 1), nn.Conv2d(c2, c2, 3, 1, 1)
        self.conv3a, self.conv3b = nn.Conv2d(c2, c3, 3, 1, 1), nn.Conv2d(c3, c3, 3, 1, 1)
        self.conv4a, self.conv4b = nn.Conv2d(c3, c4, 3, 1, 1), nn.Conv2d(c4, c4, 3, 1, 1)
        self.convPa, self.convPb = nn.Conv2d(c4, c5, 3, 1, 1), nn.Conv2d(c5, 65, 1, 1, 0)
        self.convDa, self.convDb = nn.Conv2d(c4, c5, 3, 1, 1), nn.Conv2d(c5, self.conf["descriptor_dim"], 1, 1, 0)

    def forward(self, image: torch.Tensor, max_keypoints: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = image
        for a, b in ((self.conv1a, self.conv1b), (self.conv2a, self.conv2b), (self.conv3a, self.conv3b)):
            x = F.max_pool2d(F.relu(b(F.relu(a(x)))), 2, 2)
        x = F.relu(self.conv4b(F.relu(self.conv4a(x))))
        scores = F.softmax(self.convPb(F.relu(self.convPa(x))), 1)[:, :-1]
        b, _, h, w = scores.shape
        scores = scores.permute(0, 2, 3, 1).reshape(b, h, w, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h * 8, w * 8)
        scores = simple_nms(scores, self.conf["nms_radius"])[0]
        border = self.conf["remove_borders"]
        scores[:border], scores[-border:], scores[:, :border], scores[:, -border:] = 0, 0, 0, 0
        ys, xs = torch.nonzero(scores > self.conf["keypoint_threshold"], as_tuple=True)
        kp_scores = scores[ys, xs]
        if len(kp_scores) > max_keypoints:
            kp_scores, top = kp_scores.topk(max_keypoints)
            ys, xs = ys[top], xs[top]
        keypoints = torch.stack((xs, ys), 1).float()
        descriptors = F.normalize(self.convDb(F.relu(self.convDa(x))), p=2, dim=1)
        return keypoints, kp_scores, self.sample_descriptors(keypoints, descriptors, 8)

    @staticmethod
    def sample_descriptors(keypoints: torch.Tensor, descriptors: torch.Tensor, s: int) -> torch.Tensor:
        _, c, h, w = descriptors.shape
        kp = keypoints - s / 2 + 0.5
        kp = kp / kp.new_tensor([w * s - s / 2 - 0.5, h * s - s / 2 - 0.5]) * 2 - 1
        sampled = F.grid_sample(descriptors, kp.view(1, 1, -1, 2), mode="bilinear", align_corners=True)
        return F.normalize(sampled.reshape(c, -1), p=2, dim=0).t()


def mlp(channels: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(1, len(channels)):
        layers.append(nn.Conv1d(channels[i - 1], channels[i], kernel_size=1, bias=True))
        if i < len(channels) - 1:
            layers += [nn.BatchNorm1d(channels[i]), nn.ReLU()]
    return nn.Sequential(*layers)


class KeypointEncoder(nn.Module):
    def __init__(self, dim: int, layers: list[int]):
        super().__init__()
        self.encoder = mlp([3, *layers, dim])
        nn.init.constant_(self.encoder[-1].bias, 0.0)

    def forward(self, kpts: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.encoder(torch.cat([kpts.transpose(1, 2), scores.unsqueeze(1)], dim=1))


class MultiHeadedAttention(nn.Module):
    def __init__(self, num_heads: int, d_model: int):
        super().__init__()
        self.dim, self.num_heads = d_model // num_heads, num_heads
        self.merge = nn.Conv1d(d_model, d_model, kernel_size=1)
        self.proj = nn.ModuleList([deepcopy(self.merge) for _ in range(3)])

    def forward(self, query, key, value):
        b = query.size(0)
        q, k, v = [layer(x).view(b, self.dim, self.num_heads, -1) for layer, x in zip(self.proj, (query, key, value))]
        prob = torch.softmax(torch.einsum("bdhn,bdhm->bhnm", q, k) / self.dim**0.5, dim=-1)
        x = torch.einsum("bhnm,bdhm->bdhn", prob, v)
        return self.merge(x.contiguous().view(b, self.dim * self.num_heads, -1))


class AttentionalPropagation(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.attn = MultiHeadedAttention(num_heads, dim)
        self.mlp = mlp([dim * 2, dim * 2, dim])
        nn.init.constant_(self.mlp[-1].bias, 0.0)

    def forward(self, x, source):
        return self.mlp(torch.cat([x, self.attn(x, source, source)], dim=1))


class AttentionalGNN(nn.Module):
    def __init__(self, dim: int, names: list[str]):
        super().__init__()
        self.layers = nn.ModuleList([AttentionalPropagation(dim, 4) for _ in names])
        self.names = names

    def forward(self, desc0, desc1):
        for layer, name in zip(self.layers, self.names):
            src0, src1 = (desc1, desc0) if name == "cross" else (desc0, desc1)
            desc0, desc1 = desc0 + layer(desc0, src0), desc1 + layer(desc1, src1)
        return desc0, desc1


def log_optimal_transport(scores: torch.Tensor, alpha: torch.Tensor, iters: int) -> torch.Tensor:
    """Sinkhorn in log space with a dustbin row and column."""
    b, m, n = scores.shape
    one = scores.new_tensor(1)
    ms, ns = m * one, n * one
    couplings = torch.cat([torch.cat([scores, alpha.expand(b, m, 1)], -1),
                           torch.cat([alpha.expand(b, 1, n), alpha.expand(b, 1, 1)], -1)], 1)
    norm = -(ms + ns).log()
    log_mu = torch.cat([norm.expand(m), ns.log()[None] + norm])[None].expand(b, -1)
    log_nu = torch.cat([norm.expand(n), ms.log()[None] + norm])[None].expand(b, -1)
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iters):
        u = log_mu - torch.logsumexp(couplings + v.unsqueeze(1), dim=2)
        v = log_nu - torch.logsumexp(couplings + u.unsqueeze(2), dim=1)
    return couplings + u.unsqueeze(2) + v.unsqueeze(1) - norm


def normalize_keypoints(kpts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    size_t = kpts.new_tensor(size)[None]
    return (kpts - size_t / 2) / (size_t.max() * 0.7)


class SuperGlue(nn.Module):
    """keypoints [M x 2], scores [M], descriptors [M x D] per image → index pairs of mutual matches [K x 2]."""

    def __init__(self, conf: dict | None = None):
        super().__init__()
        self.conf = {**default_conf, **(conf or {})}
        dim = self.conf["descriptor_dim"]
        self.kenc = KeypointEncoder(dim, self.conf["keypoint_encoder"])
        self.gnn = AttentionalGNN(dim, self.conf["gnn_layers"])
        self.final_proj = nn.Conv1d(dim, dim, kernel_size=1, bias=True)
        self.register_parameter("bin_score", nn.Parameter(torch.tensor(1.0)))

    def forward(self, f0: Features, f1: Features) -> np.ndarray:
        if len(f0.keypoints) == 0 or len(f1.keypoints) == 0:
            return np.zeros((0, 2), np.int64)
        dim, device = self.conf["descriptor_dim"], self.bin_score.device

        def encode(f: Features) -> torch.Tensor:
            kpts = torch.from_numpy(np.asarray(f.keypoints, np.float32))[None].to(device)
            scores = torch.from_numpy(np.asarray(f.scores if f.scores is not None else np.ones(len(f.keypoints)), np.float32))[None].to(device)
            desc = torch.from_numpy(np.asarray(f.descriptors, np.float32)).t()[None].to(device)
            return desc + self.kenc(normalize_keypoints(kpts, f.image_size), scores)

        desc0, desc1 = self.gnn(encode(f0), encode(f1))
        scores = torch.einsum("bdn,bdm->bnm", self.final_proj(desc0), self.final_proj(desc1)) / dim**0.5
        scores = log_optimal_transport(scores, self.bin_score, self.conf["sinkhorn_iterations"])[0, :-1, :-1]
        max0, max1 = scores.max(1), scores.max(0)
        mutual = torch.arange(len(max0.indices), device=device) == max1.indices[max0.indices]
        valid = mutual & (max0.values.exp() > self.conf["match_threshold"])
        idx0 = torch.nonzero(valid, as_tuple=True)[0]
        return torch.stack((idx0, max0.indices[idx0]), 1).cpu().numpy()


class SuperGlueVerifier:
    descriptor_dim = 256

    def __init__(self, config: VerifierConfig, conf: dict | None = None):
        self.config = config
        self.conf = {**default_conf, **(conf or {})}
        folder = Path(config.weights).expanduser() if config.weights else None
        self.device = torch_device(config.device, "verifier superpoint-superglue")
        self.superpoint, self.superglue = SuperPoint(self.conf).eval(), SuperGlue(self.conf).eval()
        files = {"superpoint": folder / "superpoint_v1.pth" if folder else None,
                 "superglue": folder / f"superglue_{self.conf['superglue_weights']}.pth" if folder else None}
        for name, path in files.items():
            if path is None:
                continue
            if not path.is_file():
                raise ShelfIDError(f"{path}: missing; SuperPoint/SuperGlue weights are supplied by the user "
                                   "(non-commercial licence), see the README")
            try:
                getattr(self, name).load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except (RuntimeError, OSError) as exc:
                raise ShelfIDError(f"{path}: not {name} weights: {str(exc)[:200]}") from None
        self.superpoint.to(self.device), self.superglue.to(self.device)
        self.id = f"superpoint-superglue-{self.conf['superglue_weights']}-n{config.max_keypoints}-s{config.input_size}"

    def features(self, image_bgr: np.ndarray) -> Features:
        image = resize_longest(image_bgr, self.config.input_size)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
        h, w = gray.shape
        with torch.inference_mode(), autocast(self.device, self.config.precision):
            kpts, scores, desc = self.superpoint(torch.from_numpy(gray)[None, None].to(self.device), self.config.max_keypoints)
        return Features(*(t.float().cpu().numpy() for t in (kpts, desc)), (w, h), scores.float().cpu().numpy())

    def match(self, query: Features, reference: Features) -> Match:
        with torch.inference_mode():
            pairs = self.superglue(query, reference)
        if len(pairs) == 0:
            return Match.none()
        return verify_geometry(query.keypoints[pairs[:, 0]], reference.keypoints[pairs[:, 1]], reference.image_size,
                               self.config.ransac_threshold_px)
