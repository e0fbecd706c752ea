"""Deciding "identical" from the verifier's evidence: both rules, the evidence rows, calibration files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.core.decision import (
    EVIDENCE,
    NOT_COMPARED,
    Calibration,
    Evidence,
    Thresholds,
    choose,
    evidence_rows,
    load_calibration,
    passes,
    save_calibration,
    verified_count,
)
from edge.core.errors import ShelfIDError
from edge.core.verifier import Match

T = Thresholds(min_inliers=20, min_inlier_ratio=0.2, max_differing=0.1)


def seen(matches: int, inliers: int, inlier_ratio: float, spread: float, differing: float | None = None) -> Evidence:
    return Evidence(match=Match(matches=matches, inliers=inliers, inlier_ratio=inlier_ratio, spread=spread), differing=differing)


def test_colour_then_inliers_decide_among_passing_candidates():
    matches = [seen(100, 30, 0.3, 0.2, differing=0.02), seen(100, 50, 0.5, 0.2, differing=0.06), seen(100, 5, 0.05, 0.1)]
    assert choose(matches, [0.9, 0.8, 0.7], T, None) == (0, True, 1.0)  # fewer inliers, but its colours fit best
    matches = [seen(100, 30, 0.3, 0.2, differing=0.02), seen(100, 50, 0.5, 0.2, differing=0.02)]
    assert choose(matches, [0.9, 0.8], T, None) == (1, True, 1.0)


def test_a_clear_candidate_beats_an_unclear_one_ranked_above_it():
    matches = [seen(100, 30, 0.3, 0.2), seen(200, 166, 0.8, 0.69)]
    assert choose(matches, [0.9, 0.8], T, None)[:2] == (1, True)


def test_nothing_passing_is_unknown():
    matches = [seen(100, 19, 0.5, 0.5), seen(100, 40, 0.1, 0.5)]
    assert choose(matches, [0.9, 0.8], T, None)[1] is False
    assert choose([], [], T, None) == (0, False, 0.0)


def test_similarity_margin_is_taken_over_every_retrieved_candidate():
    # two verified candidates out of four retrieved; the margin of the second is against the first
    rows = evidence_rows([seen(50, 25, 0.5, 0.3), seen(40, 10, 0.25, 0.1)], [0.90, 0.85, 0.80, 0.70])
    assert rows.shape == (2, len(EVIDENCE))
    margin = rows[:, EVIDENCE.index("similarity_margin")]
    assert margin == pytest.approx([0.05, -0.05])
    assert rows[:, EVIDENCE.index("margin")] == pytest.approx([np.log1p(25) - np.log1p(10), np.log1p(10) - np.log1p(25)])


def test_calibrated_rule_picks_the_most_probable_and_applies_its_threshold():
    # weight on similarity only: the most similar verified candidate, identical above the threshold
    weights = tuple(10.0 if name == "similarity" else 0.0 for name in EVIDENCE)
    calibration = Calibration(weights, -8.0, 0.5, "sift-test")
    matches = [seen(10, 5, 0.5, 0.1), seen(10, 5, 0.5, 0.1)]
    best, identical, p = choose(matches, [0.7, 0.9], T, calibration)
    assert (best, identical) == (1, True) and p == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert choose(matches, [0.6, 0.7], T, calibration)[1] is False  # 1 / (1 + e) < 0.5


def test_calibration_file_round_trip(tmp_path):
    path = tmp_path / "decision.json"
    calibration = Calibration(tuple(float(i) for i in range(len(EVIDENCE))), -1.5, 0.9, "sift-test", "note")
    save_calibration(path, calibration)
    assert load_calibration(path) == calibration


def test_a_calibration_fitted_before_a_piece_of_evidence_existed_gives_it_weight_0(tmp_path):
    path = tmp_path / "old.json"
    old = ["log_inliers", "inlier_ratio", "spread", "similarity", "margin", "similarity_margin"]
    path.write_text(json.dumps({"evidence": old, "weights": [0, 0, 0, 19.5, 0, 55.3], "bias": -17.0, "threshold": 0.99, "verifier_id": "sift"}))
    calibration = load_calibration(path)
    assert dict(zip(EVIDENCE, calibration.weights)) == dict.fromkeys(EVIDENCE, 0.0) | {"similarity": 19.5, "similarity_margin": 55.3}


def test_a_calibration_naming_evidence_this_version_does_not_know_is_refused(tmp_path):
    path = tmp_path / "new.json"
    path.write_text(json.dumps({"evidence": [*EVIDENCE, "hologram"], "weights": [1.0] * (len(EVIDENCE) + 1), "bias": 0.0,
                                "threshold": 0.5, "verifier_id": "sift"}))
    with pytest.raises(ShelfIDError, match="evidence this version does not know: hologram"):
        load_calibration(path)


@pytest.mark.parametrize("text", ["", "{", "[]", '{"weights": [1], "bias": "x"}',
                                  '{"evidence": ["similarity"], "weights": [1, 2], "bias": 0, "threshold": 0.5, "verifier_id": "s"}'])
def test_broken_calibration_file_is_a_clear_error(tmp_path, text):
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(ShelfIDError, match="not a decision calibration file"):
        load_calibration(path)


def test_a_calibration_without_keypoint_weights_says_so():
    weights = dict.fromkeys(EVIDENCE, 0.0)
    weights |= {"similarity": 19.5, "similarity_margin": 55.3}
    assert not Calibration(tuple(weights.values()), -17.0, 0.99, "sift").uses_keypoints
    weights["spread"] = 0.1
    assert Calibration(tuple(weights.values()), -17.0, 0.99, "sift").uses_keypoints


def test_a_single_retrieved_candidate_has_no_similarity_margin():
    # a margin over nothing once equalled the similarity itself, and a one-product catalog named every bottle
    rows = evidence_rows([seen(50, 25, 0.5, 0.3)], [0.9])
    assert rows[0, EVIDENCE.index("similarity_margin")] == 0.0


def test_a_face_unlike_the_reference_fails_the_thresholds_however_many_inliers():
    assert passes(seen(200, 150, 0.9, 0.7, differing=0.05), T)
    assert not passes(seen(200, 150, 0.9, 0.7, differing=0.6), T)
    assert passes(seen(200, 150, 0.9, 0.7), T)  # not compared (another image of the product): the counts decide


def test_a_match_is_geometry_only_and_built_by_keyword():
    # the colour comparison is the decision's evidence, not the verifier's result; positional fields would shift silently
    assert "differing" not in Match.__dataclass_fields__
    with pytest.raises(TypeError):
        Match(100, 40, 0.4, 0.2)


def test_the_calibrated_rule_is_the_same_for_every_kind_of_reference_and_colour_picks_among_siblings():
    # two siblings verify alike (same artwork); the one whose colours fit wins, and none when neither fits
    weights = dict.fromkeys(EVIDENCE, 0.0) | {"log_inliers": 2.0, "differing": -20.0}
    calibration = Calibration(tuple(weights.values()), -4.0, 0.5, "sift-test")
    twin, right = seen(100, 90, 0.6, 0.5, differing=0.7), seen(100, 85, 0.6, 0.5, differing=0.05)
    assert choose([twin, right], [0.91, 0.90], T, calibration)[:2] == (1, True)
    assert choose([twin], [0.91], T, calibration)[1] is False  # its twin left out of the catalog: open set
    rows = evidence_rows([seen(100, 10, 0.2, 0.1)], [0.9])
    assert rows[0, EVIDENCE.index("differing")] == NOT_COMPARED  # no alignment: nothing shown alike


def test_candidates_that_tie_with_the_last_one_verified_are_verified_too():
    assert verified_count([0.95, 0.914, 0.913, 0.912, 0.80], 3) == 4
    assert verified_count([0.95, 0.90, 0.85, 0.80], 3) == 3
    assert verified_count([0.9, 0.9], 3) == 2
    assert verified_count([], 3) == 0
