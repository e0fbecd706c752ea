#!/usr/bin/env python3
"""Fit the calibrated "identical" decision on val photos, with cross-validated numbers.

    python tools/calibrate.py --data ../shared/data/grocery [--config C] [--out FILE]

For each photo, the top candidates from the catalog of iconic images are all
verified; every (photo, candidate) pair becomes one row of evidence
(edge/decision.py) labelled by whether the candidate is the photo's product.
Train photos are not used: the embedder was trained on them, so their
embedding similarities are optimistic and would teach the decision to trust
similarity too much (seen: weight +64 on similarity, -1.8 on inliers). A
logistic regression is fitted on val with 2-fold cross-validation: each half's
threshold is the lowest probability at which photos whose product is removed
from the catalog (simulated by dropping the true candidate) are falsely
identified at most --max-false-id of the time, and the numbers printed are
measured on the other half. The shipped weights are then fitted on all of val.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from edge.catalog import load_catalog  # noqa: E402
from edge.config import Config  # noqa: E402
from edge.config_file import load_config  # noqa: E402
from edge.decision import EVIDENCE, Calibration, evidence, save_calibration  # noqa: E402
from edge.identify import identifier_for, open_models  # noqa: E402
from edge.images import centre_crop, read_image  # noqa: E402
from models.runtime import WEIGHTS_DIR  # noqa: E402
from tools.evaluate import PHOTO_CROP, make_catalog, read_dataset  # noqa: E402


def collect(identifier, photos, verify: int, crop: float, desc: str) -> list[tuple[list[bool], list, list[float]]]:
    """Per photo: (is-truth flags and similarities of the retrieved candidates, matches of the first `verify`)."""
    out = []
    products = identifier.catalog.products
    for path, truth in tqdm(photos, desc=desc, unit="photo"):
        image = centre_crop(read_image(path), crop)
        cands = identifier.candidates(identifier.embedder.embed([image]))[0]
        matches = identifier.verify(image, cands, limit=verify, early_stop=False)
        out.append(([products[c.product_index].product_id == truth for c in cands], matches, [c.similarity for c in cands]))
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> tuple[np.ndarray, float]:
    """Newton's method on the L2-regularised log loss; returns weights and bias."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    reg = l2 * np.eye(len(w))
    reg[-1, -1] = 0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-xb @ w))
        grad = xb.T @ (p - y) + reg @ w
        hess = xb.T @ (xb * (p * (1 - p))[:, None]) + reg
        w -= np.linalg.solve(hess, grad)
    return w[:-1], float(w[-1])


def closed_and_open(calibration: Calibration, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per photo: best probability and whether it is the truth (closed set); best probability with the truth removed."""
    best_p, best_ok, open_p = [], [], []
    for truth_flags, matches, sims in rows:
        if not matches:
            best_p.append(0.0)
            best_ok.append(False)
            open_p.append(0.0)
            continue
        p = calibration.probability(evidence(matches, sims))
        i = int(np.argmax(p))
        best_p.append(p[i])
        best_ok.append(truth_flags[i])
        # the photo's product taken out of the catalog: what is left of its candidates
        keep = [j for j, t in enumerate(truth_flags) if not t]
        kept_matches = [matches[j] for j in keep if j < len(matches)]
        if kept_matches:
            open_p.append(float(calibration.probability(evidence(kept_matches, [sims[j] for j in keep])).max()))
        else:
            open_p.append(0.0)
    return np.array(best_p), np.array(best_ok), np.array(open_p)


def threshold_for(calibration: Calibration, rows, max_false_id: float) -> float:
    best_p, _, open_p = closed_and_open(calibration, rows)
    candidates = np.unique(np.concatenate([open_p, best_p, [1.0]]))
    return float(next(t for t in candidates if np.mean(open_p >= t) <= max_false_id))


def fit(rows) -> Calibration:
    x = np.vstack([evidence(m, s) for _, m, s in rows if m])
    y = np.concatenate([np.array(t[: len(m)], float) for t, m, _ in rows if m])
    weights, bias = fit_logistic(x, y)
    return Calibration(tuple(float(w) for w in weights), bias, 0.5, "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset root")
    parser.add_argument("--config", type=Path, help="config naming the models (default: built-in defaults)")
    parser.add_argument("--max-false-id", type=float, default=0.02, help="open-set false identifications allowed")
    parser.add_argument("--out", type=Path, help="calibration file (default: the bundled one for this verifier)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the cross-validation split")
    parser.add_argument("--catalog-variants", type=int, default=8, help="extra retrieval views per catalog image")
    parser.add_argument("--photo-crop", type=float, default=PHOTO_CROP, help="centre fraction of each photo side queried")
    parser.add_argument("--subset", choices=["packaged", "all"], default="packaged",
                        help="products to calibrate on: packaged goods (the identical-product case ShelfID is for) or all")
    args = parser.parse_args()

    config = load_config(args.config) if args.config else Config()
    products, val = read_dataset(args.data, "val")
    if args.subset == "packaged":
        products = [p for p in products if p.packaged]
    names = {p.class_id: p.name for p in products}
    val = [(p, names[c]) for p, c in val if c in names]
    models = open_models(config)
    detector, embedder, verifier = models
    verify = config.verifier.candidates + 1  # one more, so that dropping the true product leaves `candidates`
    with tempfile.TemporaryDirectory() as tmp:
        catalog = load_catalog(make_catalog(products, Path(tmp), config, models, args.catalog_variants))
        identifier = identifier_for(config, catalog, embedder, verifier, detector)
        rows = collect(identifier, val, verify, args.photo_crop, "val photos")

    order = random.Random(args.seed).sample(range(len(rows)), len(rows))
    halves = [[rows[i] for i in order[: len(rows) // 2]], [rows[i] for i in order[len(rows) // 2:]]]
    top1, wrong, false_id, n = 0.0, 0.0, 0.0, 0
    for fit_half, test_half in (halves, halves[::-1]):
        probe = fit(fit_half)
        t = threshold_for(probe, fit_half, args.max_false_id)
        best_p, best_ok, open_p = closed_and_open(probe, test_half)
        top1 += float(np.sum(best_ok & (best_p >= t)))
        wrong += float(np.sum(~best_ok & (best_p >= t)))
        false_id += float(np.sum(open_p >= t))
        n += len(test_half)
    final = fit(rows)
    threshold = threshold_for(final, rows, args.max_false_id)
    note = (f"fitted on {len(rows)} val photos ({args.subset} products), catalog variants {args.catalog_variants}, "
            f"photo crop {args.photo_crop}; 2-fold cross-validated: "
            f"top1 {top1 / n:.3f}, wrong {wrong / n:.3f}, simulated open-set false-id {false_id / n:.3f}")
    calibration = Calibration(final.weights, final.bias, threshold, verifier.id, note)
    out = args.out or WEIGHTS_DIR / f"decision-{verifier.id}.json"
    save_calibration(out, calibration)
    print(", ".join(f"{name} {w:+.3f}" for name, w in zip(EVIDENCE, final.weights)) + f", bias {final.bias:+.3f}")
    print(f"threshold {threshold:.3f}; {note}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
