"""Learned verifiers: ALIKED/DISK + LightGlue with the shipped weight files; SuperPoint + SuperGlue loading."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from edge.core.config import VerifierConfig
from edge.core.errors import ShelfIDError
from edge.core.verifier import Match, open_verifier
from edge.core.verifier.superglue import SuperGlue, SuperPoint
from tests.conftest import REPO
from tests.edge.test_verifier import warp

DATA = REPO / "tests" / "data"


def photo(name: str) -> np.ndarray:
    return cv2.imread(str(DATA / name))


@pytest.mark.parametrize("kind,size", [("aliked-lightglue", 384), ("disk-lightglue", 256)])
def test_lightglue_matches_a_real_photo_to_its_warp_and_not_to_another_product(kind, size):
    verifier = open_verifier(VerifierConfig(kind=kind, max_keypoints=512, input_size=size))
    bottle = cv2.imread(str(REPO / "samples" / "shelf-catalog" / "cha-mate-limao" / "frame0000.jpg"))
    warped, _ = warp(bottle)
    reference = verifier.features(bottle)
    assert reference.descriptors.shape[1] == 128 and len(reference.scores) == len(reference.keypoints)
    same = verifier.match(verifier.features(warped), reference)
    other = verifier.match(verifier.features(photo("queries/matte-leao.jpg")), reference)
    assert same.inliers >= 60 and same.inlier_ratio >= 0.6
    assert other.inliers < same.inliers / 3


def test_superpoint_and_superglue_module_names_follow_the_official_weight_files():
    sp, sg = SuperPoint().state_dict(), SuperGlue().state_dict()
    assert {"conv1a.weight", "conv4b.bias", "convPb.weight", "convDb.bias"} <= set(sp)
    assert {"kenc.encoder.0.weight", "kenc.encoder.1.running_mean", "gnn.layers.17.attn.proj.2.weight",
            "gnn.layers.0.attn.merge.bias", "gnn.layers.0.mlp.3.bias", "final_proj.weight", "bin_score"} <= set(sg)
    assert len([k for k in sg if k.startswith("gnn.layers.") and k.endswith("attn.merge.weight")]) == 18


@pytest.fixture
def superglue_weights(tmp_path):
    """Weight files in the official names, with seeded random values (the real ones are never shipped)."""
    torch.manual_seed(0)
    torch.save(SuperPoint().state_dict(), tmp_path / "superpoint_v1.pth")
    torch.save(SuperGlue().state_dict(), tmp_path / "superglue_outdoor.pth")
    return tmp_path


def test_superpoint_superglue_loads_user_weights_and_runs(superglue_weights):
    verifier = open_verifier(VerifierConfig(kind="superpoint-superglue", weights=superglue_weights, max_keypoints=256, input_size=256))
    features = verifier.features(photo("queries/cha-mate-limao.jpg"))
    assert features.descriptors.shape == (len(features.keypoints), 256) and 0 < len(features.keypoints) <= 256
    assert np.allclose(np.linalg.norm(features.descriptors, axis=1), 1, atol=1e-4)
    w, h = features.image_size
    assert max(w, h) == 256 and (features.keypoints[:, 0] < w).all() and (features.keypoints[:, 1] < h).all()
    assert isinstance(verifier.match(features, features), Match)
    assert verifier.id == "superpoint-superglue-outdoor-n256-s256"


def test_superglue_missing_or_wrong_weights_are_clear_errors(superglue_weights):
    (superglue_weights / "superglue_outdoor.pth").unlink()
    with pytest.raises(ShelfIDError, match="superglue_outdoor.pth: missing; .*supplied by the user"):
        open_verifier(VerifierConfig(kind="superpoint-superglue", weights=superglue_weights))
    torch.save({"unrelated": torch.zeros(1)}, superglue_weights / "superglue_outdoor.pth")
    with pytest.raises(ShelfIDError, match="superglue_outdoor.pth: not superglue weights"):
        open_verifier(VerifierConfig(kind="superpoint-superglue", weights=superglue_weights))
