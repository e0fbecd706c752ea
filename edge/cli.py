"""`shelfid`: parses arguments, calls one library function, turns errors into messages and exit codes.

Exit codes (one rule for every command; README "Commands"): 0 success; 1 the operation failed, or the
config is invalid (each problem named); 2 a bad invocation: unknown arguments, or a file the command
needs (the config, a token file) missing, unreadable or not YAML; 130 interrupted. Every error is one
line on stderr; a traceback only with --log-level DEBUG.

Every command that reads a config takes --config, else $SHELFID_CONFIG, else /etc/shelfid/config.yaml.
Commands that act for a device (run, sync, doctor, events) need one; tools (detect, catalog build and
serve, bench) use built-in defaults when none of the three exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from edge import __version__
from edge.core.config import DEFAULT_CONFIG_PATH, Config
from edge.core.errors import ConfigError, ConfigFileError, ShelfIDError
from edge.logs import setup_logging
from models.errors import ModelError

log = logging.getLogger("shelfid")


def _check_config(args: argparse.Namespace) -> int:
    from edge.core.config_file import load_config

    path = config_path(args.file)
    config = _with_runtime_checks(load_config(path), path)
    print(f"{path}: valid — {summary(config)}")
    return 0


def _with_runtime_checks(config: Config, path: Path) -> Config:
    """What the schema cannot know without the environment: secrets that must exist for the config to run."""
    if problem := config.web.token_problem():
        raise ConfigError(str(path), [problem])
    return config


def summary(config: Config) -> str:
    m, q = config.models, config.mqtt
    return (f"device {config.device.id}, camera {config.camera.name}={config.camera.source} ({config.camera.kind}), "
            f"detector {m.detector or 'bundled'}, embedder {m.embedder or 'bundled'}, backend {m.backend}/{m.precision}, "
            f"verifier {config.verifier.kind}, mqtt {'off' if not q.enabled else f'{q.host}:{q.port}'}"
            f"{' tls' if q.tls else ''}, sync {config.sync.server_url or 'off'}")


CONFIG_ENV = "SHELFID_CONFIG"
DEVICE_CONFIG_HELP = f"config file (default ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})"
TOOL_CONFIG_HELP = f"config file (default ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH}; built-in defaults when neither exists)"


def config_path(explicit: Path | None) -> Path:
    return explicit or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def _device_config(path: Path | None) -> Config:
    """A device's config: --config, $SHELFID_CONFIG or the default path; none of them is an error."""
    from edge.core.config_file import load_config

    resolved = config_path(path)
    if path is None and not resolved.exists():
        raise ConfigFileError(f"{resolved}: no such config file — pass --config FILE or set ${CONFIG_ENV}")
    return load_config(resolved)


def _config_or_defaults(path: Path | None) -> Config:
    """The config when one is named or installed, else the built-in defaults (tools that work on a laptop)."""
    from edge.core.config_file import load_config

    resolved = config_path(path)
    if path is None and CONFIG_ENV not in os.environ and not resolved.exists():
        return Config()
    return load_config(resolved)


def _catalog_build(args: argparse.Namespace) -> int:
    from edge.core.catalog_build import build_catalog
    from edge.core.identify import open_models

    detector, embedder, verifier = open_models(_config_or_defaults(args.config))
    report = build_catalog(args.images_dir, args.out, embedder, verifier, None if args.no_detect else detector,
                           args.catalog_id, args.version, args.force, args.variants)
    for line in report.skipped:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"wrote {args.out}: {report.products} products, {report.images} images, {len(report.skipped)} skipped")
    return 0


def _detect(args: argparse.Namespace) -> int:
    import cv2

    from edge.core.annotate import draw_boxes
    from edge.core.errors import ImageError
    from edge.core.identify import Timings, label, load_identifier, to_record
    from edge.core.images import read_image

    identifier = load_identifier(_config_or_defaults(args.config), args.catalog)
    failed = 0
    for path in args.images:
        try:
            frame = read_image(path)
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        timings = Timings()
        found = identifier.identify_image(frame, detect=not args.whole_image, timings=timings)
        if args.json:
            ms = {k: round(v, 1) for k, v in timings.ms.items()}
            print(json.dumps({"image": str(path), "detections": [to_record(f) for f in found], "ms": ms}))
        else:
            names = [label(f) for f in found if f.identification.status == "identified"]
            print(f"{path}: {len(found)} products, {len(names)} identified: {', '.join(names) or '-'}")
        if args.annotate:
            out = args.annotate if len(args.images) == 1 else args.annotate.with_name(f"{args.annotate.stem}-{path.stem}.jpg")
            boxes = [(f.bbox, label(f), f.identification.status == "identified") for f in found]
            cv2.imwrite(str(out), draw_boxes(frame, boxes))
    return 1 if failed else 0


def _run(args: argparse.Namespace) -> int:
    from edge.daemon.run import run

    config = _with_runtime_checks(_device_config(args.config), config_path(args.config))
    setup_logging(config.logging.level, config.logging.format)
    summary = run(config, args.catalog)
    print(json.dumps(summary))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from edge.doctor import report, run_checks

    config = _device_config(args.config)
    checks = run_checks(config, tuple(s for s in args.skip.split(",") if s))
    print(report(checks))
    return 1 if any(c.state == "fail" for c in checks) else 0


def _sync(args: argparse.Namespace) -> int:
    from sync_agent.commands import sync

    config = _device_config(args.config)
    setup_logging(config.logging.level, config.logging.format)
    return sync(args, config)


def _catalog_serve(args: argparse.Namespace) -> int:
    from sync_agent.commands import serve

    return serve(args, _config_or_defaults(args.config))


def _catalog_keygen(args: argparse.Namespace) -> int:
    from sync_agent.commands import keygen

    return keygen(args)


def _catalog_publish(args: argparse.Namespace) -> int:
    from sync_agent.commands import publish_folder

    return publish_folder(args)


def _events(args: argparse.Namespace) -> int:
    from edge.reporting.follow import follow

    config = _device_config(args.config)
    if args.device:
        config = config.model_copy(update={"device": config.device.model_copy(update={"id": args.device})})
    follow(config, limit=args.count, timeout_s=args.timeout)
    return 0


def _models_import_yolov5(args: argparse.Namespace) -> int:
    from models.export import import_yolov5

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    meta = import_yolov5(args.weights, args.out, args.imgsz, save_torch=args.save_torch, product_classes=classes)
    kept = f", products: {', '.join(classes)}" if classes else ""
    print(f"wrote {args.out}: YOLOv5, {len(meta['names'])} classes{kept}, input {args.imgsz}, licence {meta['licence']}")
    return 0


def _models_export_detector(args: argparse.Namespace) -> int:
    from models.export import export_detector_checkpoint
    from models.metadata import parse_names

    meta = export_detector_checkpoint(args.weights, args.out, args.imgsz)
    print(f"wrote {args.out}: detector {', '.join(parse_names(meta['names']))}, input {args.imgsz}, licence {meta['licence']}")
    return 0


def _models_export_embedder(args: argparse.Namespace) -> int:
    from models.export import export_embedder

    meta = export_embedder(args.out, args.weights, args.input_size, save_torch=args.save_torch)
    print(f"wrote {args.out}: embedder {meta['arch']}, {meta['embedding_dim']}-d, input {meta['input_size']}, "
          f"weights {meta['source']}")
    return 0


def _models_build_engine(args: argparse.Namespace) -> int:
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


def _models_quantize(args: argparse.Namespace) -> int:
    from models.quantize import calibration_images, quantize_int8
    from models.runtime import preprocessor_for

    images = calibration_images(args.images, args.limit)
    out = quantize_int8(args.model, preprocessor_for(args.model), images, args.out)
    print(f"wrote {out}: INT8 static (QDQ, per-channel), calibrated on {len(images)} images")
    return 0


def _models_info(args: argparse.Namespace) -> int:
    from models.metadata import describe_onnx

    print(json.dumps(describe_onnx(args.model), indent=2))
    return 0


def _bench_models(args: argparse.Namespace) -> int:
    from models.bench import bench_model, format_table, rows_as_dicts

    rows = []
    for path in args.model:
        rows += bench_model(path, args.backend, args.precision, args.batch, args.threads, args.repeats)
    print(json.dumps(rows_as_dicts(rows), indent=2) if args.json else format_table(rows))
    return 0


def _bench_index(args: argparse.Namespace) -> int:
    from edge.bench.index import bench_index, format_rows, rows_as_dicts

    settings = [tuple(int(x) for x in s.split("/")) for s in args.lsh.split(",")]
    rows = []
    for n in args.n:
        progress = None if args.json else (lambda r: print(f"  {r.n:,} {r.method}: p50 {r.single_p50_ms} ms, recall@10 {r.recall_at_10:.3f}",
                                                           file=sys.stderr))
        rows += bench_index(n, settings, args.queries, hnsw=n <= args.hnsw_max, threads=args.threads, progress=progress)
    print(json.dumps(rows_as_dicts(rows), indent=2) if args.json else format_rows(rows))
    return 0


def _bench_pipeline(args: argparse.Namespace) -> int:
    from edge.bench.pipeline import MODES, run_bench

    modes = list(MODES) if args.compare else ["naive" if args.naive else "inline" if args.inline else "pipeline"]
    rows = run_bench(_config_or_defaults(args.config), args.video, args.catalog, modes, args.realtime)
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows))
        return 0
    print("| mode | frames | dropped | processed FPS | identified | identify latency p50 / p95 ms | CPU s | RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lat = r["identify_latency_ms"]
        print(f"| {r['mode']} | {r['frames']} | {r['dropped_frames']} | {r['fps']} | {r['identified']} | {lat['p50']} / {lat['p95']} "
              f"| {r['cpu_s']} | {r['rss_mb']} |")
    return 0


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shelfid", description="Identify catalog products on retail shelves.")
    parser.add_argument("--version", action="version", version=f"shelfid {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check-config", help="validate a config file (exit 0 valid, 1 invalid, 2 missing/not YAML)")
    p.add_argument("file", type=Path, nargs="?", help=DEVICE_CONFIG_HELP)
    p.set_defaults(func=_check_config)

    p = sub.add_parser("detect", help="identify catalog products in still images")
    p.add_argument("images", type=Path, nargs="+", help="image files")
    p.add_argument("--catalog", type=Path, required=True, help="catalog folder (from `shelfid catalog build`)")
    p.add_argument("--config", type=Path, help=TOOL_CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("--annotate", type=Path, help="write the image with boxes and names (IMAGE-stem suffix for several)")
    p.add_argument("--whole-image", action="store_true", help="treat each image as one product crop (no detector)")
    p.set_defaults(func=_detect)

    p = sub.add_parser("run", help="the daemon: identify products in the camera feed and report them")
    p.add_argument("--config", type=Path, help=DEVICE_CONFIG_HELP)
    p.add_argument("--catalog", type=Path, help="catalog folder (default: <data_dir>/catalogs/current)")
    p.set_defaults(func=_run)

    p = sub.add_parser("events", help="follow a device's MQTT events, printed readably (Ctrl-C to stop)")
    p.add_argument("--config", type=Path, help=f"{DEVICE_CONFIG_HELP}: the broker and device id")
    p.add_argument("--device", help="device id to follow (default: the config's)")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--timeout", type=float, help="give up (exit 1) when not connected, or no event came, within this many seconds")
    p.set_defaults(func=_events)

    catalog = sub.add_parser("catalog", help="build, publish and serve catalogs")
    csub = catalog.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    p = csub.add_parser("build", help="a local catalog from <product_id>/*.jpg (+ optional products.csv)")
    p.add_argument("images_dir", type=Path, help="folder of product folders")
    p.add_argument("--out", type=Path, required=True, help="catalog folder to write")
    p.add_argument("--config", type=Path, help=f"{TOOL_CONFIG_HELP}: the models")
    p.add_argument("--catalog-id", help="catalog id (default: the folder name)")
    p.add_argument("--version", type=int, default=1, help="catalog version number")
    p.add_argument("--no-detect", action="store_true", help="use whole images, without the detector")
    p.add_argument("--force", action="store_true", help="replace an existing catalog folder")
    p.add_argument("--variants", type=int, default=0, help="extra shelf-like views per image, for retrieval only")
    p.set_defaults(func=_catalog_build)
    p = csub.add_parser("keygen", help="an Ed25519 key pair for signing published catalogs")
    p.add_argument("--out", type=Path, required=True, help="folder for signing-key.pem and signing-key.pub.pem")
    p.set_defaults(func=_catalog_keygen)
    p = csub.add_parser("publish", help="a built catalog folder into a static, signed bundle tree")
    p.add_argument("catalog", type=Path, help="catalog folder (from `shelfid catalog build`)")
    p.add_argument("--root", type=Path, required=True, help="bundle tree (catalogs/ + blobs/) to write into")
    p.add_argument("--signing-key", type=Path, required=True, help="Ed25519 private key (PEM)")
    p.add_argument("--catalog-id", help="catalog id (default: the catalog's own)")
    p.add_argument("--version", type=int, help="version (default: the published one + 1)")
    p.set_defaults(func=_catalog_publish)
    p = csub.add_parser("serve", help="the central catalog server (HTTP API + the static bundle tree)")
    p.add_argument("--root", type=Path, required=True, help="work area and (local storage) the published tree")
    p.add_argument("--signing-key", type=Path, required=True, help="Ed25519 private key (PEM) that signs manifests")
    p.add_argument("--token-file", type=Path, help="file holding the write token (else credential 'server-token' or $SHELFID_SERVER_TOKEN)")
    p.add_argument("--no-auth", action="store_true", help="no token on write endpoints (closed test benches only)")
    p.add_argument("--config", type=Path, help=f"{TOOL_CONFIG_HELP}: the models to compute catalogs with, mqtt.* for announcements")
    p.add_argument("--announce", action=argparse.BooleanOptionalAction, default=True,
                   help="announce versions on MQTT (default: on, when the config enables mqtt)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--s3-bucket", help="publish to this S3-compatible bucket instead of <root>/public (boto3; AWS env/profile)")
    p.add_argument("--s3-prefix", default="", help="key prefix inside the bucket")
    p.set_defaults(func=_catalog_serve)

    p = sub.add_parser("doctor", help="check camera, models, catalog, broker, sync, disk and clock; say what to fix")
    p.add_argument("--config", type=Path, help=DEVICE_CONFIG_HELP)
    p.add_argument("--skip", default="", help="checks to skip, comma-separated (e.g. camera)")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("sync", help="the device's catalog sync agent")
    p.add_argument("--config", type=Path, help=f"{DEVICE_CONFIG_HELP}: sync.*, device.data_dir, mqtt.* for announcements")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one sync, then exit (systemd timer)")
    mode.add_argument("--rollback", action="store_true", help="switch to the previous kept version")
    p.set_defaults(func=_sync)

    models = sub.add_parser("models", help="import, export, quantise and inspect models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("import-yolov5", help="convert an upstream YOLOv5 .pt checkpoint to ONNX (no upstream code)")
    p.add_argument("weights", type=Path, help="upstream checkpoint, e.g. yolov5n.pt")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--imgsz", type=int, default=640, help="square input size, a multiple of 32")
    p.add_argument("--save-torch", action="store_true", help="also write OUT.pt for the torch reference backend")
    p.add_argument("--classes", help="comma-separated classes that are products, recorded in the model (e.g. "
                   "'bottle,cup' for a COCO model); the detector keeps only these unless models.classes is set")
    p.set_defaults(func=_models_import_yolov5)

    text = "export a product detector trained by tools/train_detector.py to ONNX at an input size"
    p = msub.add_parser("export-detector", help=text, description=text)
    p.add_argument("--weights", type=Path, required=True, help="our detector checkpoint (.pt), e.g. the bundled "
                   "models/weights/product-detector.pt")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--imgsz", type=int, default=320, help="square input size, a multiple of 32 (320 for a 2-core CPU, "
                   "640 for a Jetson)")
    p.set_defaults(func=_models_export_detector)

    text = "export an embedder (EfficientNet-Lite0 as bundled, or ResNet34) to ONNX"
    p = msub.add_parser("export-embedder", help=text, description=text)
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--weights", type=Path, help="our embedder checkpoint (.pt, from tools/train_embedder.py); absent: a "
                   "seeded random ResNet34")
    p.add_argument("--input-size", type=int, default=224, help="square input size when no weights are given")
    p.add_argument("--save-torch", action="store_true", help="also write OUT.pt for the torch reference backend")
    p.set_defaults(func=_models_export_embedder)

    p = msub.add_parser("build-engine", help="build a TensorRT engine for this device (Jetson/GPU only)")
    p.add_argument("model", type=Path, help="ONNX model")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="allow FP16 kernels")
    precision.add_argument("--int8", action="store_true", help="INT8 with FP16 fallback; needs --calibration")
    p.add_argument("--calibration", type=Path, help="folder of real images for INT8 calibration")
    p.add_argument("--calibration-limit", type=int, default=500, help="most calibration images used")
    p.add_argument("--cache-dir", type=Path, default=Path("~/.cache/shelfid/engines").expanduser(), help="engine cache")
    p.set_defaults(func=_models_build_engine)

    p = msub.add_parser("quantize", help="INT8 static quantisation for ONNX Runtime on CPU, calibrated on real images")
    p.add_argument("model", type=Path, help="ONNX model")
    p.add_argument("--images", type=Path, required=True, help="folder of real images (frames for a detector, crops for an embedder)")
    p.add_argument("--limit", type=int, default=200, help="most calibration images used")
    p.add_argument("--out", type=Path, help="output (default MODEL.int8.onnx, where precision int8 looks for it)")
    p.set_defaults(func=_models_quantize)

    p = msub.add_parser("info", help="print a model's inputs, outputs and metadata as JSON")
    p.add_argument("model", type=Path, help="ONNX model")
    p.set_defaults(func=_models_info)

    bench = sub.add_parser("bench", help="measurements")
    bsub = bench.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    p = bsub.add_parser("models", help="per-model latency (median, p95) by batch size and threads")
    p.add_argument("model", type=Path, nargs="+", help="ONNX models")
    p.add_argument("--backend", default="onnxruntime", help="auto, onnxruntime, tensorrt or torch")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"], help="precision")
    p.add_argument("--batch", type=_ints, default=[1, 8, 32], help="batch sizes, e.g. 1,8,32")
    p.add_argument("--threads", type=_ints, default=[1, 2], help="thread counts, e.g. 1,2")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per setting")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_bench_models)

    p = bsub.add_parser("pipeline", help="the daemon's frame loop on a video: FPS, identification latency, CPU, RSS")
    p.add_argument("--video", type=Path, help="video file (default: samples/shelf.mp4)")
    p.add_argument("--catalog", type=Path, help="catalog folder (default: the sample catalog, built now)")
    p.add_argument("--config", type=Path, help=f"{TOOL_CONFIG_HELP}: the models")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--naive", action="store_true", help="every stage on every frame (the prototype's approach)")
    mode.add_argument("--inline", action="store_true", help="the daemon's loop with identification inside the frame loop")
    mode.add_argument("--compare", action="store_true", help="pipeline, inline and naive, one after the other")
    p.add_argument("--realtime", action="store_true", help="replay at the file's own rate (drops what the loop has no time for)")
    p.add_argument("--json", action="store_true", help="print JSON (one object, or a list with --compare)")
    p.set_defaults(func=_bench_pipeline)

    p = bsub.add_parser("index", help="catalog search on clustered synthetic vectors: speed, memory, recall vs exact")
    p.add_argument("--n", type=_ints, default=[100_000, 1_000_000], help="catalog sizes, e.g. 100000,1000000")
    p.add_argument("--lsh", default="256/100,512/100,1024/100,512/200", help="LSH settings as bits/rerank, comma-separated")
    p.add_argument("--queries", type=int, default=200, help="queries per setting")
    p.add_argument("--hnsw-max", type=int, default=100_000, help="largest n that also builds faiss HNSW (slow to build)")
    p.add_argument("--threads", type=int, default=1, help="faiss threads")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_bench_index)
    return parser


def subcommand_parsers(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand's parser by its full name, e.g. 'models info'."""
    parser = parser or build_parser()
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{parser.prog.removeprefix('shelfid').strip()} {name}".strip()
                found[full] = child
                found.update(subcommand_parsers(child))
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except ConfigFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc.path} is not a valid config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (ShelfIDError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, or a failure nobody foresaw: one line unless the operator asks for the traceback
        if args.log_level == "DEBUG":
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --log-level DEBUG for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
