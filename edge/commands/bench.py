"""`shelfid bench models|pipeline|index`: measurements; the benchmarks and their tables live in edge/bench and models/."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from edge.commands.common import TOOL_CONFIG_HELP, config_or_defaults, ints


def add_parsers(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="measurements")
    actions = bench.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    for add in (_add_models, _add_pipeline, _add_index, _add_catalog_load, _add_verifier):
        add(actions)


def _add_models(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("models", help="per-model latency (median, p95) by batch size and threads")
    p.add_argument("model", type=Path, nargs="+", help="ONNX models")
    p.add_argument("--backend", default="onnxruntime", help="auto, onnxruntime, tensorrt or torch")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"], help="precision")
    p.add_argument("--batch", type=ints, default=[1, 8, 32], help="batch sizes, e.g. 1,8,32")
    p.add_argument("--threads", type=ints, default=[1, 2], help="thread counts, e.g. 1,2")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per setting")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_models)


def _models(args: argparse.Namespace) -> int:
    from models.bench import bench_model, format_table, rows_as_dicts

    rows = []
    for path in args.model:
        rows += bench_model(path, args.backend, args.precision, args.batch, args.threads, args.repeats)
    print(json.dumps(rows_as_dicts(rows), indent=2) if args.json else format_table(rows))
    return 0


def _add_pipeline(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("pipeline", help="the daemon's frame loop on a video: FPS, identification latency, CPU, RSS")
    p.add_argument("--video", type=Path, help="video file (default: samples/shelf.mp4)")
    p.add_argument("--catalog", type=Path, help="catalog folder (default: the sample catalog, built now)")
    p.add_argument("--config", type=Path, help=f"{TOOL_CONFIG_HELP}: the models")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--naive", action="store_true", help="every stage on every frame (the prototype's approach)")
    mode.add_argument("--inline", action="store_true", help="the daemon's loop with identification inside the frame loop")
    mode.add_argument("--compare", action="store_true", help="pipeline, inline and naive, one after the other")
    p.add_argument("--realtime", action="store_true", help="replay at the file's own rate (drops what the loop has no time for)")
    p.add_argument("--json", action="store_true", help="print JSON (one object, or a list with --compare)")
    p.set_defaults(func=_pipeline)


def _pipeline(args: argparse.Namespace) -> int:
    from edge.bench.pipeline import MODES, format_table, run_bench

    modes = list(MODES) if args.compare else ["naive" if args.naive else "inline" if args.inline else "pipeline"]
    rows = run_bench(config_or_defaults(args.config), args.video, args.catalog, modes, args.realtime)
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows))
    else:
        print(format_table(rows))
    return 0


def _add_index(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("index", help="catalog search on clustered synthetic vectors: speed, memory, recall vs exact")
    p.add_argument("--n", type=ints, default=[100_000, 1_000_000], help="catalog sizes, e.g. 100000,1000000")
    p.add_argument("--lsh", default="256/100", help="LSH built at load, as bits/rerank, comma-separated ('' for none)")
    p.add_argument("--nprobe", type=ints, default=[16, 64, 256], help="IVF lists probed, e.g. 16,64,256")
    p.add_argument("--data", default="families,uniform", help="synthetic sets: families, uniform (comma-separated)")
    p.add_argument("--queries", type=int, default=200, help="queries per setting")
    p.add_argument("--hnsw-max", type=int, default=100_000, help="largest n that also builds faiss HNSW (slow to build)")
    p.add_argument("--threads", type=int, default=1, help="faiss threads")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_index)


def _add_catalog_load(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("catalog-load", help="open an n-image synthetic catalog as the daemon does: times, memory")
    p.add_argument("--n", type=ints, default=[10_000, 100_000, 1_000_000], help="catalog sizes, e.g. 10000,100000")
    p.add_argument("--data", default="families", choices=["families", "uniform"], help="synthetic set (edge.bench.index)")
    p.add_argument("--index", default="lsh", choices=["lsh", "ivfpq"], help="the stored index the catalog is built with")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_catalog_load)


def _catalog_load(args: argparse.Namespace) -> int:
    from edge.bench.catalog_load import bench_catalog_load, format_rows

    rows = []
    for n in tqdm(args.n, desc="catalog sizes", disable=args.json or None):
        rows.append(bench_catalog_load(n, args.data, args.index))
    print(json.dumps(rows, indent=2) if args.json else format_rows(rows))
    return 0


def _index(args: argparse.Namespace) -> int:
    from edge.bench.index import bench_index, format_rows, progress_line, rows_as_dicts

    settings = [tuple(int(x) for x in s.split("/")) for s in args.lsh.split(",") if s]
    # progress on stderr keeps stdout a clean table; with --json nothing but the JSON
    progress = None if args.json else (lambda row: print(progress_line(row), file=sys.stderr))
    rows = []
    for n in args.n:
        for data in args.data.split(","):
            rows += bench_index(n, settings, args.queries, hnsw=n <= args.hnsw_max, threads=args.threads, progress=progress,
                                data=data, nprobes=tuple(args.nprobe))
    print(json.dumps(rows_as_dicts(rows), indent=2) if args.json else format_rows(rows))
    return 0


def _add_verifier(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("verifier", help="a verifier's cost per crop: features, one match, keypoints (each kind on the "
                           "same crops)")
    p.add_argument("--images", type=Path, default=Path("samples/shelf-catalog"), help="folder of product crops")
    p.add_argument("--kinds", default="sift,aliked-lightglue", help="verifier kinds, comma-separated (the learned ones on PyTorch)")
    p.add_argument("--matcher-onnx", type=Path, help="also aliked-lightglue on ONNX Runtime, from this export folder "
                   "(shelfid models export-matcher)")
    p.add_argument("--max-keypoints", type=int, default=1024, help="verifier.max_keypoints")
    p.add_argument("--repeats", type=int, default=5, help="timed passes over the crops")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_verifier)


def _verifier(args: argparse.Namespace) -> int:
    from edge.bench.verifier import bench_verifier, crops_in, format_rows, rows_as_dicts
    from edge.core.config import VerifierConfig

    images = crops_in(args.images)
    settings = [(kind if kind == "sift" else f"{kind} (PyTorch)", {"kind": kind}) for kind in args.kinds.split(",") if kind]
    if args.matcher_onnx:
        settings.append(("aliked-lightglue (ONNX Runtime)", {"kind": "aliked-lightglue", "matcher_onnx": args.matcher_onnx}))
    rows = [bench_verifier(label, VerifierConfig(device="cpu", max_keypoints=args.max_keypoints, **values), images, args.repeats)
            for label, values in tqdm(settings, desc="verifiers", disable=args.json or None)]
    print(json.dumps(rows_as_dicts(rows), indent=2) if args.json else format_rows(rows))
    return 0
