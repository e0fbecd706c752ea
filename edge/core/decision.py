"""Deciding "identical" from the verifier's evidence.

Two rules behind one function:
- thresholds: inliers and inlier ratio over fixed minimums (the config's verifier.min_*)
  and, where the reference could be compared after alignment, no region unlike it
  (verifier.max_appearance, edge/core/appearance.py);
- calibrated (the default): against a packshot reference, one logistic score over several
  pieces of evidence — log inliers, inlier ratio, the inliers' spread over the catalog
  image, embedding similarity, the margin of this candidate's log inliers over the best
  other verified candidate, and the margin of its similarity over the best other
  retrieved candidate — with weights and threshold fitted by tools/calibrate.py (on
  store photos against web packshots the embedding separates look-alikes better than
  keypoints do); against a reference photographed in the field, the thresholds rule,
  which measured better on shelf frames than any score fitted so far (README).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.errors import ShelfIDError
from edge.core.verifier import Match
from models.safe_write import write_json_atomic

# A candidate is clearly identical when it is far over the inlier threshold AND its inliers cover
# much of the reference. Look-alikes of one brand share a logo, which gives many inliers over a
# small area (measured: 63 inliers, spread 0.20 vs 166 and 0.69).
STRONG = 3
STRONG_SPREAD = 0.4

EVIDENCE = ("log_inliers", "inlier_ratio", "spread", "similarity", "margin", "similarity_margin")
EMBEDDING_EVIDENCE = ("similarity", "similarity_margin")


@dataclass(frozen=True)
class Thresholds:
    min_inliers: int = 20
    min_inlier_ratio: float = 0.2
    max_appearance: float = 7.0  # edge.core.appearance's worst-region chroma difference (Lab units) after alignment


@dataclass(frozen=True)
class Calibration:
    weights: tuple[float, ...]  # one per EVIDENCE entry
    bias: float
    threshold: float  # probability above which a candidate is identical
    verifier_id: str
    note: str = ""

    @property
    def uses_keypoints(self) -> bool:
        """False when the fitted score leaves out every piece of keypoint evidence (then nothing needs verifying)."""
        return any(w != 0 for name, w in zip(EVIDENCE, self.weights) if name not in EMBEDDING_EVIDENCE)

    def probability(self, evidence: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(evidence @ np.asarray(self.weights) + self.bias)))


def evidence(matches: list[Match], similarities: list[float]) -> np.ndarray:
    """[candidates x len(EVIDENCE)] evidence rows for the verified candidates of one query.

    `similarities`: of every retrieved candidate, in order (the first len(matches) were verified).
    """
    log_inliers = np.log1p([m.inliers for m in matches])
    sims = np.asarray(similarities, np.float64)
    rows = []
    for i, m in enumerate(matches):
        others = np.delete(log_inliers, i)
        margin = log_inliers[i] - (others.max() if len(others) else 0.0)
        other_sims = np.delete(sims, i)
        # no other product retrieved (a catalog of one or two): no margin, rather than the similarity itself,
        # which made a one-product catalog name every bottle on the shelf (measured: false id 1.0 on shelf frames)
        sim_margin = sims[i] - other_sims.max() if len(other_sims) else 0.0
        rows.append((log_inliers[i], m.inlier_ratio, m.spread, sims[i], margin, sim_margin))
    return np.asarray(rows, np.float64).reshape(-1, len(EVIDENCE))


def passes(match: Match, thresholds: Thresholds) -> bool:
    alike = match.appearance is None or match.appearance <= thresholds.max_appearance
    return match.inliers >= thresholds.min_inliers and match.inlier_ratio >= thresholds.min_inlier_ratio and alike


def is_clear(match: Match, thresholds: Thresholds) -> bool:
    """Far over the inlier threshold, with inliers covering much of the reference."""
    return match.inliers >= STRONG * thresholds.min_inliers and match.spread >= STRONG_SPREAD and passes(match, thresholds)


def choose(matches: list[Match], similarities: list[float], thresholds: Thresholds,
           calibration: Calibration | None) -> tuple[int, bool, float]:
    """(index of the best verified candidate, whether it is identical, its score).

    `similarities`: of every retrieved candidate; matches[i] belongs to the i-th.
    """
    if not matches:
        return 0, False, 0.0
    if calibration is not None:
        # the fitted score for packshot references, the verified thresholds for references photographed in the
        # field: on shelf frames the score fitted on store photos named look-alikes the thresholds refuse (README)
        p = calibration.probability(evidence(matches, similarities))
        ok = [passes(m, thresholds) if m.photographed else p[i] >= calibration.threshold for i, m in enumerate(matches)]
        passing = sorted((i for i in range(len(matches)) if ok[i]), key=lambda i: (not is_clear(matches[i], thresholds), -p[i]))
        best = passing[0] if passing else int(np.argmax(p))
        return best, bool(passing), float(p[best])
    # Retrieval order decides among candidates that pass: on store photos the embedding ranks
    # look-alikes better than their inlier counts do (val, packaged: top-1 0.65 vs 0.57, wrong
    # 0.06 vs 0.14 when the most inliers won). A clearly identical candidate still beats an unclear one.
    passing = [i for i, m in enumerate(matches) if passes(m, thresholds)]
    if not passing:
        return 0, False, 0.0
    clear = [i for i in passing if is_clear(matches[i], thresholds)]
    return (clear or passing)[0], True, 1.0


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
    write_json_atomic(path, {"evidence": list(EVIDENCE), "weights": list(calibration.weights), "bias": calibration.bias,
                             "threshold": calibration.threshold, "verifier_id": calibration.verifier_id, "note": calibration.note})
