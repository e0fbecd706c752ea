"""Per-catalog tokens over real HTTP: made by the admin token, read or write for one catalog, stored as sha256 only,
refused before a body is read when out of scope, named (never shown) in the audit trail and its log line."""

from __future__ import annotations

import hashlib
import logging

import pytest
import requests

from edge.core.config import Config
from sync_agent.server.app import ServerSettings, create_app
from tests.sync.conftest import TOKEN
from tests.sync.test_server import AUTH, jpeg, put
from tools.http_harness import ServerThread


@pytest.fixture
def api(tmp_path, keys):
    settings = ServerSettings(root=tmp_path / "server", signing_key=keys[0], token=TOKEN, config=Config())
    thread = ServerThread(create_app(settings)).start()
    for catalog in ("shelf", "other"):
        requests.post(f"{thread.url}/api/v1/catalogs", json={"catalog_id": catalog}, headers=AUTH, timeout=10).raise_for_status()
    yield thread.url, tmp_path / "server"
    thread.stop()


def make_token(url: str, catalog: str, scope: str, name: str = "") -> tuple[dict, dict]:
    r = requests.post(f"{url}/api/v1/tokens", json={"catalog_id": catalog, "scope": scope, "name": name}, headers=AUTH, timeout=10)
    assert r.status_code == 201, r.text
    return r.json(), {"Authorization": f"Bearer {r.json()['token']}"}


def status(method: str, url: str, headers: dict, **kw) -> int:
    return requests.request(method, url, headers=headers, timeout=30, **kw).status_code


def test_a_read_token_reads_its_catalog_and_nothing_else(api):
    url, _ = api
    _, read = make_token(url, "shelf", "read")
    assert put(url, [("a.jpg", jpeg())]).status_code == 201  # (as admin)
    assert requests.get(f"{url}/api/v1/catalogs/shelf", headers=read, timeout=10).json()["products"][0]["product_id"] == "p1"
    assert [c["catalog_id"] for c in requests.get(f"{url}/api/v1/catalogs", headers=read, timeout=10).json()] == ["shelf"]
    assert status("GET", f"{url}/api/v1/catalogs/other", read) == 403
    r = put(url, [("a.jpg", jpeg())], headers=read)
    assert r.status_code == 403 and "write token for catalog 'shelf'" in r.json()["error"]
    assert status("POST", f"{url}/api/v1/catalogs/shelf/publish", read) == 403
    assert status("DELETE", f"{url}/api/v1/catalogs/shelf", read) == 403
    assert status("POST", f"{url}/api/v1/tokens", read, json={"catalog_id": "shelf", "scope": "write"}) == 403
    assert status("GET", f"{url}/api/v1/audit", read) == 403


def test_a_write_token_changes_its_catalog_only_and_creates_no_catalogs(api):
    url, _ = api
    _, write = make_token(url, "shelf", "write")
    assert put(url, [("a.jpg", jpeg())], headers=write).status_code == 201
    assert status("DELETE", f"{url}/api/v1/catalogs/shelf/products/p1", write) == 204
    assert status("GET", f"{url}/api/v1/catalogs/shelf", write) == 200
    r = requests.put(f"{url}/api/v1/catalogs/other/products/p1", headers=write, files={"images": ("a.jpg", jpeg())}, timeout=10)
    assert r.status_code == 403 and "write token for catalog 'other'" in r.json()["error"] and r.json()["status"] == 403
    assert status("POST", f"{url}/api/v1/catalogs", write, json={"catalog_id": "new"}) == 403
    assert status("DELETE", f"{url}/api/v1/catalogs/shelf", write) == 403


@pytest.mark.parametrize("headers,code", [({}, 401), ({"Authorization": "Bearer shelfid_guessed"}, 403), ({"Authorization": "Basic x"}, 401)])
def test_reads_need_a_token_too(api, headers, code):
    url, _ = api
    r = requests.get(f"{url}/api/v1/catalogs/shelf", headers=headers, timeout=10)
    assert r.status_code == code and r.json()["status"] == code and "token" in r.json()["error"].lower()
    assert status("GET", f"{url}/api/v1/catalogs", headers) == code
    assert status("GET", f"{url}/healthz", headers) == 200  # health and the published tree stay public


def test_tokens_are_stored_hashed_and_the_audit_names_them_without_showing_them(api, caplog):
    url, root = api
    made, write = make_token(url, "shelf", "write", name="scanner-app")
    token = made["token"]
    assert token.startswith("shelfid_") and len(token) > 40
    with caplog.at_level(logging.INFO, logger="sync_agent.server.store"):
        assert put(url, [("a.jpg", jpeg())], headers=write).status_code == 201
    actor = f"token:{made['token_id']}:scanner-app"
    stored = b"".join(p.read_bytes() for p in root.glob("catalog.db*"))
    assert token.encode() not in stored and hashlib.sha256(token.encode()).hexdigest().encode() in stored
    [listed] = requests.get(f"{url}/api/v1/tokens", headers=AUTH, timeout=10).json()
    assert listed == {k: made[k] for k in ("token_id", "name", "catalog_id", "scope", "created_at", "created_by")}
    audit = requests.get(f"{url}/api/v1/audit", params={"catalog_id": "shelf"}, headers=AUTH, timeout=10).json()
    assert [(a["actor"], a["action"]) for a in audit] == [(actor, "add_product"), ("admin", "create_token"), ("admin", "create_catalog")]
    assert token not in str(audit) and token not in caplog.text
    assert f"audit: {actor} add_product shelf p1: 1 image(s)" in caplog.text


def test_a_deleted_token_or_catalog_takes_its_tokens_access_away(api):
    url, _ = api
    made, write = make_token(url, "shelf", "write")
    _, other_read = make_token(url, "other", "read")
    assert status("DELETE", f"{url}/api/v1/tokens/{made['token_id']}", AUTH) == 204
    assert status("GET", f"{url}/api/v1/catalogs/shelf", write) == 403
    assert status("DELETE", f"{url}/api/v1/tokens/{made['token_id']}", AUTH) == 404
    assert status("DELETE", f"{url}/api/v1/catalogs/other", AUTH) == 204
    requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "other"}, headers=AUTH, timeout=10).raise_for_status()
    assert status("GET", f"{url}/api/v1/catalogs/other", other_read) == 403  # the new 'other' is not the old one
    assert status("POST", f"{url}/api/v1/tokens", AUTH, json={"catalog_id": "ghost", "scope": "read"}) == 404
    assert status("POST", f"{url}/api/v1/tokens", AUTH, json={"catalog_id": "shelf", "scope": "admin"}) == 422


def test_detection_takes_a_read_token_for_its_catalog(api):
    url, _ = api
    _, read = make_token(url, "shelf", "read")
    files = {"image": ("x.jpg", jpeg(), "image/jpeg")}
    mine = requests.post(f"{url}/api/v1/catalogs/shelf/detect", files=files, headers=read, timeout=30)
    assert mine.status_code == 404 and "no published version" in mine.json()["error"]  # past the token check: nothing published
    theirs = requests.post(f"{url}/api/v1/catalogs/other/detect", files=files, headers=read, timeout=30)
    assert theirs.status_code == 403 and "read token for catalog 'other'" in theirs.json()["error"]
