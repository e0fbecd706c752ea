"""Field references to the catalog server: the crops an installer confirmed on this device, each delivered once.

The queue is the references folder itself (edge.core.field_references), durable on disk: a reference stays `pending`
until the server's answer is written back into it, as `uploaded` (201, or 200: the server had it already) or as
`refused` with the server's reason (409: disputed, it verifies better as another product; 413, 415, 422: the server
will never take it). Nothing else changes it, so a missing network, a 5xx, a kill -9 or a power cut between the POST
and that write leaves it pending and the next round sends it again; the server keeps one row per `reference_id` (the
upload's idempotency key) and answers a repeat with what it stored: delivered later, once.

    POST <sync.upload_url>/api/v1/catalogs/<sync.catalog_id>/references   multipart: `reference` (JSON), `crop` (JPEG)

with the sync token, which needs the `upload` scope (or `write`) for the catalog. A round stops at the first answer
that is not about the reference itself (no connection, a timeout, 401/403: the token, 404: no such catalog or not a
catalog server, 408/429/5xx) and leaves the rest pending; `Uploader.due()` spaces the rounds after failures
(exponential backoff with jitter, at most the poll interval). Each round also asks what became of the uploaded ones
(GET .../references/<id>/state, upload scope): one a catalog manager rejected is marked `refused` with the manager's
reason, so the device stops naming products from it. Uploaded references whose crop the installed catalog holds
(`field-<reference_id>.jpg` in its images.json: the server accepted it and it was published) are removed.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge.core.config import Config
from edge.core.datadir import DataDir
from edge.core.field_references import FieldReference, ReferenceStore, catalog_file_name
from sync_agent.fetcher import CONNECT_TIMEOUT_S, network_reason

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 60.0  # the server checks the crop with its models (and may wait for a slot) before it answers
ROUND_DEADLINE_S = 300.0  # one round's uploads together
REFUSALS = (409, 413, 415, 422)  # about the reference itself: sending it again would get the same answer
DEVICE_FIELDS = ("state", "uploaded_at", "refused_reason")  # the device's own bookkeeping, not sent


@dataclass
class UploadReport:
    uploaded: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # reference id -> the server's reason
    pending: int = 0  # left for a later round
    removed: list[str] = field(default_factory=list)  # held by the installed catalog now
    rejected: list[str] = field(default_factory=list)  # uploaded earlier, rejected by a catalog manager since
    error: str | None = None  # why the round stopped early

    def summary(self) -> dict:
        return {"uploaded": len(self.uploaded), "refused": len(self.refused), "pending": self.pending,
                "rejected": len(self.rejected), "removed": len(self.removed), "error": self.error}


class Uploader:
    def __init__(self, config: Config, session=None):
        import requests

        sync = config.sync
        self.config, self.url = config, sync.upload_url
        self.store = ReferenceStore(DataDir(config.device.data_dir).references)
        self.layout = DataDir(config.device.data_dir)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "shelfid-sync"
        if token := sync.token():
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.failures = 0
        self.not_before = 0.0  # time.monotonic() before which `due()` says no

    def due(self) -> bool:
        """Whether a round should run now: something is pending and no backoff holds it."""
        return time.monotonic() >= self.not_before and bool(self.store.pending())

    def upload_round(self) -> UploadReport:
        """Every pending reference, oldest first; a failure of the network or the server ends the round."""
        report = UploadReport()
        pending = self.store.pending()
        if pending and self.url is None:
            report.error = ("no catalog server to upload field references to: sync.server_url is not http(s) and "
                            "sync.references_url is not set")
        deadline = time.monotonic() + ROUND_DEADLINE_S
        for reference in pending if self.url else []:
            if time.monotonic() > deadline:
                report.error = f"the round's {ROUND_DEADLINE_S:g} s were up"
                break
            problem, stop = self.upload(reference, report)
            report.error = problem or report.error
            if stop:
                break
        report.pending = len(self.store.pending())
        self._pace(report)
        if report.error is None and self.url is not None:
            report.rejected = self.follow_reviews()
        report.removed = self.remove_published()
        return report

    def follow_reviews(self) -> list[str]:
        """Uploaded references a catalog manager rejected: marked refused with the manager's reason, so this device stops
        naming products from them; the ones so marked. Any failure leaves them as they are for the next round."""
        import requests

        rejected = []
        for reference in [r for r in self.store.all() if r.state == "uploaded"]:
            target = f"{self.url}/api/v1/catalogs/{reference.catalog_id}/references/{reference.reference_id}/state"
            try:
                answer = self.session.get(target, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
                state = answer.json() if answer.status_code == 200 else {}
            except (requests.RequestException, OSError, ValueError):
                return rejected
            if isinstance(state, dict) and state.get("state") == "rejected":
                try:
                    self.store.mark_refused(reference.reference_id, f"rejected by a catalog manager: {state.get('review_note') or '-'}")
                except KeyError:
                    continue
                rejected.append(reference.reference_id)
                log.warning("field reference %s (%s) was rejected on the catalog server (%s); no longer used", reference.reference_id,
                            reference.product_id, state.get("review_note"))
        return rejected

    def upload(self, reference: FieldReference, report: UploadReport) -> tuple[str | None, bool]:
        """One reference sent and the answer written back into it: (what went wrong, whether the round must stop). A
        token or catalog the server refuses (401, 403, 404) holds this reference only: one filed under another catalog
        (the device followed another then) must not hold the others."""
        import requests

        rid = reference.reference_id
        target = f"{self.url}/api/v1/catalogs/{reference.catalog_id}/references"
        try:
            crop = self.store.crop(rid)
        except (KeyError, OSError):  # removed meanwhile (`shelfid catalog references remove`)
            return None, False
        body = {k: v for k, v in asdict(reference).items() if k not in DEVICE_FIELDS}
        try:
            answer = self.session.post(target, data={"reference": json.dumps(body)}, files={"crop": ("crop.jpg", crop, "image/jpeg")},
                                       timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except (requests.RequestException, OSError) as exc:
            return f"catalog server {self.url} not reachable ({network_reason(exc)})", True
        reason = error_text(answer)
        try:
            if answer.status_code in (200, 201):
                self.store.mark_uploaded(rid)
                report.uploaded.append(rid)
                log.info("field reference %s (%s) uploaded: %s on the server", rid, reference.product_id, state_of(answer))
                return None, False
            if answer.status_code in REFUSALS:
                self.store.mark_refused(rid, reason)
                report.refused[rid] = reason
                log.warning("field reference %s (%s) refused by the catalog server (HTTP %d): %s", rid, reference.product_id,
                            answer.status_code, reason)
                return None, False
        except KeyError:  # removed while it was sent: nothing to write back
            return None, False
        if answer.status_code in (401, 403):
            return (f"the catalog server refused the sync token for catalog {reference.catalog_id!r} (HTTP "
                    f"{answer.status_code}: {reason}); it needs the upload scope"), False
        if answer.status_code == 404:
            return f"POST {target}: HTTP 404 ({reason}): no such catalog, or not a catalog server", False
        return f"POST {target}: HTTP {answer.status_code} ({reason})", True

    def remove_published(self) -> list[str]:
        """Uploaded references the installed catalog holds as images: their work is done."""
        uploaded = [r.reference_id for r in self.store.all() if r.state == "uploaded"]
        held = files_named(self.layout.current / "images.json", {f'/{catalog_file_name(rid)}"': rid for rid in uploaded}) if uploaded else set()
        removed = []
        for rid in uploaded:
            if rid in held:
                try:
                    self.store.remove(rid)
                except (KeyError, OSError):
                    continue
                removed.append(rid)
                log.info("field reference %s is in the installed catalog now; removed from the device's queue", rid)
        return removed

    def _pace(self, report: UploadReport) -> None:
        if report.error is None:
            self.failures, self.not_before = 0, 0.0
            return
        self.failures += 1
        delay = min(self.config.sync.poll_interval_s, 5 * 2 ** min(self.failures, 10)) * random.uniform(0.5, 1.0)
        self.not_before = time.monotonic() + delay
        log.warning("field references: %s; %d pending, next try in %.0f s", report.error, report.pending, delay)


def error_text(answer) -> str:
    """The server's error message (JSON `error`), or the start of its body."""
    try:
        body = answer.json()
    except ValueError:
        return " ".join(answer.text[:200].split()) or answer.reason
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:1000]
    return ""


def state_of(answer) -> str:
    try:
        return str(answer.json().get("state", "?"))
    except (ValueError, AttributeError):
        return "?"


def files_named(images_json: Path, needles: dict[str, str]) -> set[str]:
    """The values of `needles` whose key occurs in `images_json` (an image row's `"file": "<product>/field-<id>.jpg"`),
    read in chunks: a catalog of a million images has a large images.json, and this runs every round."""
    found: set[str] = set()
    keys = {key.encode(): value for key, value in needles.items()}
    overlap = max(map(len, keys), default=0)
    tail = b""
    try:
        with open(images_json, "rb") as f:
            while chunk := f.read(1 << 20):
                window = tail + chunk
                found |= {value for key, value in keys.items() if key in window}
                tail = window[-overlap:]
    except OSError:  # no catalog installed yet
        return set()
    return found
