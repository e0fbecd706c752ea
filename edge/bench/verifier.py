"""`shelfid bench verifier`: what a verifier costs per crop on this machine: features of one image, one match against
a reference, and the keypoints it finds; each verifier on the same real crops, in the runtime's default threads.

The second opinion makes features once per asked crop and matches them against up to three references per candidate,
so its cost per crop is about features + 3 x candidates x match.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.core.config import VerifierConfig
from edge.core.images import IMAGE_SUFFIXES, read_image
from edge.core.verifier import open_verifier


@dataclass(frozen=True)
class VerifierRow:
    verifier: str  # the kind, and where it runs
    features_ms_p50: float
    features_ms_p95: float
    match_ms_p50: float
    match_ms_p95: float
    keypoints_p50: int
    matches_p50: int  # correspondences the matcher kept per pair, before RANSAC
    images: int


def crops_in(folder: Path) -> list[np.ndarray]:
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) < 2:
        raise ValueError(f"{folder}: needs at least two images (crops of products), found {len(paths)}")
    return [read_image(p) for p in paths]


def bench_verifier(label: str, config: VerifierConfig, images: list[np.ndarray], repeats: int = 5) -> VerifierRow:
    """Each image's features `repeats` times, and each image matched against the next `repeats` times (one warm-up
    each, untimed)."""
    verifier = open_verifier(config)
    features = [verifier.features(image) for image in images]  # warm-up: first calls allocate
    verifier.match(features[0], features[1])
    extract, match, kept = [], [], []
    for _ in range(repeats):
        for image in images:
            started = time.perf_counter()
            verifier.features(image)
            extract.append(time.perf_counter() - started)
        for query, reference in zip(features, features[1:] + features[:1]):
            started = time.perf_counter()
            found = verifier.match(query, reference)
            match.append(time.perf_counter() - started)
            kept.append(found.matches)
    ms = lambda values, q: round(float(np.percentile(values, q)) * 1000, 1)  # noqa: E731
    return VerifierRow(label, ms(extract, 50), ms(extract, 95), ms(match, 50), ms(match, 95),
                       int(np.median([len(f.keypoints) for f in features])), int(np.median(kept)), len(images))


def format_rows(rows: list[VerifierRow]) -> str:
    lines = [f"{'verifier':34s} {'features p50/p95 ms':>20s} {'match p50/p95 ms':>17s} {'keypoints':>9s} {'matches':>7s}"]
    lines += [f"{r.verifier:34s} {r.features_ms_p50:>9.1f} / {r.features_ms_p95:<8.1f} {r.match_ms_p50:>7.1f} / "
              f"{r.match_ms_p95:<7.1f} {r.keypoints_p50:>9d} {r.matches_p50:>7d}" for r in rows]
    return "\n".join(lines)


def rows_as_dicts(rows: list[VerifierRow]) -> list[dict]:
    return [asdict(r) for r in rows]
