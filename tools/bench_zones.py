#!/usr/bin/env python3
"""What shelf zones cost the daemon's frame loop: `shelfid bench pipeline` with zones off and on, runs alternated.

    python -m tools.bench_zones [--pairs 3] [--video samples/shelf.mp4]

Each pair runs the pipeline benchmark (edge.bench.pipeline, mode `pipeline`: identification on its worker threads,
every frame of the video read as fast as the loop goes) once without zones and once with four zones that cover the
frame in a 2x2 grid, each with a planogram of the sample catalog's products; the order inside a pair alternates so
that a machine slowly warming up or getting busier does not favour one side. Prints one row per run, the median FPS
of each side and their ratio, and the zone keeper's own time per frame (its `zones` stage).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from edge.bench.pipeline import SAMPLE_VIDEO, bench_pipeline, sample_catalog
from edge.core.config import Config

QUADRANTS = {"top-left": [[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]], "top-right": [[0.5, 0], [1, 0], [1, 0.5], [0.5, 0.5]],
             "bottom-left": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]], "bottom-right": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]}
PLANOGRAM = {"cha-mate-limao": 4, "cha-mate-natural": 2, "coca-cola-can": 1}


def configs() -> dict[str, Config]:
    areas = {name: {"polygon": polygon, "expected": PLANOGRAM} for name, polygon in QUADRANTS.items()}
    return {"off": Config(), "on": Config.model_validate({"zones": {"areas": areas}})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="runs with zones off and on (alternating order)")
    parser.add_argument("--video", type=Path, default=SAMPLE_VIDEO, help="video file (default: samples/shelf.mp4)")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    print("| run | zones | frames | processed FPS | zones stage p50 / p95 ms |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        catalog = sample_catalog(Config(), Path(tmp) / "catalog", "shelf")
        for i in range(args.pairs):
            for side in ("off", "on") if i % 2 == 0 else ("on", "off"):
                row = bench_pipeline(configs()[side], args.video, catalog, "pipeline")
                runs[side].append(row)
                zones = row["stage_ms"].get("zones", {"p50": "–", "p95": "–"})
                print(f"| {len(runs['off']) + len(runs['on'])} | {side} | {row['frames']} | {row['fps']} | {zones['p50']} / {zones['p95']} |",
                      flush=True)
    off, on = (statistics.median(r["fps"] for r in runs[side]) for side in ("off", "on"))
    print(f"median FPS: zones off {off:.2f}, zones on {on:.2f}: on/off = {on / off:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
