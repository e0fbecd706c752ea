"""The shelf-zone contract: zone events on `<device>/events` (schemas/zone-change.schema.json) and the retained
`<device>/zones/<zone>/state` (schemas/zone-state.schema.json).

Zone events share the identification events' envelope (schema, event_id, seq, device, camera, ts, catalog,
replayed), so they go through the same outbox, are deduplicated on the same `event_id` and marked `replayed` the
same way; consumers tell them apart by `type`.
"""

from __future__ import annotations

import uuid

from edge.core.catalog import Product, product_ref
from edge.reporting.events import SCHEMA_VERSION, iso

ZONE_EVENT_TYPES = ("gone", "back", "low", "misplaced")


def planogram_ref(product_id: str, products: dict[str, Product]) -> dict:
    """The product as every message names it (catalog.product_ref); a planogram id the catalog does not have keeps its
    id as its name."""
    return product_ref(products.get(product_id)) or {"id": product_id, "sku": "", "name": product_id}


def make_zone_event(*, kind: str, seq: int, device: str, camera: str, ts: float, zone: str, product: dict, facings: int,
                    expected: int | None, last_seen: float | None, catalog_id: str, catalog_version: int) -> dict:
    """A `gone`, `back`, `low` or `misplaced` event; `replayed` is set by the reporter when it is sent late."""
    if kind not in ZONE_EVENT_TYPES:
        raise ValueError(f"zone event type {kind!r} is not one of {', '.join(ZONE_EVENT_TYPES)}")
    return {
        "schema": SCHEMA_VERSION, "event_id": str(uuid.uuid4()), "seq": seq, "type": kind,
        "device": device, "camera": camera, "ts": iso(ts), "zone": zone, "product": product,
        "facings": facings, "expected": expected, "last_seen": iso(last_seen) if last_seen is not None else None,
        "catalog": {"id": catalog_id, "version": catalog_version},
        "replayed": False,
    }


def make_zone_state(*, device: str, camera: str, ts: float, zone: str, products: list[dict], alerts: list[dict],
                    catalog_id: str, catalog_version: int) -> dict:
    """The retained state of one zone: `products` [{product, facings, expected, last_seen}], `alerts` [{type, product,
    since}] (timestamps already ISO strings)."""
    return {"schema": SCHEMA_VERSION, "device": device, "camera": camera, "zone": zone, "ts": iso(ts),
            "products": products, "alerts": alerts, "catalog": {"id": catalog_id, "version": catalog_version}}
