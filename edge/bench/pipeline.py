"""`shelfid bench pipeline`: the daemon's frame loop on a video, against the naive every-stage-every-frame loop.

Modes: `pipeline` (the daemon: identification on its worker thread),
`inline` (the daemon's loop with identification inside the frame loop) and
`naive` (the prototype's per-request approach: detect, embed, search and
verify every box of every frame). By default each reads every frame of the
file as fast as it can; `realtime` replays at the file's own rate, as a camera
delivers, and counts the frames the loop had no time for.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.core.assembly import Models, load_identifier
from edge.core.catalog_build import build_catalog
from edge.core.config import CameraConfig, Config
from edge.core.identify import Timings
from edge.daemon.camera import open_source
from edge.daemon.grabber import Grabber
from edge.daemon.pipeline import Pipeline, percentiles
from edge.reporting.sinks import MemorySink

REPO = Path(__file__).resolve().parents[2]
SAMPLE_VIDEO = REPO / "samples" / "shelf.mp4"
SAMPLE_CATALOG_IMAGES = REPO / "samples" / "shelf-catalog"


MODES = ("pipeline", "inline", "naive")


def bench_pipeline(config: Config, video: Path, catalog_dir: Path, mode: str = "pipeline", realtime: bool = False) -> dict:
    identifier = load_identifier(config, catalog_dir)
    identifier.identify_image(np.zeros((480, 640, 3), np.uint8))  # warm-up
    source = open_source(CameraConfig(source=str(video), kind="file", realtime=realtime))
    grabber = Grabber(source, lossless=not realtime).start()
    naive = mode == "naive"
    pipeline = None if naive else Pipeline(config, identifier, MemorySink(), background=mode == "pipeline")
    latencies, identified, stage_ms, frames, crops = [], 0, {}, 0, 0
    cpu0, start = time.process_time(), time.perf_counter()
    while (frame := grabber.get(timeout=30)) is not None:
        frames += 1
        if naive:
            timings = Timings()
            t0 = time.perf_counter()
            found = identifier.identify_image(frame.image, timings=timings)
            crops += len(found)
            for f in found:
                if f.identification.product is not None:
                    identified += 1
                    latencies.append((time.perf_counter() - t0) * 1000)  # every frame pays the whole pipeline again
            for k, v in timings.ms.items():
                stage_ms.setdefault(k, []).append(v)
        else:
            pipeline.process(frame)
            shape = frame.image.shape
    elapsed = time.perf_counter() - start
    drain_s = 0.0
    if pipeline is not None:
        if frames:
            pipeline.finish(shape)  # identifications still in flight at the end of the video count, their wait does not
            drain_s = time.perf_counter() - start - elapsed
        identified, crops = pipeline.stats.identified, pipeline.stats.crops
        latencies = pipeline.stats.identify_latency_ms
        stage_ms = {k: list(v) for k, v in pipeline.stats.stage_ms.items()}
    return {"mode": mode, "video": str(video), "realtime": realtime, "frames": frames, "dropped_frames": grabber.dropped,
            "fps": round(frames / elapsed, 2), "drain_s": round(drain_s, 2),
            "identified": identified, "identify_latency_ms": percentiles(latencies),
            "crops": crops, "crops_per_s": round(crops / (elapsed + drain_s), 1),
            "stage_ms": {k: percentiles(v) for k, v in stage_ms.items()},
            "cpu_s": round(time.process_time() - cpu0, 1),
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def format_table(rows: list[dict]) -> str:
    """bench_pipeline's results as a markdown table, one row per mode (the README's tables are this output)."""
    lines = ["| mode | frames | dropped | processed FPS | identified | identify latency p50 / p95 ms | crops/s | CPU s | RSS MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat = r["identify_latency_ms"]
        lines.append(f"| {r['mode']} | {r['frames']} | {r['dropped_frames']} | {r['fps']} | {r['identified']} | "
                     f"{lat['p50']} / {lat['p95']} | {r['crops_per_s']} | {r['cpu_s']} | {r['rss_mb']} |")
    return "\n".join(lines)


def sample_catalog(config: Config, out: Path, catalog_id: str = "sample") -> Path:
    """The bundled sample catalog (samples/shelf-catalog), built into `out` with the config's models."""
    models = Models.open(config)
    detector, embedder, verifier = models.detector, models.embedder, models.verifier
    build_catalog(SAMPLE_CATALOG_IMAGES, out, embedder, verifier, detector, catalog_id)
    return out


def run_bench(config: Config, video: Path | None, catalog_dir: Path | None, modes: list[str], realtime: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        catalog = catalog_dir or sample_catalog(config, Path(tmp) / "catalog")
        return [bench_pipeline(config, video or SAMPLE_VIDEO, catalog, mode, realtime) for mode in modes]
