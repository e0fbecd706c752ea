"""The device's data folder (`device.data_dir`), laid out in one place for the daemon, the doctor and the sync agent.

    catalogs/v<N>/            installed catalog versions (the agent assembles them; `shelfid catalog build` can too)
    catalogs/current          symlink to the active version: the daemon watches it, the agent renames a new one over it
    blobs/sha256/, partial/   the agent's content-addressed downloads, and the ones cut short
    sync/status.json          the agent's last word (active version, last success/error, stale): the daemon reports it
    sync/trigger              written by the daemon when an announced version is newer; shelfid-sync.path watches it
    references/               field references confirmed on the installer's page (edge.core.field_references)
    outbox.sqlite             events not yet acknowledged by the broker (unless outbox.path says otherwise)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from models.safe_write import fsync_dir


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def catalogs(self) -> Path:
        return self.root / "catalogs"

    @property
    def current(self) -> Path:
        return self.catalogs / "current"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def partial(self) -> Path:
        return self.root / "blobs" / "partial"

    @property
    def sync_status(self) -> Path:
        return self.root / "sync" / "status.json"

    @property
    def sync_trigger(self) -> Path:
        return self.root / "sync" / "trigger"

    @property
    def references(self) -> Path:
        return self.root / "references"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox.sqlite"

    def version_dir(self, version: int) -> Path:
        return self.catalogs / f"v{version}"

    def versions(self) -> dict[int, Path]:
        """Installed catalog versions, oldest first."""
        found = {int(p.name[1:]): p for p in self.catalogs.glob("v*") if p.is_dir() and p.name[1:].isdigit()}
        return dict(sorted(found.items()))

    def switch_current(self, target: Path | str) -> None:
        """Point `current` at `target` (a version folder, or its name) in one atomic rename, durable once this returns.

        A new link beside the old one renamed over it: the daemon's watcher sees the old catalog or the new one, never
        none. Leftover `.current-*.tmp` links of a killed switch are removed by the sync agent's next run.
        """
        self.catalogs.mkdir(parents=True, exist_ok=True)
        link = self.catalogs / f".current-{os.getpid()}.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        os.replace(link, self.current)
        fsync_dir(self.catalogs)

    def read_sync_status(self) -> dict:
        """sync/status.json, or {} when the agent has not written one (or it cannot be read)."""
        try:
            return json.loads(self.sync_status.read_text())
        except (OSError, ValueError):
            return {}
