"""Deciding "identical" from the verifier's evidence.

Two rules behind one function, each the same for every kind of reference (packshot, tight crop, field photo):
- calibrated: one logistic score over several pieces of evidence — log inliers,
  inlier ratio, the inliers' spread over the catalog image, embedding similarity, the margin
  of this candidate's log inliers over the best other verified candidate, the margin of its
  similarity over the best other retrieved candidate, and the share of the reference's face
  whose colour the aligned query does not show (edge/core/appearance.py) — with weights and
  threshold fitted on several sources at once by tools/fit_decision.py and checked leave one
  source out. The candidate with the highest score wins, so of two siblings that both verify
  (same artwork, another colourway) the one whose colours fit wins, and none when none fits;
- thresholds (the default): inliers and inlier ratio over fixed minimums (the config's decision.min_*)
  and at most decision.max_differing of the face unlike the reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.config import DecisionConfig
from edge.core.errors import ShelfIDError
from edge.core.verifier import Match
from models.safe_write import write_json_atomic

# A candidate is clearly identical when it has many inliers AND they cover much of the reference. Look-alikes of
# one brand share a logo, which gives many inliers over a small area (measured: 63 inliers, spread 0.20 vs 166 and 0.69).
CLEAR_INLIERS = 60
CLEAR_SPREAD = 0.4

EVIDENCE = ("log_inliers", "inlier_ratio", "spread", "similarity", "margin", "similarity_margin", "differing")
EMBEDDING_EVIDENCE = ("similarity", "similarity_margin")
NOT_COMPARED = 1.0  # the differing share of a candidate the appearance check could not align: nothing shown alike
TIE = 0.01  # candidates this close in similarity to the last one verified are verified too: a fixed top-N split siblings


@dataclass(frozen=True)
class Thresholds:
    """The thresholds decision's values; the config's decision section sets them (its defaults: DecisionConfig)."""
    min_inliers: int
    min_inlier_ratio: float
    max_differing: float  # share of the reference's face unlike the aligned query (edge.core.appearance)

    @staticmethod
    def of(decision: DecisionConfig) -> Thresholds:
        """The config's values; max_differing null (no appearance check) lets any differing share pass."""
        return Thresholds(decision.min_inliers, decision.min_inlier_ratio,
                          float("inf") if decision.max_differing is None else decision.max_differing)


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """What the decision reads of one verified candidate: the verifier's geometry, and how much of the reference's
    face the aligned crop does not show (edge.core.appearance; None: not compared — another image of the product,
    too few inliers, or the check is off)."""
    match: Match
    differing: float | None = None
    image: int | None = None  # the reference image `match` is against (edge.core.identify's numbering); None: none
    query_size: tuple[int, int] | None = None  # the crop as the verifier saw it: the frame `match.transform` maps from

    @property
    def differing_or_unseen(self) -> float:
        """The differing share, NOT_COMPARED when none was measured (for ranking and the fitted score)."""
        return NOT_COMPARED if self.differing is None else self.differing

    @staticmethod
    def none() -> Evidence:
        return Evidence(match=Match.none())


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


def evidence_rows(verified: list[Evidence], similarities: list[float]) -> np.ndarray:
    """[candidates x len(EVIDENCE)] rows for the verified candidates of one query.

    `similarities`: of every retrieved candidate, in order (the first len(verified) were verified).
    """
    log_inliers = np.log1p([e.match.inliers for e in verified])
    sims = np.asarray(similarities, np.float64)
    rows = []
    for i, e in enumerate(verified):
        others = np.delete(log_inliers, i)
        margin = log_inliers[i] - (others.max() if len(others) else 0.0)
        other_sims = np.delete(sims, i)
        # no other product retrieved (a catalog of one or two): no margin, rather than the similarity itself,
        # which made a one-product catalog name every bottle on the shelf (measured: false id 1.0 on shelf frames)
        sim_margin = sims[i] - other_sims.max() if len(other_sims) else 0.0
        rows.append((log_inliers[i], e.match.inlier_ratio, e.match.spread, sims[i], margin, sim_margin, e.differing_or_unseen))
    return np.asarray(rows, np.float64).reshape(-1, len(EVIDENCE))


def verified_count(similarities: list[float], candidates: int) -> int:
    """How many of the retrieved candidates (best first) to verify: `candidates`, and any that tie with the last of them."""
    n = min(candidates, len(similarities))
    while 0 < n < len(similarities) and similarities[n] >= similarities[n - 1] - TIE:
        n += 1
    return n


def keypoints_agree(match: Match, thresholds: Thresholds) -> bool:
    """Enough inliers, at a high enough ratio, to show the reference's artwork: the first half of `passes`."""
    return match.inliers >= thresholds.min_inliers and match.inlier_ratio >= thresholds.min_inlier_ratio


def passes(evidence: Evidence, thresholds: Thresholds) -> bool:
    differing = evidence.differing
    return keypoints_agree(evidence.match, thresholds) and (differing is None or differing <= thresholds.max_differing)


def is_clear(evidence: Evidence, thresholds: Thresholds) -> bool:
    """Many inliers covering much of the reference, and identical by the thresholds."""
    return evidence.match.inliers >= CLEAR_INLIERS and evidence.match.spread >= CLEAR_SPREAD and passes(evidence, thresholds)


def choose(verified: list[Evidence], similarities: list[float], thresholds: Thresholds,
           calibration: Calibration | None) -> tuple[int, bool, float]:
    """(index of the best verified candidate, whether it is identical, its score).

    `similarities`: of every retrieved candidate; verified[i] belongs to the i-th.
    """
    if not verified:
        return 0, False, 0.0
    if calibration is not None:
        p = calibration.probability(evidence_rows(verified, similarities))
        best = int(np.argmax(p))
        return best, bool(p[best] >= calibration.threshold), float(p[best])
    # Among candidates that pass, the one whose colours fit best: siblings of one line share their artwork and
    # verify alike (SIFT sees grey); more inliers break a tie
    passing = [i for i, e in enumerate(verified) if passes(e, thresholds)]
    if not passing:
        return 0, False, 0.0
    return min(passing, key=lambda i: (verified[i].differing_or_unseen, -verified[i].match.inliers)), True, 1.0


# Why a crop came back unknown, for the people who act on it (`shelfid detect --json`, the benchmarks):
SMALL = "small"  # no candidate's keypoints agree, and the crop is under SMALL_PX: too small to verify, not proof of absence
NO_MATCH = "no_match"  # no candidate's keypoints agree: another product, or too blurred to tell
PARTLY_VISIBLE = "partly_visible"  # keypoints agree, but the aligned crop covers too little of the face to compare colours
COLOURS_DIFFER = "colours_differ"  # keypoints agree, colours do not: a look-alike, another edition, or a cover
UNDECIDED = "undecided"  # the fitted score's verdict (decision.kind calibrated): no rule to point at
NO_CANDIDATES = "no_candidates"  # an empty catalog
# the crop's longer side. Measured on the transfer benchmark (2026-12-07, SIFT, every source): of crops whose
# longer side was under 60 px 0 of 23 were named, 60-80 px 1 of 16, 80-100 px 3 of 16, over 120 px 90 of 263
SMALL_PX = 80


def unknown_reason(verified: list[Evidence], thresholds: Thresholds, crop_size: tuple[int, int] | None,
                   calibration: Calibration | None = None) -> str:
    """Why none of the verified candidates is identical, read off the one with the most inliers. `crop_size`: the
    crop's (width, height); None: not known, so never `small`."""
    if calibration is not None:
        return UNDECIDED
    best = max(verified, key=lambda e: e.match.inliers, default=Evidence.none())
    if not keypoints_agree(best.match, thresholds):
        return SMALL if crop_size is not None and max(crop_size) < SMALL_PX else NO_MATCH
    return PARTLY_VISIBLE if best.differing_or_unseen >= NOT_COMPARED else COLOURS_DIFFER


def load_calibration(path: Path) -> Calibration:
    """A calibration file; its weights are read by the evidence names it lists (a file fitted before a piece of
    evidence existed gives that piece weight 0)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        names = list(data.get("evidence", EVIDENCE[:len(data["weights"])]))
        weights = dict(zip(names, (float(w) for w in data["weights"]), strict=True))
        calibration = Calibration(tuple(weights.pop(name, 0.0) for name in EVIDENCE), float(data["bias"]), float(data["threshold"]),
                                  str(data["verifier_id"]), str(data.get("note", "")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ShelfIDError(f"{path}: not a decision calibration file: {exc}") from None
    if weights:
        raise ShelfIDError(f"{path}: evidence this version does not know: {', '.join(weights)} (known: {', '.join(EVIDENCE)})")
    return calibration


def save_calibration(path: Path, calibration: Calibration) -> None:
    write_json_atomic(path, {"evidence": list(EVIDENCE), "weights": list(calibration.weights), "bias": calibration.bias,
                             "threshold": calibration.threshold, "verifier_id": calibration.verifier_id, "note": calibration.note})
