"""A detection as the JSON that `shelfid detect --json` and the catalog server's detect answer
(schemas/detect.schema.json), and as a label. The product is named as MQTT events name it: `product` and `guess` are
`{id, sku, name}` or null."""

from __future__ import annotations

from edge.core.catalog import product_ref
from edge.core.identify import Detected


def to_record(found: Detected) -> dict:
    """One detection as `shelfid detect --json` prints it: `product` set only when identified, `guess` (the closest
    product) and `reason` (why not identical) only when unknown."""
    ident = found.identification
    return {"bbox": [round(v, 1) for v in found.bbox], "status": ident.status, "product": product_ref(ident.product),
            "guess": product_ref(ident.guess) if ident.product is None else None,
            "similarity": round(ident.similarity, 4), "inliers": ident.inliers, "inlier_ratio": round(ident.inlier_ratio, 3),
            "spread": round(ident.spread, 3), "verified": ident.verified, "confidence": round(ident.confidence, 3),
            "reason": ident.reason}


def label(found: Detected) -> str:
    ident = found.identification
    if ident.product is not None:
        return f"{ident.product.name} ({ident.inliers})"
    return "unknown" if ident.guess is None else f"unknown ~{ident.guess.name}?"
