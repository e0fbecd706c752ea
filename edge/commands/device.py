"""Commands for a device and its operator: check-config, detect, run, events, doctor.

Each top-level command has its own `add_…` so that edge/cli.py lists them in the order of `shelfid --help`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from edge.commands.common import DEVICE_CONFIG_HELP, TOOL_CONFIG_HELP, config_or_defaults, config_path, device_config
from edge.core.config import Config
from edge.core.errors import ConfigError
from edge.logs import setup_from_config


def summary(config: Config) -> str:
    m, q = config.models, config.mqtt
    return (f"device {config.device.id}, camera {config.camera.name}={config.camera.source} ({config.camera.kind}), "
            f"detector {m.detector or 'bundled'}, embedder {m.embedder or 'bundled'}, backend {m.backend}/{m.precision}, "
            f"verifier {config.verifier.kind}, mqtt {'off' if not q.enabled else f'{q.host}:{q.port}'}"
            f"{' tls' if q.tls else ''}, sync {config.sync.server_url or 'off'}")


def with_runtime_checks(config: Config, path: Path) -> Config:
    """What the schema cannot know without the environment: secrets that must exist for the config to run."""
    if problem := config.web.token_problem():
        raise ConfigError(str(path), [problem])
    return config


def add_check_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate a config file (exit 0 valid, 1 invalid, 2 missing/not YAML)")
    p.add_argument("file", type=Path, nargs="?", help=DEVICE_CONFIG_HELP)
    p.set_defaults(func=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    from edge.core.config_file import load_config

    path = config_path(args.file)
    config = with_runtime_checks(load_config(path), path)
    print(f"{path}: valid — {summary(config)}")
    return 0


def add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="identify catalog products in still images")
    p.add_argument("images", type=Path, nargs="+", help="image files")
    p.add_argument("--catalog", type=Path, required=True, help="catalog folder (from `shelfid catalog build`)")
    p.add_argument("--config", type=Path, help=TOOL_CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("--annotate", type=Path, help="write the image with boxes and names (IMAGE-stem suffix for several)")
    p.add_argument("--whole-image", action="store_true", help="treat each image as one product crop (no detector)")
    p.add_argument("--tiles", action=argparse.BooleanOptionalAction, default=None,
                   help="detect at the photo's own scale (whole image + tiles of 1, 2, 4… times the detector's input, each "
                        "facing named once); by default for photos over 6 times the detector's input on their longest side "
                        "(phone photos, whose packs shrink to a few pixels at the detector's input). --tiles: every photo (a "
                        "small photo of many small packs); --no-tiles: the whole image at once")
    p.add_argument("--explain", type=Path, metavar="DIR",
                   help="for each box left unknown because its colours differ (or too little of it shows to compare them), "
                        "write DIR/IMAGE-stem-N.png: the catalog image it matched best, the box aligned onto it, and where "
                        "their colours differ (red)")
    p.set_defaults(func=_detect)


def _detect(args: argparse.Namespace) -> int:
    import cv2

    from edge.core.annotate import draw_boxes
    from edge.core.assembly import load_identifier
    from edge.core.errors import ImageError
    from edge.core.explain import explain_unknowns
    from edge.core.identify import Timings, still_tiling
    from edge.core.images import read_image
    from edge.core.records import label, to_record
    from edge.core.second_opinion import opinion_for, second_look

    config = config_or_defaults(args.config)
    identifier = load_identifier(config, args.catalog, still=True)
    # verifier.second_opinion: each box the first left unknown asked once more, as the daemon asks a track
    second = opinion_for(config, identifier)
    failed, told = 0, args.tiles is not None or args.whole_image
    detector_side = max(identifier.detector.imgsz)
    for path in args.images:
        try:
            frame = read_image(path)
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        tiled, from_pack_size = still_tiling(frame.shape, identifier.detector, False if args.whole_image else args.tiles)
        if not told and tiled:
            told = True
            print(f"note: {path} is {frame.shape[1]}x{frame.shape[0]}, {max(frame.shape[:2]) / detector_side:.1f} times the "
                  f"detector's {detector_side} px input: detected at its own scale, in tiles (--no-tiles: the whole image at "
                  f"once)", file=sys.stderr)
        timings = Timings()
        found = identifier.identify_image(frame, detect=not args.whole_image, timings=timings, tiled=tiled,
                                          from_pack_size=from_pack_size)
        found = second_look(second, frame, found, timings)
        if args.json:
            ms = {k: round(v, 1) for k, v in timings.ms.items()}
            print(json.dumps({"image": str(path), "detections": [to_record(f) for f in found], "ms": ms}))
        else:
            names = [label(f) for f in found if f.identification.status == "identified"]
            why = Counter(f.identification.reason for f in found if f.identification.status != "identified")
            unknown = f"; unknown: {', '.join(f'{reason} {n}' for reason, n in why.most_common())}" if why else ""
            print(f"{path}: {len(found)} products, {len(names)} identified: {', '.join(names) or '-'}{unknown}")
        if args.explain:
            for written in explain_unknowns(identifier, frame, found, args.explain / path.stem):
                print(f"  explained: {written}", file=sys.stderr)
        if args.annotate:
            out = args.annotate if len(args.images) == 1 else args.annotate.with_name(f"{args.annotate.stem}-{path.stem}.jpg")
            boxes = [(f.bbox, label(f), f.identification.status == "identified") for f in found]
            cv2.imwrite(str(out), draw_boxes(frame, boxes))
    return 1 if failed else 0


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the daemon: identify products in the camera feed and report them")
    p.add_argument("--config", type=Path, help=DEVICE_CONFIG_HELP)
    p.add_argument("--catalog", type=Path, help="catalog folder (default: <data_dir>/catalogs/current)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edge.daemon.run import run

    config = with_runtime_checks(device_config(args.config), config_path(args.config))
    setup_from_config(args.log_level, config.logging.level, config.logging.format)
    print(json.dumps(run(config, args.catalog, config_path=config_path(args.config))))
    return 0


def add_events(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help="follow a device's MQTT events, printed readably (Ctrl-C to stop)")
    p.add_argument("--config", type=Path, help=f"{DEVICE_CONFIG_HELP}: the broker and device id")
    p.add_argument("--device", help="device id to follow (default: the config's)")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.add_argument("--timeout", type=float, help="give up (exit 1) when not connected, or no event came, within this many seconds")
    p.set_defaults(func=_events)


def _events(args: argparse.Namespace) -> int:
    from edge.reporting.follow import follow

    config = device_config(args.config)
    if args.device:
        config = config.model_copy(update={"device": config.device.model_copy(update={"id": args.device})})
    follow(config, limit=args.count, timeout_s=args.timeout)
    return 0


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check camera, models, catalog, broker, sync, disk and clock; say what to fix")
    p.add_argument("--config", type=Path, help=DEVICE_CONFIG_HELP)
    p.add_argument("--skip", default="", help="checks to skip, comma-separated (e.g. camera)")
    p.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from edge.doctor import report, run_checks

    config = device_config(args.config)
    credentials = config_path(args.config).parent / "credentials"  # the units' LoadCredential= folder, as installed
    checks = run_checks(config, tuple(s for s in args.skip.split(",") if s), credentials)
    print(report(checks))
    return 1 if any(c.state == "fail" for c in checks) else 0
