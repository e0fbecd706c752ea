"""The page's side of the shelf zones: what it shows (zones, their state, the catalog's products) and what it saves.

The frame loop hands over the zones' states and the catalog in use (`show`, about once a second) and picks up zones
the installer saved (`take_saved`, between frames); the web server's threads read the view and save. A save writes
the config file (edge.core.zones_file: validated whole, planogram ids checked against the catalog in use, a backup,
an atomic replace) and the daemon applies the new zones from its next frame, without a restart.

The save request, from the page's own script (edge/web/static/zones.js):

    POST /api/zones   Content-Type: application/json   {"areas": {"<name>": {"polygon": [[x, y], ...], "expected": {...}}}}
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.config import ZonesConfig
from edge.core.errors import ConfigError, ConfigFileError
from edge.core.zones_file import save_zone_areas

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # 32 zones of 64 corners with a planogram each fit many times over


@dataclass
class ZoneSaveError(Exception):
    """Why a save was refused: an HTTP status, one line, and the config problems (one per line) when there are some."""

    status: int
    message: str
    problems: list[str] = field(default_factory=list)


class ZoneDesk:
    def __init__(self, config_path: Path | None, zones: ZonesConfig):
        self.config_path = config_path
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # one save at a time: each reads the file the previous one wrote
        self._zones, self._saved = zones, None
        self._states: dict[str, dict] = {}
        self._products: list[dict] = []
        self._catalog: tuple[str, int] | None = None

    # --- the frame loop ---

    def show(self, states: dict[str, dict], catalog) -> None:
        """The zones' latest published states and the catalog in use (its products feed the planogram's choices)."""
        with self._lock:
            self._states = states
            if (catalog.catalog_id, catalog.version) != self._catalog:
                self._catalog = (catalog.catalog_id, catalog.version)
                self._products = [{"id": p.product_id, "name": p.name} for p in catalog.products]

    def take_saved(self) -> ZonesConfig | None:
        """Zones saved since the last call (once), or None."""
        with self._lock:
            saved, self._saved = self._saved, None
        return saved

    # --- the web server's threads ---

    def view(self) -> dict:
        with self._lock:
            zones, states, products = self._zones, self._states, self._products
        return {"areas": {name: area.model_dump(mode="json") for name, area in zones.areas.items()},
                "timing": {"present_after_s": zones.present_after_s, "gone_after_s": zones.gone_after_s,
                           "stationary_s": zones.stationary_s},
                "states": {name: states.get(name) for name in zones.areas}, "products": products,
                "editable": self.not_editable() is None, "not_editable": self.not_editable()}

    def not_editable(self) -> str | None:
        """Why the page cannot save zones here, or None."""
        path = self.config_path
        if path is None:
            return "the daemon was started without a config file (shelfid run --config FILE): nowhere to save zones"
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            return (f"the daemon cannot write {path} (and a temp file beside it): give its user write access, and under "
                    "systemd ReadWritePaths= for the folder")
        return None

    def save(self, body: bytes) -> dict:
        """Validate and save the zones in `body` (JSON); ZoneSaveError says why not, with the file untouched."""
        if (why := self.not_editable()) is not None:
            raise ZoneSaveError(409, why)
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
            raise ZoneSaveError(400, "the body is not JSON") from None
        if not isinstance(doc, dict) or set(doc) != {"areas"}:
            raise ZoneSaveError(400, 'expected a JSON object {"areas": {"<zone name>": {"polygon": [[x, y], ...], '
                                     '"expected": {"<product id>": facings}}}}')
        with self._lock:
            products = {p["id"] for p in self._products}
        with self._save_lock:
            try:
                config = save_zone_areas(self.config_path, doc["areas"], products)
            except ConfigError as exc:
                raise ZoneSaveError(400, f"not saved, {self.config_path} is unchanged: the zones are not valid", exc.problems) from None
            except ConfigFileError as exc:
                raise ZoneSaveError(409, f"not saved: {exc}") from None
            with self._lock:
                self._zones = self._saved = config.zones
        log.info("zones saved from the page to %s (backup %s.bak): %s", self.config_path, self.config_path.name,
                 ", ".join(config.zones.areas) or "none")
        return {"saved": str(self.config_path), "backup": f"{self.config_path}.bak", "areas": list(config.zones.areas)}
