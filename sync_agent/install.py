"""A catalog installed from a bundle's verified blobs: assembled in a staging folder, opened as the daemon opens a
catalog, then renamed into place. One way for the device's sync agent (`<data_dir>/catalogs/v<N>`) and for the
catalog server's detect route (`<root>/detect/<catalog>/v<N>`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from edge.core.catalog import Catalog, load_catalog
from edge.core.catalog_build import no_space
from edge.core.errors import CatalogError
from edge.core.stored_index import load_index
from models.safe_write import fsync_dir
from sync_agent.bundle import assemble
from sync_agent.errors import BundleError, DiskFullError


def install_bundle(manifest: dict, manifest_bytes: bytes, read_blob: Callable[[str], bytes], staging: Path, final: Path,
                   embedder_id: str, verifier_id: str) -> None:
    """`staging` (an empty or absent folder beside `final`) assembled from `read_blob(sha256)` (hash-checked by
    the caller), checked, then renamed to `final`, replacing a folder an interrupted install left there.

    BundleError when the bundle does not make a catalog that opens with these models, DiskFullError when the disk
    is full; either way `final` is untouched and `staging` is the caller's to remove.
    """
    stage(manifest, manifest_bytes, read_blob, staging, embedder_id, verifier_id)
    if final.exists():
        shutil.rmtree(final)
    os.rename(staging, final)
    fsync_dir(final.parent)


def stage(manifest: dict, manifest_bytes: bytes, read_blob: Callable[[str], bytes], staging: Path, embedder_id: str,
          verifier_id: str) -> None:
    """The catalog assembled in `staging` (with the manifest it came from) and opened as the daemon will open it.
    Whatever a bundle holds, its failure is a refusal of that bundle; a full disk is a DiskFullError."""
    version = manifest["version"]
    try:
        staging.mkdir(parents=True, exist_ok=True)
        (staging / "manifest.json").write_bytes(manifest_bytes)
        assemble(manifest, read_blob, staging)
        check_index(load_catalog(staging, embedder_id, verifier_id), version)  # exactly what the daemon will do with it
    except BundleError:
        raise
    except CatalogError as exc:
        raise BundleError(f"catalog v{version} does not open: {exc}") from None
    except OSError as exc:
        if no_space(exc, staging.parent):
            raise DiskFullError(f"{staging}: cannot assemble catalog v{version}: no space left on device") from None
        raise BundleError(f"catalog v{version} cannot be assembled: {type(exc).__name__}: {exc}") from None
    except Exception as exc:
        raise BundleError(f"catalog v{version} cannot be assembled: {type(exc).__name__}: {exc}") from None


def check_index(catalog: Catalog, version: int) -> None:
    """The catalog's stored search index loads as the daemon will load it."""
    if catalog.stored_index is None:
        return
    try:
        load_index(*catalog.stored_index, nprobe=1)
    except ValueError as exc:
        raise BundleError(f"catalog v{version}: its search index does not open: {exc}") from None
