#!/usr/bin/env python3
"""Fit the decision on several transfer sources at once, checked leave one source out.

    python -m tools.evaluate_transfer --config tools/collect-evidence.yaml --out eval-out/transfer/evidence.jsonl
    python -m tools.fit_decision --records eval-out/transfer/evidence.jsonl [--out decision.json] [--json]

The records (python -m tools.evaluate_transfer --out, collected with every retrieved candidate verified) hold each
instance's candidates and their evidence; this tool replays the runtime's decision on them
(edge.core.decision.choose, on the candidates a device would verify), so a fitted rule is judged exactly as a
device would decide.

Two families are fitted and reported side by side:
- thresholds: min_inliers, min_inlier_ratio and max_differing, chosen from a grid as the values with the best
  mean recall over the fitting sources among those that keep every fitting source's wrong + open-set false
  identification, and its share of left-out look-alikes named as their sibling, at most --max-error;
- calibrated: a logistic regression over the evidence rows of every verified candidate (label: it is the
  instance's product), each source weighing the same, for several evidence sets; its threshold the lowest score
  at which every fitting source keeps wrong + false identification at most --max-error.
Leave one source out: for each source, fit on the others, measure on it. The tables printed are those held-out
figures; the values (and --out's calibration file) are fitted on every source.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge.core.decision import EVIDENCE, Calibration, Evidence, Thresholds, choose, evidence_rows, save_calibration, verified_count
from edge.core.verifier import Match
from tools.evaluate_transfer import summarise

# nested evidence sets for the calibrated family: what each kind of evidence adds where it was not fitted
EVIDENCE_SETS = {
    "embedding": ("similarity", "similarity_margin"),
    "keypoints+colour": ("log_inliers", "inlier_ratio", "spread", "margin", "differing"),
    "all": EVIDENCE,
}
UNUSED = Thresholds(0, 0.0, 1.0)  # the calibrated decision reads no thresholds
GRID = {"min_inliers": (6, 8, 10, 12, 15, 20), "min_inlier_ratio": (0.0, 0.1, 0.2, 0.3),
        "max_differing": (0.01, 0.015, 0.02, 0.025, 0.03, 0.05, 0.08, 0.12, 0.2)}


@dataclass(frozen=True)
class Row:
    record: dict
    verified: list[Evidence]  # of the candidates a device verifies
    similarities: list[float]  # of every retrieved candidate
    products: list[str]
    labels: np.ndarray  # per verified candidate: it is the instance's product


def row(record: dict, candidates: int) -> Row:
    cands = record["candidates"]
    sims = [c["similarity"] for c in cands]
    n = min(verified_count(sims, candidates), sum(c["verified"] for c in cands))
    verified = [Evidence(match=Match(matches=0, inliers=c["inliers"], inlier_ratio=c["inlier_ratio"], spread=c["spread"]),
                         differing=c.get("differing")) for c in cands[:n]]
    labels = np.array([record["in_catalog"] and c["product"] == record["truth"] for c in cands[:n]], float)
    return Row(record, verified, sims, [c["product"] for c in cands[:n]], labels)


def named(rows: list[Row], thresholds: Thresholds, calibration: Calibration | None) -> list[dict]:
    """The records with what the runtime's decision names."""
    out = []
    for r in rows:
        best, identical, _ = choose(r.verified, r.similarities, thresholds, calibration)
        out.append(r.record | {"named": r.products[best] if identical else None})
    return out


def error(summary: dict) -> float:
    """Wrong + open-set false identification, or the share of left-out look-alikes named as their sibling if higher:
    the look-alike case is rare in a source's open set but is the one the decision exists for."""
    return max((summary["wrong"] or 0.0) + (summary["false_id"] or 0.0), summary["twin_false_id"] or 0.0)


def mean_recall(report: dict) -> float:
    return float(np.mean([s["recall"] or 0.0 for s in report.values()]))


def fit_thresholds(rows: list[Row], max_error: float) -> Thresholds:
    """The grid's values with the best mean recall among those keeping every source within max_error (else the safest)."""
    scored = []
    for k, ratio, differing in itertools.product(*GRID.values()):
        thresholds = Thresholds(k, ratio, differing)
        report = summarise(named(rows, thresholds, None))
        worst = max(error(s) for s in report.values())
        scored.append((worst > max_error, -mean_recall(report) if worst <= max_error else worst, -k, thresholds))
    return min(scored, key=lambda s: s[:3])[3]


def fit_weighted(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-2, steps: int = 60) -> tuple[np.ndarray, float]:
    """Newton's method on the sample-weighted, L2-regularised log loss; returns weights and bias."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(xb.shape[1])
    reg = l2 * np.eye(len(beta))
    reg[-1, -1] = 0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(xb @ beta, -30, 30)))
        grad = xb.T @ (w * (p - y)) + reg @ beta
        hess = xb.T @ (xb * (w * p * (1 - p))[:, None]) + reg
        beta -= np.linalg.solve(hess, grad)
    return beta[:-1], float(beta[-1])


def fit_calibration(rows: list[Row], used: tuple[str, ...], max_error: float, verifier_id: str) -> Calibration:
    """Logistic weights over the `used` evidence (sources weighed alike), and the threshold that keeps every source
    within max_error."""
    with_verified = [r for r in rows if r.verified]
    per_source: dict[str, int] = {}
    for r in with_verified:
        per_source[r.record["source"]] = per_source.get(r.record["source"], 0) + len(r.verified)
    x = np.vstack([evidence_rows(r.verified, r.similarities) for r in with_verified])
    y = np.concatenate([r.labels for r in with_verified])
    w = np.concatenate([np.full(len(r.verified), 1.0 / per_source[r.record["source"]]) for r in with_verified])
    w *= len(w) / w.sum()
    keep = np.array([name in used for name in EVIDENCE])
    mean, scale = x[:, keep].mean(0), x[:, keep].std(0) + 1e-9
    beta, bias = fit_weighted((x[:, keep] - mean) / scale, y, w)
    weights = np.zeros(len(EVIDENCE))
    weights[keep] = beta / scale
    calibration = Calibration(tuple(float(v) for v in weights), bias - float(np.sum(beta * mean / scale)), 1.0, verifier_id)
    scores = sorted({round(float(calibration.probability(evidence_rows(r.verified, r.similarities)).max()), 6) for r in with_verified})
    for t in [*scores, 1.0]:
        probe = Calibration(calibration.weights, calibration.bias, t, verifier_id)
        if all(error(s) <= max_error for s in summarise(named(rows, UNUSED, probe)).values()):
            return probe
    return calibration


def leave_one_out(rows: list[Row], fit) -> dict:
    """Per source: its figures under a decision fitted on the other sources (`fit(rows) -> (thresholds, calibration)`)."""
    report = {}
    for held in tqdm(list(dict.fromkeys(r.record["source"] for r in rows)), desc="leave one source out", leave=False, disable=None):
        thresholds, calibration = fit([r for r in rows if r.record["source"] != held])
        report[held] = summarise(named([r for r in rows if r.record["source"] == held], thresholds, calibration))[held]
    return report


def table(report: dict) -> str:
    lines = ["| source | recall | wrong | sibling | open-set false id | look-alike named as its sibling | right/catalog · named/open |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {s['recall']} | {s['wrong']} | {s['sibling']} | {s['false_id']} | {s['twin_false_id']} | "
              f"{s['right']}/{s['catalog_instances']} · {s['false_id_n']}/{s['open_instances']} |" for name, s in report.items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, required=True,
                        help="records written by python -m tools.evaluate_transfer --out, every candidate verified")
    parser.add_argument("--candidates", type=int, default=20, help="candidates verified, as the config's verifier.still_candidates "
                        "(the benchmark's instances are judged as stills; a track verifies verifier.candidates, 3)")
    parser.add_argument("--max-error", type=float, default=0.01,
                        help="wrong + false identification (and look-alikes named as their sibling) allowed per fitting source")
    parser.add_argument("--verifier-id", default="sift-n1024-s512-up", help="the verifier the records were collected with")
    parser.add_argument("--out", type=Path, help="write the calibrated decision fitted on every source (all evidence)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    records = [json.loads(line) for line in args.records.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [row(r, args.candidates) for r in records]
    families = {"thresholds": lambda fitting: (fit_thresholds(fitting, args.max_error), None)}
    for name, used in EVIDENCE_SETS.items():
        families[f"calibrated ({name})"] = lambda fitting, used=used: (UNUSED, fit_calibration(fitting, used, args.max_error,
                                                                                                        args.verifier_id))
    report = {name: leave_one_out(rows, fit) for name, fit in families.items()}
    thresholds = fit_thresholds(rows, args.max_error)
    calibration = fit_calibration(rows, EVIDENCE, args.max_error, args.verifier_id)
    sources = ", ".join(report["thresholds"])
    calibration = Calibration(calibration.weights, calibration.bias, calibration.threshold, args.verifier_id,
                              f"fitted by tools/fit_decision.py on {sources} (max error {args.max_error}); leave-one-source-out "
                              "recall/wrong/false id: " + "; ".join(f"{k} {s['recall']}/{s['wrong']}/{s['false_id']}"
                                                                    for k, s in report["calibrated (all)"].items()))
    if args.out:
        save_calibration(args.out, calibration)
    fitted = {"thresholds": {"min_inliers": thresholds.min_inliers, "min_inlier_ratio": thresholds.min_inlier_ratio,
                             "max_differing": thresholds.max_differing},
              "calibration": {"weights": dict(zip(EVIDENCE, calibration.weights)), "bias": calibration.bias,
                              "threshold": calibration.threshold}}
    if args.json:
        print(json.dumps({"leave_one_source_out": report, "fitted_on_every_source": fitted}))
        return 0
    for name, per_source in report.items():
        print(f"\n{name}: each source measured with the decision fitted on the others\n{table(per_source)}")
    print(f"\nfitted on every source: thresholds {fitted['thresholds']}; calibrated threshold {calibration.threshold:.4f}, weights "
          + ", ".join(f"{k} {v:+.3g}" for k, v in zip(EVIDENCE, calibration.weights)) + f", bias {calibration.bias:+.3g}")
    if args.out:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
