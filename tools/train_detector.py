#!/usr/bin/env python3
"""Train the class-agnostic product detector (YOLOv5n, one class "product") on synthetic shelf scenes.

    python -m tools.train_detector --data ../shared/data/grocery \\
        --coco-weights ../shared/models/yolov5n-coco.pt --out models/weights/product-detector.pt

The defaults reproduce the bundled detector (seed 0). Scenes are composed on
the fly (models/shelf_scenes.py) from the Grocery iconic packshots (backdrop
removed) and package-shaped sprites with made-up or recoloured prints, over
shelf-like backgrounds (blurred train photos among them); the shelf video is
never used, so it stays a held-out test.
Step k's scenes depend only on (--seed, k): a run resumed from its checkpoint
(--work, every --save-every steps) sees the same data as one that never
stopped. The EMA weights are saved as a float16 checkpoint (--out) and
exported to ONNX at every --export-sizes (one training, e.g. 320 for a 2-core
CPU and 640 for a Jetson).

--init coco starts from the upstream COCO YOLOv5n (GPL-3.0: the result is
GPL-3.0); --init scratch keeps the weights ours (Apache-2.0). The licence goes
into the model's metadata.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from edge.core.images import read_image
from models.detector_training import LICENCE, ModelEMA, detector_metadata, product_detector, scene_batch
from models.errors import ModelError
from models.export import export_detector
from models.shelf_scenes import Sources, cut_out_white
from models.torch_io import save_checkpoint
from models.training_device import training_device
from models.yolo_loss import YoloLoss


def load_sources(data: Path, photo_split: str, max_photos: int, seed: int) -> Sources:
    """Packshot cut-outs of every iconic image and up to `max_photos` store photos (256 px) for blurred backgrounds."""
    for needed in ("classes.csv", f"{photo_split}.txt"):
        if not (data / needed).is_file():
            raise SystemExit(f"{data}: no {needed} — pass --data the Grocery Store Dataset folder (classes.csv, "
                             f"iconic-images-and-descriptions/, {photo_split}.txt)")
    with open(data / "classes.csv", newline="") as f:
        iconic = [data / row[4].lstrip("/") for row in list(csv.reader(f))[1:]]
    cutouts = [c for c in (cut_out_white(read_image(p)) for p in tqdm(iconic, desc="packshots", unit="img", disable=None))
               if c is not None]
    lines = [line.split(",")[0].strip() for line in (data / f"{photo_split}.txt").read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(lines), min(max_photos, len(lines)), replace=False)
    photos = [cv2.resize(read_image(data / lines[i]), (256, 256), interpolation=cv2.INTER_AREA)
              for i in tqdm(sorted(chosen), desc="photos", unit="img", disable=None)]
    return Sources(cutouts, photos)


def step_shape(args: argparse.Namespace, step: int) -> tuple[int, int]:
    """(batch, input size) of one step: fixed, or drawn per step (seeded) for multi-scale training."""
    if not args.max_imgsz or args.max_imgsz <= args.imgsz:
        return args.batch, args.imgsz
    size = 32 * int(np.random.default_rng([args.seed, step, 1 << 20]).integers(args.imgsz // 32, args.max_imgsz // 32 + 1))
    return max(2, round(args.batch * (args.imgsz / size) ** 2)), size


def learning_rate(step: int, steps: int, lr0: float, warmup: int) -> float:
    if step < warmup:
        return lr0 * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return float(lr0 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * progress))))


def optimiser(named_parameters: list, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with decay on convolution weights only (not BatchNorm, not biases), as upstream."""
    decay, no_decay = [], []
    for _name, p in named_parameters:
        (decay if p.ndim > 1 else no_decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                           lr=lr, momentum=0.937, nesterov=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset folder (classes.csv, iconic images, train.txt)")
    p.add_argument("--photo-split", default="train", help="split whose photos texture the sprites and backgrounds")
    p.add_argument("--max-photos", type=int, default=800)
    p.add_argument("--init", choices=["coco", "scratch"], default="coco")
    p.add_argument("--coco-weights", type=Path, help="upstream yolov5n.pt (for --init coco)")
    p.add_argument("--out", type=Path, required=True, help="float16 checkpoint to write; ONNX files beside it")
    p.add_argument("--export-sizes", default="320,640", help="ONNX input sizes to export (multiples of 32)")
    p.add_argument("--work", type=Path, help="folder for the resumable checkpoint (default: beside --out)")
    p.add_argument("--steps", type=int, default=1600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--imgsz", type=int, default=320, help="input size (the smallest when --max-imgsz is larger)")
    p.add_argument("--max-imgsz", type=int, default=640, help="multi-scale: each step's input size is drawn from the "
                   "multiples of 32 in [--imgsz, --max-imgsz], with the batch shrunk to keep the pixels per step (one training for a "
                   "320 CPU model and a 640 Jetson model)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 0.01 from scratch, 0.005 from COCO)")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--freeze", type=int, help="keep the first N layers as initialised (10: the whole backbone), so a "
                   "COCO start keeps its features of real photos while the head learns products (default: 10 from "
                   "COCO, 0 from scratch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop-after", type=int, help="stop (resumably) after this step, e.g. to train in time-boxed parts")
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: a CUDA GPU when torch sees one, else the CPU")
    args = p.parse_args(argv)

    if args.freeze is None:
        args.freeze = 10 if args.init == "coco" else 0
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = training_device(args.device)
    except ModelError as exc:
        raise SystemExit(str(exc)) from None
    lr0 = args.lr or (0.005 if args.init == "coco" else 0.01)
    sources = load_sources(args.data, args.photo_split, args.max_photos, args.seed)
    work = args.work or args.out.parent / f".{args.out.stem}-work"
    work.mkdir(parents=True, exist_ok=True)
    model = product_detector(args.init, args.coco_weights).to(device).train()
    for layer in list(model.model)[:args.freeze]:
        layer.eval()  # BatchNorm statistics frozen too
        for param in layer.parameters():
            param.requires_grad_(False)
    ema = ModelEMA(model, tau=min(2000, max(1, args.steps // 4)))
    opt = optimiser([p for p in model.named_parameters() if p[1].requires_grad], lr0, 5e-4)
    loss_fn = YoloLoss(model.model[-1], args.imgsz)
    state_path, start, history = work / "last.pt", 0, []
    if state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state["args"] != _run_identity(args):
            raise SystemExit(f"{state_path}: a checkpoint of a different run ({state['args']}); remove it or pick another --work")
        model.load_state_dict(state["model"])
        ema.ema.load_state_dict(state["ema"])
        ema.updates = state["ema_updates"]
        opt.load_state_dict(state["optimiser"])
        start, history = state["step"], state["history"]
        print(f"resuming at step {start} from {state_path}", file=sys.stderr)
    began = time.monotonic()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc=f"train ({args.init})", unit="step", disable=None)
    running = None
    # the next step's scenes are composed while this step trains (OpenCV and numpy release the GIL)
    prefetch = ThreadPoolExecutor(1)
    pending = prefetch.submit(scene_batch, sources, args.seed, start, *step_shape(args, start))
    for step in bar:
        if args.stop_after is not None and step >= args.stop_after:
            break
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args.steps, lr0, args.warmup)
        images, targets = (t.to(device, non_blocking=True) for t in pending.result())
        if step + 1 < min(args.steps, args.stop_after or args.steps):
            pending = prefetch.submit(scene_batch, sources, args.seed, step + 1, *step_shape(args, step + 1))
        loss, parts = loss_fn(model(images), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        ema.update(model)
        running = parts if running is None else 0.98 * running + 0.02 * parts
        bar.set_postfix(box=f"{running[0]:.4f}", obj=f"{running[1]:.4f}", lr=f"{group['lr']:.4f}")
        if (step + 1) % args.save_every == 0 or step + 1 == args.steps:
            history.append({"step": step + 1, "box": round(float(running[0]), 5), "obj": round(float(running[1]), 5),
                            "seconds": round(time.monotonic() - began, 1)})
            _save_state(state_path, model, ema, opt, step + 1, history, args)
    prefetch.shutdown()
    if args.stop_after is not None and args.stop_after < args.steps:
        print(json.dumps({"stopped_at": min(args.stop_after, args.steps), "resumed_at": start, "checkpoint": str(state_path)}))
        return 0
    multi_scale = f" --max-imgsz {args.max_imgsz}" if args.max_imgsz else ""
    source = (f"tools/train_detector.py --init {args.init} --seed {args.seed} --steps {args.steps} --batch {args.batch} "
              f"--imgsz {args.imgsz}{multi_scale} --freeze {args.freeze}; synthetic shelf scenes from the Grocery Store "
              "Dataset (MIT)")
    final = ema.ema.cpu().eval().half().float()  # the float16 weights shipped are the ones exported
    metadata = detector_metadata(final, args.imgsz, LICENCE[args.init], source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, final, "yolov5", {"yaml": final.cfg, "stride": [8, 16, 32], "bn_eps": 1e-3},
                    {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}, half=True)
    exported = [str(export_detector(final, args.out.with_name(f"{args.out.stem}-{size}.onnx"), int(size), metadata))
                for size in args.export_sizes.split(",") if size]
    print(json.dumps({"checkpoint": str(args.out), "onnx": exported, "steps": args.steps, "resumed_at": start, "init": args.init,
                      "licence": LICENCE[args.init], "history": history[-3:]}, indent=2))
    return 0


def _run_identity(args: argparse.Namespace) -> dict:
    """What must match for a checkpoint to be resumed: everything that changes the data or the model."""
    return {"init": args.init, "seed": args.seed, "steps": args.steps, "batch": args.batch, "imgsz": args.imgsz,
            "max_imgsz": args.max_imgsz, "photo_split": args.photo_split, "max_photos": args.max_photos, "lr": args.lr,
            "freeze": args.freeze}


def _save_state(path: Path, model, ema: ModelEMA, opt, step: int, history: list, args: argparse.Namespace) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "ema": ema.ema.state_dict(), "ema_updates": ema.updates,
                "optimiser": opt.state_dict(), "step": step, "history": history, "args": _run_identity(args)}, tmp)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
