#!/usr/bin/env python3
"""Fit the calibrated "identical" decision: weights on train photos, threshold on val.

    python tools/calibrate.py --data ../shared/data/grocery [--config C] [--out FILE]

For each photo, the top candidates from the catalog of iconic images are all
verified; every (photo, candidate) pair becomes one row of evidence
(edge/decision.py) labelled by whether the candidate is the photo's product.
A logistic regression is fitted on the train rows. The threshold is the lowest
probability at which, on val, photos whose product is removed from the
catalog (simulated by dropping the true candidate) are falsely identified at
most --max-false-id of the time.
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
from edge.images import read_image  # noqa: E402
from models.runtime import WEIGHTS_DIR  # noqa: E402
from tools.evaluate import make_catalog, read_dataset  # noqa: E402


def collect(identifier, photos, verify: int, desc: str) -> list[tuple[list[bool], list, list[float]]]:
    """Per photo: (is-truth flags, matches, similarities) of the verified candidates."""
    out = []
    products = identifier.catalog.products
    for path, truth in tqdm(photos, desc=desc, unit="photo"):
        crop = read_image(path)
        cands = identifier.candidates(identifier.embedder.embed([crop]))[0]
        matches = identifier.verify(crop, cands, limit=verify, early_stop=False)
        cands = cands[: len(matches)]
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
        keep = [j for j, t in enumerate(truth_flags) if not t]
        if keep:
            p_open = calibration.probability(evidence([matches[j] for j in keep], [sims[j] for j in keep]))
            open_p.append(float(p_open.max()))
        else:
            open_p.append(0.0)
    return np.array(best_p), np.array(best_ok), np.array(open_p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Grocery Store Dataset root")
    parser.add_argument("--config", type=Path, help="config naming the models (default: built-in defaults)")
    parser.add_argument("--train-photos", type=int, default=600, help="seeded sample of train photos to fit on")
    parser.add_argument("--max-false-id", type=float, default=0.02, help="open-set false identifications allowed on val")
    parser.add_argument("--out", type=Path, help="calibration file (default: the bundled one for this verifier)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the train sample")
    parser.add_argument("--catalog-variants", type=int, default=0, help="extra retrieval views per catalog image")
    args = parser.parse_args()

    config = load_config(args.config) if args.config else Config()
    products, train = read_dataset(args.data, "train")
    _, val = read_dataset(args.data, "val")
    names = {p.class_id: p.name for p in products}
    train = random.Random(args.seed).sample([(p, names[c]) for p, c in train], min(args.train_photos, len(train)))
    val = [(p, names[c]) for p, c in val]
    models = open_models(config)
    detector, embedder, verifier = models
    verify = config.verifier.candidates + 1  # one more, so that dropping the true product leaves `candidates`
    with tempfile.TemporaryDirectory() as tmp:
        catalog = load_catalog(make_catalog(products, Path(tmp), config, models, args.catalog_variants))
        identifier = identifier_for(config, catalog, embedder, verifier, detector)
        train_rows = collect(identifier, train, verify, "train photos")
        val_rows = collect(identifier, val, verify, "val photos")

    x = np.vstack([evidence(m, s) for _, m, s in train_rows if m])
    y = np.concatenate([np.array(t, float) for t, m, _ in train_rows if m])
    weights, bias = fit_logistic(x, y)
    probe = Calibration(tuple(weights), bias, 0.5, verifier.id)
    best_p, best_ok, open_p = closed_and_open(probe, val_rows)
    candidates = np.unique(np.concatenate([open_p, best_p, [1.0]]))
    threshold = next(t for t in candidates if np.mean(open_p >= t) <= args.max_false_id)
    top1 = float(np.mean(best_ok & (best_p >= threshold)))
    wrong = float(np.mean(~best_ok & (best_p >= threshold)))
    note = (f"fitted on {len(train_rows)} train photos ({len(y)} rows, {int(y.sum())} positive); threshold for simulated "
            f"open-set false-id <= {args.max_false_id} on {len(val_rows)} val photos; val top1 {top1:.3f}, wrong {wrong:.3f}")
    calibration = Calibration(tuple(float(w) for w in weights), bias, float(threshold), verifier.id, note)
    out = args.out or WEIGHTS_DIR / f"decision-{verifier.id}.json"
    save_calibration(out, calibration)
    print(", ".join(f"{name} {w:+.3f}" for name, w in zip(EVIDENCE, weights)) + f", bias {bias:+.3f}")
    print(f"threshold {threshold:.3f}: {note}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
