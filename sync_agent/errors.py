"""What can go wrong in catalog sync, each with the context a person needs to fix it."""

from __future__ import annotations

from edge.core.errors import ShelfIDError


class SyncError(ShelfIDError):
    """A sync could not complete; the active catalog is untouched."""


class FetchError(SyncError):
    """The server could not be reached, or answered with an HTTP error; `status` is that HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class DiskFullError(SyncError):
    """device.data_dir's filesystem has no room for a download or an install; the active catalog is untouched."""


class BundleError(SyncError):
    """A manifest or blob is malformed, tampered with, or does not fit this device."""


class StaleManifestError(SyncError):
    """The newest signed manifest the server gives has expired: the device keeps its catalog and says it is stale."""


class SignatureError(BundleError):
    """The manifest's signature does not verify against the configured public key."""
