#!/usr/bin/env python3
"""Train the design's ResNet34 embedder by distillation from the bundled EfficientNet-Lite0 embedder.

    python -m tools.distill_embedder --data ../shared/data/grocery --out /tmp/resnet34-embedder.onnx --steps 2000

No pretrained ResNet34 weights can be had here, and from scratch on product
labels alone it learns nothing useful on a CPU budget (README, Accuracy). The
teacher gives every view a 512-d target instead of one label, so any image
teaches: each step draws fresh shelf-camera-like views of the train photos and
the iconic images (models/augment.py), the teacher (ONNX Runtime) embeds each
at its input size, and the student learns to point the same way (cosine) and
to keep the batch's pairwise similarities (relational term). Views come from
a generator seeded per step, so --seed reproduces a run and --resume continues
one exactly. Stops after --steps (or earlier, fitted to --minutes); evaluates
val recall@1/5 (iconic catalog, photo centres) every --eval-every steps and at
the end; exports ONNX and float16 .pt like tools/train_embedder.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from edge.core.images import centre_crop, read_image
from models.augment import catalog_view, photo_view
from models.export import export_onnx
from models.metadata import weights_sha256
from models.resnet import ResNet34Embedder
from models.runtime import BUNDLED_EMBEDDER
from models.torch_io import save_checkpoint
from models.training_device import CHOICES, training_device
from tools.train_embedder import _square, read_iconic, read_split, to_tensor, val_recall

LICENCE = ("Apache-2.0 (ResNet34 trained from scratch by distillation from the bundled EfficientNet-Lite0 embedder, "
           "Apache-2.0, on views of the Grocery Store Dataset train split, MIT)")


class Teacher:
    """The teacher embedder through ONNX Runtime (its own input size)."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.size = int(self.session.get_inputs()[0].shape[2])

    def __call__(self, views: list[np.ndarray]) -> torch.Tensor:
        x = to_tensor([_square(v, self.size) for v in views]).numpy()
        return torch.from_numpy(self.session.run(None, {"images": x})[0])


def draw_views(photos: list[np.ndarray], iconic: list[np.ndarray], backgrounds: list[np.ndarray], n: int, size: int,
               iconic_share: float, rng: np.random.Generator) -> list[np.ndarray]:
    """n fresh views: store photos lightly varied, or catalog images made to look like shelf crops."""
    views = []
    for _ in range(n):
        if rng.random() < iconic_share:
            image = iconic[rng.integers(len(iconic))]
            views.append(catalog_view(image, backgrounds[rng.integers(len(backgrounds))], rng, size))
        else:
            views.append(photo_view(photos[rng.integers(len(photos))], rng, size))
    return views


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, relation_weight: float) -> torch.Tensor:
    """1 − cosine to the teacher's embedding, plus the batch's pairwise similarities kept (both L2-normalised)."""
    direction = (1 - (student * teacher).sum(1)).mean()
    relation = F.mse_loss(student @ student.T, teacher @ teacher.T)
    return direction + relation_weight * relation


def load_images(paths: list[Path], desc: str, longest: int = 512) -> list[np.ndarray]:
    """Decoded once and kept small: views are cut from these every step."""
    import cv2

    out = []
    for path in tqdm(paths, desc=desc, unit="img"):
        image = read_image(path)
        scale = longest / max(image.shape[:2])
        out.append(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image)
    return out


def evaluate(model: ResNet34Embedder, cat_in: torch.Tensor, cat_labels: np.ndarray, val_in: torch.Tensor, val_labels: np.ndarray,
             packaged: np.ndarray) -> dict:
    device = next(model.parameters()).device
    return val_recall(model, cat_in, cat_labels, val_in, val_labels, packaged, lambda x: model(x.to(device).float()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset root (train.txt, val.txt, classes.csv)")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write (its .pt is written beside it)")
    parser.add_argument("--teacher", type=Path, default=BUNDLED_EMBEDDER, help="teacher embedder (ONNX)")
    parser.add_argument("--size", type=int, default=128, help="student input size")
    parser.add_argument("--steps", type=int, default=2000, help="optimiser steps (the schedule's length)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="wall-clock budget: the schedule is shortened to what fits (0: none; a run is then exactly reproducible)")
    parser.add_argument("--batch", type=int, default=48, help="views per step")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW, cosine after a warm-up)")
    parser.add_argument("--warmup", type=int, default=100, help="steps of linear learning-rate warm-up")
    parser.add_argument("--relation-weight", type=float, default=1.0, help="weight of the pairwise-similarity term")
    parser.add_argument("--iconic-share", type=float, default=0.3, help="share of views cut from catalog images")
    parser.add_argument("--eval-every", type=int, default=200, help="steps between val evaluations")
    parser.add_argument("--seed", type=int, default=0, help="seed for initialisation and views")
    parser.add_argument("--device", choices=CHOICES, default="auto",
                        help="the student's device: auto (CUDA when torch sees a GPU; not run here) or cpu; the teacher runs on ONNX Runtime's CPU")
    parser.add_argument("--work", type=Path, default=Path("distill-out"), help="checkpoint and history")
    parser.add_argument("--resume", action="store_true", help="continue from WORK/last.pt")
    args = parser.parse_args()
    started = time.time()

    for name in ("train.txt", "val.txt", "classes.csv"):
        if not (args.data / name).is_file():
            print(f"error: {args.data / name} missing: --data must be a Grocery Store Dataset root", file=sys.stderr)
            return 2
    torch.manual_seed(args.seed)
    device = training_device(args.device)
    teacher = Teacher(args.teacher)
    photo_paths, _ = read_split(args.data, "train")
    iconic_paths, iconic_labels, packaged = read_iconic(args.data)
    val_paths, val_labels = read_split(args.data, "val")
    photos = load_images(photo_paths, "train photos")
    iconic = [read_image(p) for p in iconic_paths]
    backgrounds = photos[:: max(1, len(photos) // 200)]
    cat_in = to_tensor([_square(i, args.size) for i in iconic]).half()
    val_in = to_tensor([_square(centre_crop(read_image(p), 0.7), args.size) for p in tqdm(val_paths, desc="val photos")]).half()

    model = ResNet34Embedder(512, args.size).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warmup = args.warmup
    # the cosine runs over the expected number of steps: --steps, or what --minutes allows at the measured pace
    step, history, horizon = 0, [], args.steps
    args.work.mkdir(parents=True, exist_ok=True)
    last = args.work / "last.pt"
    if args.resume and last.is_file():
        state = torch.load(last, weights_only=False, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, history, horizon = state["step"], state["history"], state["horizon"]
        print(f"resumed from {last} at step {step}")

    bar = tqdm(total=horizon, initial=step, desc="distil", unit="step")
    pace_from, pace_step = time.time(), step
    while step < horizon:
        rng = np.random.default_rng([args.seed, step])
        views = draw_views(photos, iconic, backgrounds, args.batch, teacher.size, args.iconic_share, rng)
        target = teacher(views).to(device)
        lr = args.lr * min(1.0, (step + 1) / max(warmup, 1)) * 0.5 * (1 + np.cos(np.pi * min(step / horizon, 1.0)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        loss = distill_loss(model(to_tensor([_square(v, args.size) for v in views]).to(device)), target, args.relation_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
        if step == pace_step + 20 and args.minutes:  # fit the schedule to the time budget once the pace is known
            per_step = (time.time() - pace_from) / 20
            left = args.minutes * 60 - (time.time() - started)
            horizon = min(args.steps, step + max(1, int(left / per_step)))
            bar.total = horizon
        if step % args.eval_every == 0 or step == horizon:
            model.eval()
            history.append({"step": step, "loss": float(loss), "minutes": round((time.time() - started) / 60, 1),
                            **evaluate(model, cat_in, iconic_labels, val_in, val_labels, np.array(packaged))})
            h = history[-1]
            tqdm.write(f"step {step}: loss {h['loss']:.3f}  val recall@1/5 all {h['val_all']['r1']:.3f}/{h['val_all']['r5']:.3f}"
                       f"  packaged {h['val_packaged']['r1']:.3f}/{h['val_packaged']['r5']:.3f}")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "history": history,
                        "horizon": horizon, "args": {k: str(v) for k, v in vars(args).items()}}, last)
    bar.close()

    model = model.cpu().eval()
    with torch.no_grad():  # rounded to float16 once, so the shipped .pt and the ONNX agree exactly
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    note = (f"tools/distill_embedder.py --size {args.size} --steps {step} --batch {args.batch} --lr {args.lr} --warmup {args.warmup} "
            f"--relation-weight {args.relation_weight} --iconic-share {args.iconic_share} --seed {args.seed} "
            f"(teacher {args.teacher.name})")
    metadata = {"kind": "embedder", "arch": "resnet34", "model_id": weights_sha256(model.state_dict()), "input_size": args.size,
                "embedding_dim": 512, "licence": LICENCE, "source": note, "output_name": "embedding", "input": "images: [B,3,S,S] RGB 0-1"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, args.out, args.size, "embedding", metadata, dynamic_batch=True)
    save_checkpoint(args.out.with_suffix(".pt"), model, "resnet34-embedder", {"embedding_dim": 512, "input_size": args.size},
                    {k: str(v) for k, v in metadata.items()}, half=True)
    (args.work / "history.json").write_text(json.dumps(history, indent=1))
    h = history[-1]
    print(f"wrote {args.out} ({args.out.stat().st_size >> 20} MB) after {step} steps in {(time.time() - started) / 60:.1f} min; "
          f"val recall@1 packaged {h['val_packaged']['r1']:.3f}, all {h['val_all']['r1']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
