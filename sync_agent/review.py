"""Field references from the command line: a device's own queue (`shelfid catalog references`), and a catalog
manager's review queue on the catalog server over its HTTP API (`shelfid catalog review`, server.references)."""

from __future__ import annotations

from pathlib import Path

from edge.core.config import Config
from edge.core.datadir import DataDir
from edge.core.field_references import FieldReference, ReferenceStore
from sync_agent.errors import SyncError
from sync_agent.fetcher import CONNECT_TIMEOUT_S, network_reason

READ_TIMEOUT_S = 120.0  # an accept writes files and rows under the server's write lock


def device_references(config: Config) -> list[FieldReference]:
    """The device's field references, oldest first (pending, uploaded, refused)."""
    return ReferenceStore(DataDir(config.device.data_dir).references).all()


def remove_references(config: Config, reference_ids: list[str]) -> list[FieldReference]:
    """Remove these references from the device (all or none: every id is checked first); the ones removed."""
    store = ReferenceStore(DataDir(config.device.data_dir).references)
    known = {r.reference_id: r for r in store.all()}
    unknown = [rid for rid in reference_ids if rid not in known]
    if unknown:
        raise SyncError(f"no field reference {', '.join(unknown)} on this device (`shelfid catalog references list` shows them)")
    for rid in reference_ids:
        store.remove(rid)
    return [known[rid] for rid in reference_ids]


def reference_line(reference: FieldReference) -> str:
    product = reference.product_id + (" (new)" if reference.new_product else "")
    line = f"{reference.reference_id}  {reference.state:<8}  {product:<32}  track {reference.track_id:<6}  {reference.confirmed_at}"
    return line + (f"  {reference.refused_reason}" if reference.refused_reason else "")


class ReviewClient:
    """The review queue of one catalog on a catalog server; every failure is a SyncError naming what to check."""

    def __init__(self, server: str, catalog_id: str, token: str | None):
        import requests

        self.base = f"{server.rstrip('/')}/api/v1/catalogs/{catalog_id}/references"
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "shelfid-review"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def list(self, state: str = "open", limit: int = 100) -> list[dict]:
        return self._call("GET", "", params={"state": state, "limit": limit}).json()

    def show(self, reference_id: str) -> dict:
        return self._call("GET", f"/{reference_id}").json()

    def crop(self, reference_id: str, out: Path) -> int:
        data = self._call("GET", f"/{reference_id}/crop").content
        out.write_bytes(data)
        return len(data)

    def accept(self, reference_id: str, override: bool = False, note: str = "") -> dict:
        return self._call("POST", f"/{reference_id}/accept", json={"override": override, "note": note}).json()

    def reject(self, reference_id: str, reason: str) -> dict:
        return self._call("POST", f"/{reference_id}/reject", json={"reason": reason}).json()

    def _call(self, method: str, path: str, **kw):
        import requests

        url = self.base + path
        try:
            answer = self.session.request(method, url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), **kw)
        except (requests.RequestException, OSError) as exc:
            raise SyncError(f"{method} {url}: catalog server not reachable ({network_reason(exc)}): check --server") from None
        if answer.status_code >= 400:
            try:
                error = answer.json().get("error") or answer.reason
            except (ValueError, AttributeError):
                error = answer.reason
            hint = {401: ": pass --token-file", 403: ": the token needs write for this catalog (or the admin token)"}
            raise SyncError(f"{method} {url}: HTTP {answer.status_code}: {error}{hint.get(answer.status_code, '')}")
        return answer


def review_line(row: dict) -> str:
    product = row["product_id"] + (" (new)" if row.get("new_product") else "")
    return (f"{row['reference_id']}  {row['state']:<8}  {product:<32}  device {row['device_id']}  track {row['track_id']}  "
            f"confirmed {row['confirmed_at']} by {row['confirmed_by']}  {row.get('reason', '')}")
