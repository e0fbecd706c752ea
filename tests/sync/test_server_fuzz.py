"""Property-based fuzzing (Hypothesis) of the catalog server's HTTP API over real HTTP to a real uvicorn: any
catalog body, path segment, token header or multipart upload ends in a JSON answer below 500 that names no path on
the server, and the server keeps serving. Example counts: the profiles in tests/conftest.py."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from edge.core.config import Config
from sync_agent.server.app import ServerSettings, create_app
from tests.sync.conftest import TOKEN
from tests.sync.test_server import AUTH, jpeg
from tools.http_harness import ServerThread

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=80),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=10)
segments = st.text(min_size=1, max_size=80)


@pytest.fixture(scope="module")
def served(tmp_path_factory, keys):
    root = tmp_path_factory.mktemp("fuzz-server")
    settings_ = ServerSettings(root=root, signing_key=keys[0], token=TOKEN, config=Config(), max_request_bytes=2_000_000)
    thread = ServerThread(create_app(settings_)).start()
    requests.post(f"{thread.url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).raise_for_status()
    yield thread.url, root
    thread.stop()


def answered_cleanly(response: requests.Response, root) -> None:
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        body = response.json()
        assert body["status"] == response.status_code and body["error"]
        assert str(root) not in response.text


@given(st.dictionaries(st.sampled_from(["catalog_id", "name", "x"]), json_values, max_size=3))
def test_any_new_catalog_body(served, body):
    url, root = served
    answered_cleanly(requests.post(f"{url}/api/v1/catalogs", json=body, headers=AUTH, timeout=10), root)
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


@given(segments, st.sampled_from(["GET", "DELETE", "POST"]))
def test_any_catalog_id_in_the_path(served, catalog_id, method):
    url, root = served
    if catalog_id == "shelf":
        return  # the fixture's catalog stays for the other properties
    path = f"/api/v1/catalogs/{quote(catalog_id, safe='')}" + ("/publish" if method == "POST" else "")
    answered_cleanly(requests.request(method, url + path, headers=AUTH, timeout=30), root)


@given(st.text(max_size=120))
def test_any_authorization_header_other_than_the_token_is_refused(served, header):
    url, root = served
    if header.strip() == f"Bearer {TOKEN}":
        return
    value = header.encode("utf-8").decode("latin-1")
    not_http = any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value)
    try:
        response = requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "x1"}, headers={"Authorization": value}, timeout=10)
    except (ValueError, requests.exceptions.InvalidHeader):  # not sendable as an HTTP header at all
        return
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
        assert not_http  # uvicorn's parser answered 400 and closed while the body was still being sent
        response = None
    if response is not None and response.headers.get("content-type", "").startswith("application/json"):
        answered_cleanly(response, root)
        assert response.status_code in (400, 401, 403)
    elif response is not None:  # control characters are not HTTP: uvicorn's parser answers 400 in plain text, before the app
        assert response.status_code == 400 and not_http
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


@given(segments, st.lists(st.tuples(st.text(max_size=30), st.binary(max_size=3000) | st.just(jpeg())), max_size=3),
       st.dictionaries(st.sampled_from(["name", "sku", "x"]), st.text(max_size=60), max_size=3))
def test_any_product_upload(served, product_id, files, fields):
    url, root = served
    response = requests.put(f"{url}/api/v1/catalogs/shelf/products/{quote(product_id, safe='')}", headers=AUTH, timeout=30,
                            files=[("images", (name or "x", data, "application/octet-stream")) for name, data in files], data=fields)
    answered_cleanly(response, root)
    assert requests.get(f"{url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).status_code == 200
