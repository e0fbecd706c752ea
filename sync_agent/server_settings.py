"""What an operator sets for the catalog server: where it keeps its work, how long signatures last, what it accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edge.core.config import Config
from sync_agent.publish import MANIFEST_VALID_S
from sync_agent.storage import Storage


@dataclass
class ServerSettings:
    root: Path
    signing_key: Path
    token: Optional[str]  # the admin token: everything, including catalogs and per-catalog tokens; None: no auth at all
    storage: Optional[Storage] = None  # default: LocalStorage(<root>/public), also served at /catalogs and /blobs
    config: Config = field(default_factory=Config)  # the models devices run (models.*, verifier.*), and mqtt.* for announcements
    announce: bool = False
    manifest_valid_s: float = MANIFEST_VALID_S  # how long devices trust a signed manifest
    resign_every_s: float = 3600.0  # how often the re-signing thread looks
    max_image_bytes: int = 20 << 20
    max_images_per_product: int = 20
    max_request_bytes: int = 200 << 20
    max_pixels: int = 40_000_000
    min_image_side: int = 32  # below this a product photo holds nothing to match (a 1×1 placeholder, an icon)
    database: Optional[Path] = None  # the records (SQLite); default <root>/catalog.db
    max_concurrent_detections: int = 1  # detect requests identifying at once (they share one set of models); more get 503
