#!/usr/bin/env python3
"""`make demo`: the daemon on the bundled shelf video, reporting to a local mosquitto, with an annotated video.

Builds the sample catalog (three products cropped from a real shelf video) into
`<out>/data/catalogs/v1` and points `current` at it, as the sync agent does;
starts mosquitto on loopback when it is installed (a free port, or --broker-port) and prints the `mosquitto_sub` line
that shows the events as a consumer of them would see them; runs `shelfid run`'s loop on samples/shelf.mp4 at the
video's own rate; prints each event as the MQTT subscriber receives it; writes `<out>/annotated.mp4` (and a few stills);
stops at the end of the video (--loops N plays it N times, 0 until Ctrl-C) with a summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import cv2

from edge.core.annotate import draw_boxes, track_boxes
from edge.core.assembly import Models
from edge.core.catalog_build import build_catalog
from edge.core.config import Config
from edge.daemon.grabber import Frame
from edge.daemon.pipeline import Pipeline
from edge.daemon.run import run
from tools.mqtt_harness import Broker, Recorder, mosquitto_binary

REPO = Path(__file__).resolve().parent.parent
STILL_EVERY = 30  # frames between annotated stills


class AnnotatedVideo:
    def __init__(self, out: Path, fps: float = 15.0):
        self.out, self.fps, self.writer, self.stills = out, fps, None, 0

    def __call__(self, frame: Frame, pipeline: Pipeline) -> None:
        image = draw_boxes(frame.image, track_boxes(pipeline.tracker.tracks, pipeline.identifier.catalog.names))
        if self.writer is None:
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.out / "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        self.writer.write(image)
        if frame.index % STILL_EVERY == 0:
            cv2.imwrite(str(self.out / f"frame_{frame.index:04d}.jpg"), image)
            self.stills += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def prepare_catalog(config: Config, images: Path) -> Path:
    catalogs = config.device.data_dir / "catalogs"
    models = Models.open(config)
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    report = build_catalog(images, catalogs / "v1", embedder, verifier, detector, "demo", force=True)
    current = catalogs / "current"
    current.unlink(missing_ok=True)
    os.symlink("v1", current)
    print(f"catalog: {report.products} products from {report.images} images -> {current} -> v1")
    return current


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=REPO / "samples" / "shelf.mp4", help="shelf video")
    parser.add_argument("--catalog-images", type=Path, default=REPO / "samples" / "shelf-catalog", help="product images")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="where the data dir and the annotated video go")
    parser.add_argument("--broker-port", type=int, help="port of the demo's mosquitto on 127.0.0.1 (default: a free one)")
    parser.add_argument("--loops", type=int, default=1, help="times to play the video (default 1; 0: until Ctrl-C)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args.out.mkdir(parents=True, exist_ok=True)

    try:
        broker = Broker(args.out / "mosquitto", args.broker_port).start() if mosquitto_binary() else None
    except RuntimeError as exc:
        print(f"no MQTT: {exc}; events go to {args.out / 'data' / 'events.jsonl'}")
        broker = None
    mqtt = {"host": "127.0.0.1", "port": broker.port} if broker else {"enabled": False}
    config = Config.model_validate({"device": {"id": "demo", "data_dir": str((args.out / "data").resolve())},
                                   "camera": {"source": str(args.video), "realtime": True}, "mqtt": mqtt})
    prepare_catalog(config, args.catalog_images)
    recorder = Recorder(broker.port) if broker else None
    if broker:
        print(f"mosquitto on 127.0.0.1:{broker.port}; subscribed to shelfid/demo/#. To see the payloads as a consumer "
              f"does, in another terminal:\n  mosquitto_sub -h 127.0.0.1 -p {broker.port} -t 'shelfid/#' -v"
              + ("\n(--loops 0 keeps it playing until Ctrl-C)" if args.loops else ""), flush=True)

    shown: dict[str, dict] = {}  # event_id -> event (delivery is at-least-once)
    arrived = threading.Condition()

    def show(event: dict) -> None:
        with arrived:
            if event["event_id"] in shown:
                return
            shown[event["event_id"]] = event
            arrived.notify_all()
        what = event["product"]["name"] if event["type"] == "identified" else "unknown product"
        waited = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")) - datetime.fromisoformat(event["first_seen"].replace("Z", "+00:00"))
        print(f"  {event['type']:<10} track {event['track_id']:>3}  {what}  (inliers {event['scores']['inliers']}, "
              f"{waited.total_seconds() * 1000:.0f} ms after it appeared)")

    if recorder:
        recorder.client.on_message = lambda c, u, m: m.topic.endswith("/events") and show(json.loads(m.payload))
    video = AnnotatedVideo(args.out)
    stop, played, expected = threading.Event(), 0, 0
    try:
        while not stop.is_set() and (args.loops == 0 or played < args.loops):
            played += 1
            print(f"running the daemon on {args.video.name} at the video's own rate (play {played})...", flush=True)
            summary = run(config, stop=stop, on_event=None if recorder else show, on_frame=video)  # Ctrl-C sets `stop`
            expected += summary["identified"] + summary["unknown"]
            with arrived:  # the daemon flushed its outbox on the way out; let the broker's deliveries land
                arrived.wait_for(lambda want=expected: len(shown) >= want, timeout=10)
        if recorder:
            recorder.close()
    finally:
        video.close()
        if broker:
            broker.stop()

    identified = Counter(e["product"]["name"] for e in shown.values() if e["type"] == "identified")
    print(f"\nframes {summary['frames']} processed, {summary['dropped_frames']} dropped, {summary['fps']} FPS; "
          f"{summary['identified']} identified, {summary['unknown']} unknown; {len(shown)} events "
          f"{'received over MQTT' if broker else 'written to events.jsonl'}")
    if identified:
        print("identified: " + ", ".join(f"{n} ×{c}" for n, c in identified.most_common()))
    print("stage ms p50/p95: " + ", ".join(f"{k} {v['p50']}/{v['p95']}" for k, v in summary["stage_ms"].items()))
    print(f"catalog {summary['catalog_version']}, RSS {summary['rss_mb']} MB")
    print(f"annotated video: {args.out / 'annotated.mp4'} (+{video.stills} stills)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
