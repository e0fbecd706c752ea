"""Deciding "identical" from the verifier's evidence.

Two rules behind one function:
- thresholds: inliers and inlier ratio over fixed minimums (the config's verifier.min_*);
- calibrated: one logistic score over several pieces of evidence, because the raw
  inlier count alone does not separate look-alikes of one brand (a shared logo
  gives many inliers over a small area). Evidence: log inliers, inlier ratio, the
  inliers' spread over the catalog image, embedding similarity, and the margin
  of this candidate's log inliers over the best other verified candidate. Weights
  are fitted by tools/calibrate.py on train photos and the threshold chosen on val.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ShelfIDError
from edge.verifier import Match

EVIDENCE = ("log_inliers", "inlier_ratio", "spread", "similarity", "margin")


@dataclass(frozen=True)
class Thresholds:
    min_inliers: int = 20
    min_inlier_ratio: float = 0.2


@dataclass(frozen=True)
class Calibration:
    weights: tuple[float, ...]  # one per EVIDENCE entry
    bias: float
    threshold: float  # probability above which a candidate is identical
    verifier_id: str
    note: str = ""

    def probability(self, evidence: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(evidence @ np.asarray(self.weights) + self.bias)))


def evidence(matches: list[Match], similarities: list[float]) -> np.ndarray:
    """[candidates x len(EVIDENCE)] evidence rows for the verified candidates of one query."""
    log_inliers = np.log1p([m.inliers for m in matches])
    rows = []
    for i, (m, sim) in enumerate(zip(matches, similarities)):
        others = np.delete(log_inliers, i)
        margin = log_inliers[i] - (others.max() if len(others) else 0.0)
        rows.append((log_inliers[i], m.inlier_ratio, m.spread, sim, margin))
    return np.asarray(rows, np.float64).reshape(-1, len(EVIDENCE))


def passes(match: Match, thresholds: Thresholds) -> bool:
    return match.inliers >= thresholds.min_inliers and match.inlier_ratio >= thresholds.min_inlier_ratio


def choose(matches: list[Match], similarities: list[float], thresholds: Thresholds,
           calibration: Calibration | None) -> tuple[int, bool, float]:
    """(index of the best verified candidate, whether it is identical, its score)."""
    if not matches:
        return 0, False, 0.0
    if calibration is not None:
        p = calibration.probability(evidence(matches, similarities))
        best = int(np.argmax(p))
        return best, bool(p[best] >= calibration.threshold), float(p[best])
    passing = [i for i, m in enumerate(matches) if passes(m, thresholds)]
    if not passing:
        return 0, False, 0.0
    best = max(passing, key=lambda i: (matches[i].inliers, similarities[i]))
    return best, True, 1.0


def load_calibration(path: Path) -> Calibration:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        calibration = Calibration(tuple(float(w) for w in data["weights"]), float(data["bias"]), float(data["threshold"]),
                                  str(data["verifier_id"]), str(data.get("note", "")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ShelfIDError(f"{path}: not a decision calibration file: {exc}") from None
    if len(calibration.weights) != len(EVIDENCE):
        raise ShelfIDError(f"{path}: expected {len(EVIDENCE)} weights ({', '.join(EVIDENCE)}), found {len(calibration.weights)}")
    return calibration


def save_calibration(path: Path, calibration: Calibration) -> None:
    Path(path).write_text(json.dumps({"evidence": list(EVIDENCE), "weights": list(calibration.weights), "bias": calibration.bias,
                                      "threshold": calibration.threshold, "verifier_id": calibration.verifier_id,
                                      "note": calibration.note}, indent=1) + "\n")
