"""The detect route: a shelf photo in (multipart field `image`), out what `shelfid detect --json` prints for it,
identified against the catalog's latest published version.

The models are opened at the first detection and shared by all that follow (a server that never detects never loads
them). Each published version is assembled once from its bundle in storage (blobs hash-checked) into
`<root>/detect/<catalog>/v<N>`, the way a device assembles it, and its identifier kept until a newer version is
published; older folders are then removed.

A request is bounded at each step. Before its body is read: the read token when the server has one (the guard refuses
a POST without it) and a declared body over the per-image cap (413). The upload must then arrive whole within
`upload_timeout_s` (408 after, the connection closed): a client that sends a little and stalls holds nothing but its
own connection, because only then does the request wait for a detection slot, up to `detect_wait_s` (503 with
Retry-After after). A slot is held only while the photo is decoded (once) and identified. At most
`max_concurrent_detections` run at once and `max_detections_per_catalog` of one catalog, and a freed slot goes to the
waiting catalog served longest ago, so the readers of one catalog cannot take every turn. The photo passes the same
header checks as a product image (server.products) in a temporary folder removed after.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.params import Depends
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from edge.core.catalog import load_catalog
from edge.core.errors import ImageError, ShelfIDError
from edge.core.ids import CATALOG_ID
from edge.core.images import read_image
from sync_agent.bundle import blob_key, manifest_key, parse_manifest, sha256_hex
from sync_agent.errors import BundleError
from sync_agent.install import install_bundle
from sync_agent.server.products import image_refused, save_upload
from sync_agent.server.publish import LazyModels, without_paths
from sync_agent.server.settings import ServerSettings
from sync_agent.server.storage import Storage

log = logging.getLogger(__name__)
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around the one image
MULTIPART_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": {"image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP"}}}}}}}


class PublishedIdentifiers:
    """One identifier per catalog, for its latest published version; rebuilt when a newer version is published."""

    def __init__(self, storage: Storage, folder: Path, models: LazyModels, known: Callable[[str], None] = lambda catalog_id: None):
        """`known(catalog_id)` raises 404 for a catalog the server has no record of."""
        self.storage, self.folder, self.models, self.known = storage, folder, models, known
        # catalog id -> (version, Identifier, its verifier.second_opinion or None: it keeps the learned features it makes)
        self.loaded: dict[str, tuple[int, object, object]] = {}
        self.lock = threading.Lock()

    def latest(self, catalog_id: str) -> tuple[int, object, object]:
        """(version, Identifier, SecondOpinion or None); 404 when the catalog has nothing published."""
        if not CATALOG_ID.fullmatch(catalog_id) or (data := self.storage.get(manifest_key(catalog_id))) is None:
            self.loaded.pop(catalog_id, None)  # deleted since: its identifier goes too
            self.known(catalog_id)  # no such catalog at all: say so, not "unpublished"
            raise HTTPException(404, f"catalog {catalog_id!r} has no published version to detect against yet: publish it "
                                     f"first (POST /api/v1/catalogs/{catalog_id}/publish)")
        with self.lock:
            loaded = self.loaded.get(catalog_id, (0, None, None))
            try:
                manifest = parse_manifest(data)
                if loaded[0] != manifest["version"]:
                    from edge.core.second_opinion import opinion_for

                    identifier = self._open(manifest, data)
                    self.loaded[catalog_id] = loaded = manifest["version"], identifier, opinion_for(self.models.config, identifier)
            except ShelfIDError as exc:  # built for other models than this server runs, a blob gone: say which
                raise HTTPException(409, f"catalog {catalog_id!r} cannot be opened for detection: "
                                         f"{without_paths(str(exc), self.folder)}") from None
            return loaded

    def _open(self, manifest: dict, manifest_bytes: bytes):
        from edge.core.assembly import identifier_for
        from edge.core.index import search_one_query_at_a_time

        models = self.models.get()
        embedder, verifier = models.embedder, models.verifier
        config = self.models.config
        home = self.folder / manifest["catalog_id"]
        final = home / f"v{manifest['version']}"
        if not final.is_dir():
            home.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=home))
            try:  # the device's way: assembled, opened with these models, renamed into place
                install_bundle(manifest, manifest_bytes, self._blob, staging, final, embedder.model_id, verifier.id)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        for old in home.iterdir():
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        search_one_query_at_a_time()
        catalog = load_catalog(final, embedder.model_id, verifier.id)
        log.info("detect: catalog %s v%d loaded (%d products)", manifest["catalog_id"], manifest["version"], len(catalog.products))
        return identifier_for(config, catalog, models, still=True)

    def _blob(self, sha: str) -> bytes:
        data = self.storage.get(blob_key(sha))
        if data is None or sha256_hex(data) != sha:
            raise BundleError(f"blob {sha} is {'missing' if data is None else 'not what its hash says'} in storage")
        return data


class DetectSlots:
    """At most `total` detections at once and `per_catalog` of one catalog. A request waits in the event loop (holding no
    thread) up to `wait_s`; a freed slot goes to the waiting catalog that was served longest ago, then to the earliest
    request of it."""

    def __init__(self, total: int, per_catalog: int, wait_s: float):
        self.total, self.per_catalog, self.wait_s = total, per_catalog, wait_s
        self.running: Counter[str] = Counter()
        self.waiting: list[tuple[str, asyncio.Future]] = []
        self.served: dict[str, int] = {}  # catalog -> the turn it was last given a slot
        self.turns = 0

    def free_for(self, catalog_id: str) -> bool:
        return sum(self.running.values()) < self.total and self.running[catalog_id] < self.per_catalog

    def grant(self, catalog_id: str) -> None:
        self.running[catalog_id] += 1
        self.turns += 1
        self.served[catalog_id] = self.turns

    def release(self, catalog_id: str) -> None:
        self.running[catalog_id] -= 1
        self.waiting = [(c, f) for c, f in self.waiting if not f.done()]  # timed out meanwhile
        for entry in sorted(self.waiting, key=lambda e: self.served.get(e[0], 0)):  # stable: earliest first per catalog
            if self.free_for(entry[0]):
                self.grant(entry[0])
                entry[1].set_result(None)
                self.waiting.remove(entry)

    @asynccontextmanager
    async def slot(self, catalog_id: str) -> AsyncIterator[None]:
        if self.free_for(catalog_id):  # (no waiter can take it instead: a release gives every slot it can at once)
            self.grant(catalog_id)
        else:
            granted = asyncio.get_running_loop().create_future()
            self.waiting.append((catalog_id, granted))
            try:
                await asyncio.wait_for(granted, self.wait_s)
            except asyncio.TimeoutError:
                raise HTTPException(503, f"busy: {self.total} detection(s) in progress; retry shortly",
                                    headers={"Retry-After": "1"}) from None
            except BaseException:  # cancelled: a slot given at the same moment is given back
                if granted.done() and not granted.cancelled():
                    self.release(catalog_id)
                raise
        try:
            yield
        finally:
            self.release(catalog_id)


async def received_form(request: Request, timeout_s: float) -> FormData:
    """The multipart body, all of it within `timeout_s` (408 otherwise: the guard then closes the connection)."""
    async def parse() -> FormData:
        return await request.form(max_files=1, max_fields=0)

    try:
        return await asyncio.wait_for(parse(), timeout_s)
    except asyncio.TimeoutError:
        raise HTTPException(408, f"the photo did not arrive within {timeout_s:g} s; send it again on a faster connection") from None


def detection(storage: Storage, settings: ServerSettings, models: LazyModels,
              known: Callable[[str], None] = lambda catalog_id: None) -> tuple[PublishedIdentifiers, DetectSlots]:
    """The published versions' identifiers and the slots that bound their use: one pair per server, shared by detect and
    the field references' check (server.references)."""
    return (PublishedIdentifiers(storage, settings.root / "detect", models, known),
            DetectSlots(settings.max_concurrent_detections, settings.max_detections_per_catalog, settings.detect_wait_s))


def detect_routes(storage: Storage, settings: ServerSettings, models: LazyModels, reads: Sequence[Depends],
                  known: Callable[[str], None] = lambda catalog_id: None,
                  shared: tuple[PublishedIdentifiers, DetectSlots] | None = None) -> tuple[APIRouter, DetectSlots]:
    """`reads`: the dependencies of a route that reads what the token guards (the token check); `known(catalog_id)`
    raises 404 for a catalog the server has no record of; `shared`: `detection(...)`'s pair, when other routes use it
    too. The slots are returned for the app's state (a test can hold one, as a running detection would)."""
    router = APIRouter()
    identifiers, slots = shared or detection(storage, settings, models, known)

    def identify(catalog_id: str, path: Path, name: str, tiles: bool | None) -> dict:
        from edge.core.identify import Timings, still_tiling
        from edge.core.records import to_record
        from edge.core.second_opinion import second_look

        version, identifier, opinion = identifiers.latest(catalog_id)
        try:
            frame = read_image(path, settings.max_pixels)  # the one decode
        except ImageError as exc:
            raise image_refused(exc, name) from None
        timings = Timings()
        tiles, from_pack_size = still_tiling(frame.shape, identifier.detector, tiles)  # as shelfid detect chooses
        found = identifier.identify_image(frame, detect=True, timings=timings, tiled=tiles, from_pack_size=from_pack_size)
        found = second_look(opinion, frame, found, timings)
        return {"image": name, "catalog_id": catalog_id, "catalog_version": version, "tiles": tiles,
                "detections": [to_record(f) for f in found], "ms": {k: round(v, 1) for k, v in timings.ms.items()}}

    @router.post("/api/v1/catalogs/{catalog_id}/detect", dependencies=reads, openapi_extra=MULTIPART_BODY)
    async def detect(catalog_id: str, request: Request, tiles: bool | None = None) -> dict:
        """Identify the products in a photo, as `shelfid detect --json` does, against the latest published version;
        detected at the photo's own scale (tiles) where `shelfid detect` would be, or as `?tiles=true|false` says."""
        length = request.headers.get("content-length")
        if length is not None and int(length) > settings.max_image_bytes + FORM_OVERHEAD:
            raise HTTPException(413, f"a detect request carries one image of at most {settings.max_image_bytes >> 20} MB")
        form = await received_form(request, settings.upload_timeout_s)  # before a slot: a stalled upload holds none
        try:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "send the photo as the multipart/form-data file field 'image'")
            name = upload.filename or "image"
            with tempfile.TemporaryDirectory(prefix="detect-") as tmp:
                path, _ = await run_in_threadpool(save_upload, upload, Path(tmp) / "photo", settings, name)
                async with slots.slot(catalog_id):
                    return await run_in_threadpool(identify, catalog_id, path, name, tiles)
        finally:
            await form.close()

    return router, slots
