"""The device's sync agent: fetch, verify, stage, switch — so `current` always names a complete catalog.

    <data_dir>/catalogs/v<N>/           complete catalog folders (+ the manifest they came from)
    <data_dir>/catalogs/current         symlink to one of them: the daemon's catalog
    <data_dir>/catalogs/.staging-*      a version being assembled (removed by the next run)
    <data_dir>/blobs/sha256/<hex>       verified blobs, shared between versions
    <data_dir>/blobs/partial/<hex>      downloads in progress (resumed with Range)
    <data_dir>/sync/status.json         active version, last success, last error (the daemon reports it)

Order of a sync: fetch the manifest (conditional GET) and its signature → accept it or refuse it
(sync_agent.trust: signature, schema, catalog id, expiry, freshness, rollback, version jump, models; no I/O
there, so every rule is tested in memory) → download the missing blobs, each hash-checked before it joins the
store → install: the catalog assembled in a staging folder, fsynced and opened as the daemon would → renamed to
v<N> → `current` switched with one atomic rename → old versions pruned, unreferenced blobs collected. An expired
manifest (the server re-signs it well before, so an expired one means a stuck server or a replayed old manifest)
leaves the device with its catalog, "stale" in status.json. A kill -9 anywhere leaves `current` on the old or the
new version, both complete; the next run finishes the job. A full disk fails the sync with DiskFullError and
removes what the attempt wrote (staging, partial downloads, blobs no kept version names), so the space goes back
to the daemon's outbox and to status.json, which then says why.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edge.core.catalog import installed_version, load_catalog
from edge.core.config import Config
from edge.core.datadir import DataDir
from models.metadata import sha256_file
from models.safe_write import fsync_dir, make_dirs, write_json_atomic
from sync_agent.bundle import blob_key, manifest_key
from sync_agent.errors import BundleError, DiskFullError, FetchError, SyncError
from sync_agent.fetcher import Document, Fetcher, fetcher_for
from sync_agent.install import install_bundle
from sync_agent.signing import load_public_key
from sync_agent.trust import Trusted, accept_manifest, accept_unchanged
from sync_agent.uploader import Uploader

log = logging.getLogger(__name__)
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_SIGNATURE_BYTES = 1024
MAX_BLOB_BYTES = 2 * 1024 ** 3
REFERENCES_LOOK_S = 30.0  # between syncs, how often the loop looks for newly confirmed field references


@dataclass(frozen=True)
class SyncResult:
    outcome: str  # "updated" | "unchanged"
    version: int
    blobs_downloaded: int = 0
    bytes_downloaded: int = 0


def active_version(layout: DataDir) -> int:
    """The version `current` names (0 when there is none): the truth, whatever status.json says."""
    return installed_version(layout.current)


def read_status(data_dir: Path) -> dict:
    return DataDir(data_dir).read_sync_status()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def device_model_ids(config: Config) -> tuple[str, str]:
    """(embedder model id, verifier id) this device computes query features with; a catalog must match both."""
    from edge.core.verifier import open_verifier
    from models.metadata import describe_onnx
    from models.runtime import BUNDLED_EMBEDDER

    embedder = config.models.embedder or BUNDLED_EMBEDDER
    model_id = describe_onnx(embedder)["metadata"].get("model_id")
    if not model_id:
        raise SyncError(f"{embedder}: the embedder carries no model_id metadata; catalogs cannot be matched to it")
    return model_id, open_verifier(config.verifier).id


class Agent:
    def __init__(self, config: Config, fetcher: Fetcher | None = None, model_ids: tuple[str, str] | None = None):
        sync = config.sync
        if sync.server_url is None:
            raise SyncError("sync.server_url is not set: this device has no catalog server to follow")
        self.config, self.catalog_id = config, sync.catalog_id
        self.base = sync.server_url.rstrip("/")
        self.public_key = load_public_key(sync.public_key_file)
        self.fetcher = fetcher or fetcher_for(sync.server_url, sync.token())
        self.layout = DataDir(config.device.data_dir)
        self.embedder_id, self.verifier_id = model_ids or device_model_ids(config)

    def sync_once(self) -> SyncResult:
        """One sync; on any error the active catalog is untouched and status.json says why."""
        status = read_status(self.config.device.data_dir)
        status["last_attempt"] = now_iso()
        self._record(status)  # before any network call: a sync that hangs still shows it was tried
        log.info("sync: checking %s for catalog %s (active v%d)", self.base, self.catalog_id, active_version(self.layout))
        try:
            result = self._sync(status, time.monotonic() + self.config.sync.deadline_s)
        except SyncError as exc:
            status["last_error"] = str(exc)
            self._record(status)
            raise
        except Exception as exc:  # a bug or an input nobody foresaw: still a failed sync, recorded, never the agent's end
            log.exception("sync: unexpected failure")
            status["last_error"] = " ".join(f"unexpected {type(exc).__name__}: {exc}".split())  # one line, for the status page
            self._record(status)
            raise SyncError(status["last_error"]) from exc
        status.update(last_success=now_iso(), last_error=None, last_outcome=result.outcome)
        self._record(status)
        return result

    def rollback(self) -> int:
        """Switch `current` to the newest kept version older than the active one; returns it."""
        active = active_version(self.layout)
        older = [v for v in self.layout.versions() if v < active]
        if not older:
            raise SyncError(f"no version older than v{active} is kept in {self.layout.catalogs} (sync.keep_versions)")
        target = older[-1]
        load_catalog(self.layout.version_dir(target), self.embedder_id, self.verifier_id)
        self._switch(target)
        status = read_status(self.config.device.data_dir) | {"rolled_back_from": active}
        self._write_status(status)
        log.info("rolled back catalog %s from v%d to v%d", self.catalog_id, active, target)
        return target

    def _sync(self, status: dict, deadline: float) -> SyncResult:
        self._clean_leftovers()
        active = active_version(self.layout)
        highest = max(int(status.get("highest_version") or 0), active)
        trusted = Trusted(self.catalog_id, self.embedder_id, self.verifier_id, active, highest, status.get("fresh_until"))
        url = f"{self.base}/{manifest_key(self.catalog_id)}"
        doc, signature = self._fetch_manifest(url, status.get("etag") if active else None, deadline)
        now = datetime.now(timezone.utc)
        if signature is None:  # HTTP 304: the manifest judged last time; is it still in date?
            verdict = accept_unchanged(trusted, now)
        else:
            verdict = accept_manifest(doc.body, signature, self.public_key, trusted, now, url)
        status.update(verdict.learned or {})
        if verdict.judged:
            status["etag"] = doc.etag
        if verdict.refusal is not None:
            raise verdict.refusal
        if verdict.install is None:
            return SyncResult("unchanged", active)
        manifest = verdict.install
        version = manifest["version"]
        log.info("sync: catalog %s v%d available (active v%d); fetching blobs", self.catalog_id, version, active)
        try:
            blobs, transferred = self._download(manifest, deadline)
            self._install(manifest, doc.body)
        except DiskFullError as exc:
            self._release_space()
            free = shutil.disk_usage(self.config.device.data_dir).free
            raise DiskFullError(f"no space left on the filesystem of {self.config.device.data_dir} for catalog v{version} "
                                f"({exc}); {free} bytes free after removing what this sync wrote; keeping catalog v{active}: "
                                "free space there (old logs? journalctl --vacuum-size) and the next sync completes") from None
        status.update(etag=doc.etag, highest_version=version, active_version=version, catalog_id=self.catalog_id)
        self._prune()
        log.info("sync: catalog %s v%d active (%d blobs, %d bytes downloaded)", self.catalog_id, version, blobs, transferred)
        return SyncResult("updated", version, blobs, transferred)

    def _fetch_manifest(self, url: str, etag: str | None, deadline: float) -> tuple[Document, bytes | None]:
        """The manifest (a conditional GET with `etag`) and its signature's bytes; None for them when the server
        answers 304 (not modified)."""
        try:
            doc = self.fetcher.get(url, MAX_MANIFEST_BYTES, etag, deadline)
        except FetchError as exc:
            if exc.status != 404:
                raise
            raise FetchError(f"catalog {self.catalog_id!r} is not published at {url} (HTTP 404): check sync.catalog_id, "
                             "and that the catalog was published", 404) from None
        if doc.status == 304:
            return doc, None
        return doc, self.fetcher.get(url + ".sig", MAX_SIGNATURE_BYTES, None, deadline).body

    def _download(self, manifest: dict, deadline: float) -> tuple[int, int]:
        layout = self.layout
        make_dirs(layout.blobs)  # durable names (models.safe_write.make_dirs): else a power cut takes the folder and all in it
        make_dirs(layout.partial)
        count = transferred = 0
        for blob in manifest["blobs"]:
            sha, size = blob["sha256"], blob["size"]
            final = layout.blobs / sha
            if final.exists():
                continue
            if size > MAX_BLOB_BYTES:
                raise BundleError(f"blob {sha}: {size} bytes is over the {MAX_BLOB_BYTES} byte cap")
            part = layout.partial / sha
            transferred += self.fetcher.download(f"{self.base}/{blob_key(sha)}", part, size, deadline)
            if part.stat().st_size != size or sha256_file(part) != sha:
                part.unlink()  # a bad download is never resumed
                raise BundleError(f"blob {sha}: downloaded content does not match its sha256/size; discarded")
            os.replace(part, final)
            count += 1
        fsync_dir(layout.blobs)
        return count, transferred

    def _install(self, manifest: dict, manifest_bytes: bytes) -> None:
        layout, version = self.layout, manifest["version"]
        staging = layout.catalogs / f".staging-v{version}-{os.getpid()}"  # a failure leaves it to the next run (a full disk: removed at once)
        install_bundle(manifest, manifest_bytes, lambda sha: (layout.blobs / sha).read_bytes(), staging, layout.version_dir(version),
                       self.embedder_id, self.verifier_id)
        self._switch(version)

    def _switch(self, version: int) -> None:
        self.layout.switch_current(f"v{version}")

    def _prune(self) -> None:
        """Keep `keep_versions` newest versions (and the active one); drop blobs no kept version names."""
        layout, keep = self.layout, self.config.sync.keep_versions
        active = active_version(layout)
        versions = layout.versions()
        for version in list(versions)[:-keep]:
            if version != active:
                shutil.rmtree(versions.pop(version))
        self._collect_blobs(versions)

    def _collect_blobs(self, versions: dict[int, Path]) -> None:
        """Delete the blobs that none of `versions` names."""
        layout = self.layout
        referenced = set()
        for folder in versions.values():
            try:
                referenced |= {b["sha256"] for b in json.loads((folder / "manifest.json").read_text())["blobs"]}
            except (OSError, ValueError, KeyError):
                continue
        for blob in layout.blobs.glob("*"):
            if blob.name not in referenced:
                blob.unlink()

    def _release_space(self) -> None:
        """After a full disk: remove what this sync wrote (staging, partial downloads, blobs no kept version names),
        so the daemon's outbox and status.json get their room back; the next sync downloads them again."""
        self._clean_leftovers()
        for part in self.layout.partial.glob("*"):
            part.unlink(missing_ok=True)
        self._collect_blobs(self.layout.versions())

    def _clean_leftovers(self) -> None:
        make_dirs(self.layout.catalogs)
        for path in self.layout.catalogs.glob(".staging-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.layout.catalogs.glob(".current-*.tmp"):
            path.unlink(missing_ok=True)

    def _record(self, status: dict) -> None:
        """status.json when the disk lets it be written; else it keeps its last content whole, and the log says why."""
        try:
            self._write_status(status)
        except OSError as exc:
            log.error("sync: cannot write %s (%s): it keeps its previous content; %s", self.layout.sync_status, exc.strerror or exc,
                      status.get("last_error") or "the sync itself went on")

    def _write_status(self, status: dict) -> None:
        status |= {"catalog_id": self.catalog_id, "active_version": active_version(self.layout)}
        make_dirs(self.layout.sync_status.parent)
        write_json_atomic(self.layout.sync_status, status)


def run_forever(agent: Agent, stop: threading.Event, wake: threading.Event, uploader: Uploader | None = None) -> None:
    """Sync now, then every poll interval (±10 % jitter) or when `wake` is set (an MQTT announcement);
    after a failure retry sooner, with exponential backoff and jitter. With an `uploader`, the device's pending field
    references go up after each sync and, between syncs, within REFERENCES_LOOK_S of being confirmed (its own backoff
    after a failure)."""
    poll = agent.config.sync.poll_interval_s
    failures = 0
    while not stop.is_set():
        wake.clear()  # before the sync: an announcement heard during it must wake the next one, not be wiped
        try:
            result = agent.sync_once()
            failures = 0
            delay = poll * random.uniform(0.9, 1.1)
            if result.outcome == "unchanged":
                log.debug("sync: catalog %s v%d is current", agent.catalog_id, result.version)
        except SyncError as exc:  # sync_once turns anything unexpected into a SyncError too
            failures += 1
            delay = min(poll, 5 * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0)
            log.warning("sync failed (%d in a row): %s; next try in %.0f s", failures, exc, delay)
        if uploader is not None:
            upload_references(uploader)
        deadline = time.monotonic() + delay
        look = time.monotonic() + REFERENCES_LOOK_S
        while not stop.is_set() and not wake.is_set() and time.monotonic() < deadline:
            wake.wait(min(1.0, max(deadline - time.monotonic(), 0)))
            if uploader is not None and time.monotonic() >= look:
                look = time.monotonic() + REFERENCES_LOOK_S
                if uploader.due():
                    upload_references(uploader)


def upload_references(uploader: Uploader) -> None:
    """One round of field reference uploads; whatever goes wrong is logged, never the loop's end."""
    try:
        uploader.upload_round()
    except Exception:  # a bug or a disk that cannot be read: the references stay pending for the next round
        log.exception("field references: the upload round failed")
