"""The MQTT topic contract, named in one place for the device, the catalog server and `shelfid events`.

    <prefix>/<device>/status              retained: online / offline (the will)
    <prefix>/<device>/events              identifications (QoS 1, at least once)
    <prefix>/<device>/stats               the live stats line (QoS 0)
    <prefix>/<device>/catalog             retained: the catalog in use
    <prefix>/<device>/zones/<zone>/state  retained: what stands in a shelf zone now (edge.daemon.zones)
    <prefix>/catalogs/<catalog>/latest    retained: the catalog server's announcement of its newest version
"""

from __future__ import annotations


def device_topics(prefix: str, device: str) -> dict[str, str]:
    base = f"{prefix}/{device}"
    return {"status": f"{base}/status", "events": f"{base}/events", "stats": f"{base}/stats", "catalog": f"{base}/catalog"}


def announcement_topic(prefix: str, catalog_id: str) -> str:
    return f"{prefix}/catalogs/{catalog_id}/latest"


def zone_state_topic(prefix: str, device: str, zone: str) -> str:
    return f"{prefix}/{device}/zones/{zone}/state"
