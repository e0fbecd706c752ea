"""What a device accepts of a manifest it fetched: the sync agent's trust rules, without any I/O.

In the order the agent applies them (python-tuf's `TrustedMetadataSet` keeps its rules apart from the network the
same way, so each can be tested in memory):

    signature      ed25519 over the manifest's bytes, with the configured public key
    schema         manifest.schema.json, and every blob a shard names is in the blob list
    catalog id     the catalog this device follows
    expiry         present once earlier manifests carried one (else an old manifest is being replayed)
    freshness      not expired beyond CLOCK_SKEW_S: else the device keeps its catalog and says "stale"
    rollback       not older than the highest version ever installed here (the active one: nothing to do)
    version jump   at most MAX_VERSION_STEP above it (one signed jump to 2**31-1 would refuse every later version)
    models         computed with this device's embedder and verifier

`accept_manifest` returns a `Verdict` rather than raising, because a refused manifest can still teach the device
something true: once its signature, catalog id and expiry are checked, its expiry says how long the server vouches
for what it serves, whatever the later rules say of the version. The agent records that, then raises the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from edge.core.catalog import models_mismatch
from sync_agent.bundle import MAX_VERSION_STEP, decode_signature, parse_manifest
from sync_agent.errors import BundleError, StaleManifestError, SyncError
from sync_agent.signing import verify

# how far this device's clock may run ahead of the server's before a just-expired manifest counts as stale
CLOCK_SKEW_S = 3600


@dataclass(frozen=True)
class Trusted:
    """What the device knows before it judges a manifest: the catalog and models it runs, and what it accepted before."""

    catalog_id: str
    embedder_id: str
    verifier_id: str
    active: int = 0  # the version `current` names (0: none)
    highest: int = 0  # the highest version ever installed here (a rollback leaves it)
    fresh_until: str | None = None  # the expiry of the newest manifest accepted so far


@dataclass(frozen=True)
class Verdict:
    """`install`: the manifest to install, None when there is nothing to install. `refusal`: raise it (nothing is
    installed). `learned`: what the status file records either way (`fresh_until`, `stale`). `judged`: the version was
    judged, so the manifest's ETag may be remembered: the server's 304 for it later repeats this verdict."""

    install: dict | None = None
    refusal: SyncError | None = None
    learned: dict | None = None
    judged: bool = False


def accept_manifest(data: bytes, signature: bytes, public_key, trusted: Trusted, now: datetime, source: str = "manifest") -> Verdict:
    """The verdict on a fetched manifest (`data`, its `signature` file's bytes); `now`: an aware UTC time; `source`:
    where it came from, for the messages."""
    try:
        verify(public_key, data, decode_signature(signature))
        manifest = parse_manifest(data)
        version = manifest["version"]
        if manifest["catalog_id"] != trusted.catalog_id:
            raise BundleError(f"{source}: manifest is for catalog {manifest['catalog_id']!r}, this device follows {trusted.catalog_id!r}")
        if manifest.get("expires") is None and trusted.fresh_until:
            raise BundleError(f"{source}: manifest v{version} carries no expiry, yet earlier ones did: refused (an old manifest replayed?)")
        learned = freshness(manifest.get("expires"), now)
    except SyncError as exc:
        return Verdict(refusal=exc)
    if learned.get("stale"):
        return Verdict(refusal=stale_error(learned["fresh_until"], now, trusted.active), learned=learned)
    if version <= trusted.highest:
        if version == trusted.active:
            return Verdict(learned=learned, judged=True)
        refusal = BundleError(f"{source}: version {version} is not newer than v{trusted.highest} (installed before); refused")
        return Verdict(refusal=refusal, learned=learned, judged=True)
    if trusted.highest and version > trusted.highest + MAX_VERSION_STEP:
        return Verdict(refusal=BundleError(f"{source}: version {version} jumps more than {MAX_VERSION_STEP} above v{trusted.highest}; "
                                           "refused"), learned=learned)
    if problem := models_mismatch(manifest, trusted.embedder_id, trusted.verifier_id):
        return Verdict(refusal=BundleError(f"catalog v{version}: {problem}; refused"), learned=learned)
    return Verdict(install=manifest, learned=learned)


def accept_unchanged(trusted: Trusted, now: datetime) -> Verdict:
    """The verdict when the server says the manifest is the one judged last time (HTTP 304): still in date?"""
    try:
        learned = freshness(trusted.fresh_until, now)
    except SyncError as exc:
        return Verdict(refusal=exc)
    if learned.get("stale"):
        return Verdict(refusal=stale_error(learned["fresh_until"], now, trusted.active), learned=learned)
    return Verdict(learned=learned)


def freshness(expires: str | None, now: datetime) -> dict:
    """{fresh_until, stale} for a manifest's expiry ({} without one); past it plus the clock allowance, the catalog is stale.

    Stale is not broken: the device keeps identifying with its catalog and says so (status.json `stale`, the
    daemon's status and page). A device clock far ahead makes every manifest look stale; far behind, none.
    """
    if expires is None:
        return {}
    try:
        until = datetime.fromisoformat(expires)
    except ValueError:
        raise BundleError(f"manifest expiry {expires!r} is not an ISO 8601 time") from None
    if until.tzinfo is None:
        raise BundleError(f"manifest expiry {expires!r} has no time zone")
    return {"fresh_until": expires, "stale": (now - until).total_seconds() > CLOCK_SKEW_S}


def stale_error(expires: str, now: datetime, active: int) -> StaleManifestError:
    return StaleManifestError(f"the newest signed manifest expired at {expires} (this device's clock: "
                              f"{now.isoformat(timespec='seconds')}): the catalog server stopped re-signing it, or something "
                              f"in the path replays an old one; keeping catalog v{active}, which is now stale (check the server, "
                              "then the device clock)")
