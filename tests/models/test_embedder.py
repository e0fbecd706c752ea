"""ResNet34 embedder: shapes, normalisation, metadata and PyTorch ↔ ONNX parity on real images."""

from __future__ import annotations

import numpy as np
import torch

from models.backends import open_backend
from models.embedder import Embedder
from models.metadata import describe_onnx
from models.resnet import ResNet34Embedder


def real_crops(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Crops of varied size and place from the real shelf frames."""
    crops = []
    for frame in frames:
        h, w = frame.shape[:2]
        crops += [frame[: h // 2, : w // 4], frame[h // 3:, w // 2: w // 2 + 150], frame[50:400, 600:900]]
    return crops


def test_resnet34_has_the_published_trunk_size():
    model = ResNet34Embedder()
    trunk = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("head"))
    assert trunk == 21_284_672  # torchvision's resnet34 without its fc layer
    out = model.eval()(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, 512)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_onnx_and_pytorch_agree_on_real_images(small_embedder, shelf_frames):
    crops = real_crops(shelf_frames)
    onnx_emb = Embedder(open_backend(small_embedder, "onnxruntime")).embed(crops)
    torch_emb = Embedder(open_backend(small_embedder, "torch")).embed(crops)
    assert onnx_emb.shape == torch_emb.shape == (len(crops), 512)
    cosine = (onnx_emb * torch_emb).sum(1)
    assert cosine.min() >= 0.9999
    assert np.allclose(np.linalg.norm(onnx_emb, axis=1), 1, atol=1e-4)


def test_batches_are_split_and_rejoined_in_order(small_embedder, shelf_frames):
    embedder = Embedder(open_backend(small_embedder, "onnxruntime"), max_batch=4)
    crops = real_crops(shelf_frames)
    together = embedder.embed(crops)
    one_by_one = np.concatenate([embedder.embed([c]) for c in crops])
    assert np.allclose(together, one_by_one, atol=1e-5)


def test_no_crops_gives_an_empty_well_shaped_result(small_embedder):
    assert Embedder(open_backend(small_embedder, "onnxruntime")).embed([]).shape == (0, 512)


def test_export_carries_metadata(small_embedder):
    info = describe_onnx(small_embedder)
    meta = info["metadata"]
    assert meta["kind"] == "embedder" and meta["embedding_dim"] == "512" and meta["input_size"] == "96"
    assert meta["licence"] == "Apache-2.0" and len(meta["model_id"]) == 64 and "untrained" in meta["source"]
    assert info["inputs"][0]["name"] == "images" and info["inputs"][0]["shape"][0] == "batch"
    assert info["outputs"][0]["name"] == "embedding"
