"""Per-model latency: median and p95 per batch size and thread count."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.backends import BackendOptions, open_backend


@dataclass(frozen=True)
class LatencyRow:
    model: str
    backend: str
    precision: str
    input_size: int
    batch: int
    threads: int
    p50_ms: float
    p95_ms: float
    per_image_ms: float


def _input_array(backend, batch: int) -> np.ndarray:
    spec = backend.inputs[0]
    size = int(backend.metadata.get("input_size") or spec.shape[2])
    return np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)


def bench_model(path: Path, backend_name: str, precision: str, batches: list[int], threads: list[int],
                repeats: int = 20, warmup: int = 3) -> list[LatencyRow]:
    rows = []
    for n_threads in threads:
        backend = open_backend(path, backend_name, BackendOptions(threads=n_threads, precision=precision))
        fixed = backend.inputs[0].shape[0]
        for batch in batches:
            if isinstance(fixed, int) and batch != fixed:
                continue  # a static-batch export (the detector) runs batch 1 only
            feed = {backend.inputs[0].name: _input_array(backend, batch)}
            for _ in range(warmup):
                backend.run(feed)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                backend.run(feed)
                times.append((time.perf_counter() - start) * 1000)
            p50 = float(np.median(times))
            rows.append(LatencyRow(Path(path).name, backend.name, precision, feed[backend.inputs[0].name].shape[2], batch,
                                   n_threads, round(p50, 2), round(float(np.percentile(times, 95)), 2), round(p50 / batch, 2)))
    return rows


def format_table(rows: list[LatencyRow]) -> str:
    header = "| model | backend | precision | input | batch | threads | p50 ms | p95 ms | ms/image |"
    lines = [header, "|" + "---|" * 9]
    lines += [f"| {r.model} | {r.backend} | {r.precision} | {r.input_size} | {r.batch} | {r.threads} | "
              f"{r.p50_ms} | {r.p95_ms} | {r.per_image_ms} |" for r in rows]
    return "\n".join(lines)


def rows_as_dicts(rows: list[LatencyRow]) -> list[dict]:
    return [asdict(r) for r in rows]
