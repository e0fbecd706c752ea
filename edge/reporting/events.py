"""The event contract: one JSON object per identification (schema in schemas/event.schema.json)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from edge.core.catalog import Product, product_ref

SCHEMA_VERSION = 1


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(*, kind: str, seq: int, device: str, camera: str, ts: float, first_seen: float, track_id: int,
               product: Product | None, guess: Product | None, similarity: float, inliers: int, inlier_ratio: float,
               confidence: float, bbox_norm: tuple[float, float, float, float], catalog_id: str, catalog_version: int) -> dict:
    """An `identified` or `unknown` event; `replayed` is set by the reporter when it is sent late."""
    return {
        "schema": SCHEMA_VERSION, "event_id": str(uuid.uuid4()), "seq": seq, "type": kind,
        "device": device, "camera": camera, "ts": iso(ts), "first_seen": iso(first_seen), "track_id": track_id,
        "product": product_ref(product), "guess": product_ref(guess),
        "scores": {"similarity": round(similarity, 4), "inliers": inliers, "inlier_ratio": round(inlier_ratio, 3),
                   "confidence": round(confidence, 3)},
        "bbox": [round(v, 4) for v in bbox_norm],
        "catalog": {"id": catalog_id, "version": catalog_version},
        "replayed": False,
    }


def encode(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def mark_replayed(payload: bytes) -> bytes:
    event = json.loads(payload)
    event["replayed"] = True
    return encode(event)
