"""Catalog hot-swap: notice that the active catalog changed, load it in the background, hand it over between frames.

The sync agent switches versions by renaming a `current` symlink; `shelfid
catalog build --force` replaces a folder by renaming it. Either way the
catalog's identity on disk is (resolved folder, inode and mtime of its
catalog.json), checked with two stat calls every `check_s` seconds. A version
that fails to load is logged once and skipped until the link moves again; the
daemon keeps identifying with the old one meanwhile. Field references taught on the installer's page
(references_changed) are taken in the same way: the identifier is rebuilt for the same catalog in the background.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from edge.core.assembly import device_field_set, identifier_for
from edge.core.catalog import load_catalog
from edge.core.config import Config
from edge.core.errors import ShelfIDError
from edge.core.identify import Identifier

log = logging.getLogger(__name__)


def catalog_key(path: Path) -> tuple | None:
    """What identifies the catalog a path points at now; None when there is none."""
    target = Path(os.path.realpath(path))
    try:
        st = (target / "catalog.json").stat()
    except OSError:
        return None
    return (str(target), st.st_ino, st.st_mtime_ns)


class CatalogWatcher:
    def __init__(self, path: Path, active: Identifier, config: Config, check_s: float):
        self.path, self.active, self.config, self.check_s = path, active, config, check_s
        self.key = catalog_key(path)
        self.failed_key: tuple | None = None
        self.failures = 0
        self._next_check = time.monotonic() + check_s
        self._loading: threading.Thread | None = None
        self._ready: tuple[tuple, Identifier] | None = None
        self._references_changed = threading.Event()

    def references_changed(self) -> None:
        """The device's field references changed (taught on the page): rebuild the identifier with them soon."""
        self._references_changed.set()

    def poll(self) -> Identifier | None:
        """A freshly loaded identifier to switch to now, else None. Cheap: call it between frames."""
        if self._ready is not None:
            (self.key, identifier), self._ready = self._ready, None
            self.active, self._loading = identifier, None
            return identifier
        if self._loading is None and self._references_changed.is_set():
            self._references_changed.clear()
            self._loading = threading.Thread(target=self._load_references, name="references-load", daemon=True)
            self._loading.start()
            return None
        now = time.monotonic()
        if self._loading is not None or now < self._next_check:
            return None
        self._next_check = now + self.check_s
        key = catalog_key(self.path)
        if key is None or key == self.key or key == self.failed_key:
            return None
        self._loading = threading.Thread(target=self._load, args=(key,), name="catalog-load", daemon=True)
        self._loading.start()
        return None

    def wait_loading(self, timeout: float | None = None) -> None:
        """Tests and shutdown: let a load in progress finish."""
        loading = self._loading  # the load clears it when it fails
        if loading is not None:
            loading.join(timeout)

    def _load(self, key: tuple) -> None:
        old = self.active
        started = time.monotonic()
        try:
            catalog = load_catalog(key[0], old.embedder.model_id, old.verifier.id)
            identifier = identifier_for(self.config, catalog, old.models, device_field_set(self.config, catalog, old.models, old.field))
        except (ShelfIDError, OSError, ValueError) as exc:
            log.warning("catalog switch failed, keeping %s v%d: %s", old.catalog.catalog_id, old.catalog.version, exc)
            self.failures += 1
            # the load ends last: whoever sees it ended (wait_loading, the next poll) sees the failure told and counted
            self.failed_key, self._loading = key, None
            return
        log.info("catalog %s v%d loaded from %s in %.2f s (%d products); switching from v%d", catalog.catalog_id, catalog.version,
                 key[0], time.monotonic() - started, len(catalog.products), old.catalog.version)
        self._ready = (key, identifier)

    def _load_references(self) -> None:
        old = self.active
        started = time.monotonic()
        try:
            field = device_field_set(self.config, old.catalog, old.models, old.field)
        except (ShelfIDError, OSError, ValueError) as exc:
            log.warning("field references not taken in, keeping the %d in use: %s", len(old.field), exc)
            self._loading = None
            return
        log.info("field references: %d in use for catalog %s v%d (%d new products), taken in %.2f s", len(field),
                 old.catalog.catalog_id, old.catalog.version, len(field.products), time.monotonic() - started)
        self._ready = (self.key, identifier_for(self.config, old.catalog, old.models, field))
