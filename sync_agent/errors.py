"""What can go wrong in catalog sync, each with the context a person needs to fix it."""

from edge.errors import ShelfIDError


class SyncError(ShelfIDError):
    """A sync could not complete; the active catalog is untouched."""


class BundleError(SyncError):
    """A manifest or blob is malformed, tampered with, or does not fit this device."""


class SignatureError(BundleError):
    """The manifest's signature does not verify against the configured public key."""
