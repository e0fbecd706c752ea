"""Training the product detector: the loss, the synthetic scenes, the start from COCO, resuming, the export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.detector_training import product_detector, scene_batch
from models.shelf_scenes import Sources, Sprite, _Canvas, compose_scene, cut_out_white, package_sprite
from models.torch_io import load_checkpoint
from models.yolo_loss import YoloLoss, ciou
from models.yolov5 import YOLOv5, yolov5_yaml
from tests.conftest import needs_upstream_yolov5

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests" / "data" / "grocery-mini"


@pytest.fixture(scope="module")
def sources() -> Sources:
    packshots = sorted((MINI / "iconic-images-and-descriptions").rglob("*.jpg"))
    photos = [cv2.resize(cv2.imread(str(p)), (128, 128)) for p in sorted((MINI / "val").rglob("*.jpg"))]
    return Sources([c for c in (cut_out_white(cv2.imread(str(p))) for p in packshots) if c is not None], photos)


def test_ciou_is_one_for_the_same_box_and_lower_for_a_shifted_one():
    box = torch.tensor([[10.0, 10.0, 4.0, 8.0]])
    assert ciou(box, box).item() == pytest.approx(1.0, abs=1e-5)
    assert ciou(box, box + torch.tensor([[3.0, 0, 0, 0]])).item() < 0.5


def test_a_target_is_assigned_to_its_cell_and_the_two_nearest_neighbours():
    model = YOLOv5(yolov5_yaml("n", 1)).train()
    loss = YoloLoss(model.model[-1], 64)
    preds = model(torch.zeros(1, 3, 64, 64))
    # one 16×16 px box centred at (21, 27) px: at stride 8 the cell (2, 3), right of centre in x, above in y
    target = torch.tensor([[0, 0, 21 / 64, 27 / 64, 16 / 64, 16 / 64]])
    b, a, gj, gi, tbox, anchors, cls = loss.build_targets(preds, target)[0]
    cells = set(zip(gi.tolist(), gj.tolist()))
    assert cells == {(2, 3), (3, 3), (2, 2)}
    assert (tbox[:, 2:] == 2).all()  # 16 px is 2 cells at stride 8


def test_the_loss_falls_when_one_batch_is_learned():
    torch.manual_seed(0)
    model = YOLOv5(yolov5_yaml("n", 1)).train()
    loss_fn = YoloLoss(model.model[-1], 64)
    images = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([[0, 0, 0.5, 0.5, 0.4, 0.6], [1, 0, 0.3, 0.3, 0.2, 0.2]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        loss, _ = loss_fn(model(images), targets)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_a_packshot_on_white_is_cut_out_to_the_product():
    image = np.full((100, 80, 3), 255, np.uint8)
    cv2.rectangle(image, (20, 10), (59, 89), (30, 60, 200), -1)
    cv2.rectangle(image, (30, 40), (49, 59), (255, 255, 255), -1)  # white print inside the pack stays product
    sprite = cut_out_white(image)
    assert sprite.mask.shape == (80, 40) and sprite.mask.all()
    assert cut_out_white(np.full((50, 50, 3), 255, np.uint8)) is None


def test_a_product_hidden_behind_another_is_not_labelled():
    canvas = _Canvas(np.zeros((100, 100, 3), np.uint8))
    block = Sprite(np.full((40, 40, 3), 200, np.uint8), np.ones((40, 40), np.uint8))
    canvas.paste(block, 10, 10)
    canvas.paste(block, 15, 15)  # covers all but a 5 px L of the first
    canvas.paste(block, 60, 60)
    boxes = canvas.boxes()
    assert boxes.tolist() == [[15, 15, 55, 55], [60, 60, 100, 100]]


def test_scenes_are_reproducible_and_their_boxes_lie_inside(sources):
    a_image, a_boxes = compose_scene(np.random.default_rng([3, 7]), sources, 160)
    b_image, b_boxes = compose_scene(np.random.default_rng([3, 7]), sources, 160)
    assert np.array_equal(a_image, b_image) and np.array_equal(a_boxes, b_boxes)
    for seed in range(20):
        image, boxes = compose_scene(np.random.default_rng(seed), sources, 160)
        h, w = image.shape[:2]
        assert max(h, w) == 160
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_package_sprites_have_a_product_shaped_mask(sources):
    for seed in range(12):
        sprite = package_sprite(np.random.default_rng(seed), sources.cutouts, height=120)
        assert sprite.rgb.shape[:2] == sprite.mask.shape and sprite.mask.shape[0] == 120
        assert 0.5 < sprite.mask.mean() <= 1.0


def test_batches_are_letterboxed_with_targets_normalised(sources):
    images, targets = scene_batch(sources, seed=1, step=0, batch=4, imgsz=96)
    assert images.shape == (4, 3, 96, 96) and 0 <= images.min() and images.max() <= 1
    assert targets.shape[1] == 6 and set(targets[:, 0].long().tolist()) <= {0, 1, 2, 3}
    assert ((targets[:, 2:] > 0) & (targets[:, 2:] <= 1)).all()
    again, targets_again = scene_batch(sources, seed=1, step=0, batch=4, imgsz=96)
    assert torch.equal(images, again) and torch.equal(targets, targets_again)


@needs_upstream_yolov5
def test_the_coco_start_keeps_every_weight_that_fits_and_the_box_rows_of_the_head():
    from models.checkpoint import load_yolov5_checkpoint
    from tests.conftest import YOLOV5N_PT

    model = product_detector("coco", YOLOV5N_PT)
    coco = load_yolov5_checkpoint(YOLOV5N_PT).state_dict
    state = model.state_dict()
    assert torch.equal(state["model.0.conv.weight"], coco["model.0.conv.weight"])
    head = state["model.24.m.0.weight"].view(3, 6, -1)
    assert torch.equal(head[:, :5], coco["model.24.m.0.weight"].view(3, 85, -1)[:, :5])
    assert (head[:, 5] == 0).all()  # one class: the class score is pinned, objectness decides


def _train(out: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "tools.train_detector", "--data", str(MINI), "--photo-split", "val",
           "--init", "scratch", "--out", str(out), "--steps", "4", "--batch", "2", "--imgsz", "64", "--max-imgsz", "64", "--warmup", "2",
           "--save-every", "1", "--export-sizes", "64,96", "--threads", "1", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def unbroken_run(tmp_path_factory) -> tuple[dict, Path]:
    """One short training run start to end (its report and checkpoint), shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("unbroken") / "det.pt"
    return _train(out), out


def test_training_resumed_from_its_checkpoint_ends_where_an_unbroken_run_ends(tmp_path, unbroken_run):
    straight, straight_pt = unbroken_run
    _train(tmp_path / "b" / "det.pt", "--stop-after", "2")
    resumed = _train(tmp_path / "b" / "det.pt")
    assert resumed["resumed_at"] == 2 and straight["resumed_at"] == 0
    a, _ = load_checkpoint(straight_pt)
    b, meta = load_checkpoint(tmp_path / "b" / "det.pt")
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), key
    assert meta["licence"].startswith("Apache-2.0") and meta["names"] == '["product"]'


def test_the_onnx_export_and_the_pytorch_model_agree_at_both_sizes(unbroken_run):
    report, checkpoint = unbroken_run
    model, _ = load_checkpoint(checkpoint)
    frame = cv2.imread(str(REPO / "samples" / "shelf" / sorted(p.name for p in (REPO / "samples" / "shelf").glob("*.jpg"))[0]))
    for path, size in zip(report["onnx"], (64, 96)):
        blob = cv2.resize(frame, (size, size))[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
        with torch.inference_mode():
            expected = model(torch.from_numpy(blob.copy())).numpy()
        got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"images": blob})[0]
        assert got.shape == expected.shape == (1, 3 * ((size // 8) ** 2 + (size // 16) ** 2 + (size // 32) ** 2), 6)
        np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-3)


def test_the_bundled_detector_onnx_is_its_pytorch_weights(bundled_detector_path, shelf_frames):
    """make exports models/weights/product-detector.pt at 320: the ONNX Runtime output is the PyTorch model's."""
    from models.yolo_postprocess import to_blob

    model, meta = load_checkpoint(REPO / "models" / "weights" / "product-detector.pt")
    blob = to_blob(shelf_frames[0], 320)[0]
    with torch.inference_mode():
        expected = model(torch.from_numpy(blob)).numpy()
    got = ort.InferenceSession(str(bundled_detector_path), providers=["CPUExecutionProvider"]).run(None, {"images": blob})[0]
    np.testing.assert_allclose(got, expected, atol=5e-3, rtol=1e-3)
    assert (expected[0, :, 4] > 0.5).sum() >= 6  # it does see the bottles


def test_training_without_the_dataset_says_what_it_needs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tools.train_detector", "--data", str(tmp_path), "--out",
                           str(tmp_path / "det.pt"), "--init", "scratch"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode != 0
    assert f"{tmp_path}: no classes.csv — pass --data the Grocery Store Dataset folder" in done.stderr
    assert not (tmp_path / "det.pt").exists()
