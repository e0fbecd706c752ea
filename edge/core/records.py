"""A detection as the JSON that `shelfid detect --json` and the catalog server's detect answer, and as a label."""

from __future__ import annotations

from edge.core.identify import Detected


def to_record(found: Detected) -> dict:
    """One detection as `shelfid detect --json` prints it; an unknown's best guess is never its product_id."""
    ident = found.identification
    record = {"bbox": [round(v, 1) for v in found.bbox], "status": ident.status}
    if ident.product is not None:
        record |= {"product_id": ident.product.product_id, "sku": ident.product.sku, "name": ident.product.name}
    elif ident.guess is not None:
        record["guess"] = {"product_id": ident.guess.product_id, "sku": ident.guess.sku, "name": ident.guess.name}
    return record | {"similarity": round(ident.similarity, 4), "inliers": ident.inliers,
                     "inlier_ratio": round(ident.inlier_ratio, 3), "spread": round(ident.spread, 3), "verified": ident.verified,
                     "confidence": round(ident.confidence, 3)}


def label(found: Detected) -> str:
    ident = found.identification
    if ident.product is not None:
        return f"{ident.product.name} ({ident.inliers})"
    return "unknown" if ident.guess is None else f"unknown ~{ident.guess.name}?"
