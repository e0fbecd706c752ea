"""What an operator sets for the catalog server: where it keeps its work, how long signatures last, what it accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edge.core.config import Config
from sync_agent.server.publisher import MANIFEST_VALID_S
from sync_agent.server.storage import Storage


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
    max_concurrent_detections: int = 1  # detections identifying at once (they share one set of models)
    max_detections_per_catalog: int = 1  # of those, at once for one catalog: its readers cannot take every slot
    detect_wait_s: float = 5.0  # a received photo waits this long for a slot, then 503
    upload_timeout_s: float = 10.0  # a detect photo must arrive whole within this (408 after), before it waits for a slot
    max_concurrent_image_checks: int = 2  # product photos decoded at once, all requests together (each holds its pixels)
    image_check_wait_s: float = 30.0  # a product upload waits this long for an image check, then 503
    max_pixels_per_request: int = 160_000_000  # product photos of one request together (13 photos of 12 MP, 4 of 40 MP)
    max_reference_bytes: int = 2 << 20  # a field reference's crop (one product box, JPEG): its file
    max_reference_pixels: int = 2_000_000  # ... and its pixels: a product box, not a frame (1920×1080 is 2.07 MP)
    max_field_images_per_product: int = 20  # accepted field references one product may hold
    body_idle_timeout_s: float = 30.0  # a request body that sends nothing for this long is cut off (408)
    header_timeout_s: float = 10.0  # a connection's request line and headers must arrive within this
    keep_alive_s: int = 5  # an idle kept-alive connection is closed after this
    max_connections: int = 256  # open at once; a new one past it closes the longest-idle one (or gets 503 when none is)
