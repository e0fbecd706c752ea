"""The catalog server's API on a real uvicorn: auth, upload limits, clear JSON 4xx errors, no half-written state."""

from __future__ import annotations

import io
import zlib

import pytest
import requests
from PIL import Image

from edge.core.config import Config
from sync_agent.server.app import ServerSettings, create_app
from tests.sync.conftest import TOKEN, product_images
from tools.http_harness import ServerThread

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(tmp_path, keys):
    settings = ServerSettings(root=tmp_path / "server", signing_key=keys[0], token=TOKEN, config=Config(),
                              max_image_bytes=300_000, max_pixels=4_000_000,
                              max_request_bytes=1_000_000)
    thread = ServerThread(create_app(settings)).start()
    requests.post(f"{thread.url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).raise_for_status()
    yield thread.url, tmp_path / "server"
    thread.stop()


def jpeg(width: int = 64, height: int = 64, kind: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, kind)
    return out.getvalue()


def noisy_jpeg() -> bytes:
    import numpy as np

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A valid PNG header claiming side × side pixels: a few KB on the wire, 400 MP decoded."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (side // 8 + 1) * 100)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def put(url: str, files: list[tuple[str, bytes]], headers=AUTH, product: str = "p1") -> requests.Response:
    return requests.put(f"{url}/api/v1/catalogs/shelf/products/{product}", headers=headers, timeout=30,
                        files=[("images", (name, data, "application/octet-stream")) for name, data in files], data={"name": "P one"})


@pytest.mark.parametrize("headers,status", [({}, 401), ({"Authorization": "Bearer nope"}, 403), ({"Authorization": "Basic x"}, 401)])
def test_write_endpoints_need_the_token(api, headers, status):
    url, _ = api
    r = put(url, [("a.jpg", jpeg())], headers=headers)
    assert r.status_code == status and "token" in r.json()["error"].lower()
    assert requests.post(f"{url}/api/v1/catalogs/shelf/publish", headers=headers, timeout=10).status_code == status
    assert requests.delete(f"{url}/api/v1/catalogs/shelf", headers=headers, timeout=10).status_code == status


@pytest.mark.parametrize("name,data,status,message", [
    ("notes.txt", b"just some text", 415, "not an image"),
    ("anim.gif", jpeg(kind="GIF"), 415, "GIF images are not accepted"),
    ("cut.jpg", noisy_jpeg()[:20_000], 422, "not a readable image"),
    ("bomb.png", bomb_png(), 413, "pixels"),
    ("big.jpg", b"\xff\xd8" + b"\0" * 400_000, 413, "MB limit per image"),
    ("empty.jpg", b"", 422, "empty file"),
])
def test_bad_uploads_are_refused_and_leave_the_product_as_it_was(api, name, data, status, message):
    url, root = api
    assert put(url, [("good.jpg", jpeg())]).status_code == 201
    r = put(url, [("second.jpg", jpeg(32, 32)), (name, data)])
    assert r.status_code == status and message in r.json()["error"], r.text
    product = requests.get(f"{url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).json()["products"]
    assert product == [{"product_id": "p1", "sku": "p1", "name": "P one", "images": ["00.jpg"]}]
    assert not [p for p in (root / "work" / "shelf").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_requests_naming_bad_or_unknown_things_get_json_4xx(api):
    url, _ = api
    cases = [
        (requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "../etc"}, headers=AUTH, timeout=10), 422, "catalog_id"),
        (requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10), 409, "already exists"),
        (requests.post(f"{url}/api/v1/catalogs", data=b"{not json", headers=AUTH | {"Content-Type": "application/json"}, timeout=10),
         422, "JSON"),
        (requests.get(f"{url}/api/v1/catalogs/nope", headers=AUTH, timeout=10), 404, "no catalog 'nope'"),
        (put(url, [("a.jpg", jpeg())], product="bad id!"), 422, "product id"),
        (requests.delete(f"{url}/api/v1/catalogs/shelf/products/ghost", headers=AUTH, timeout=10), 404, "no product 'ghost'"),
        (requests.post(f"{url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=10), 409, "no products to publish"),
        (requests.get(f"{url}/no/such/path", timeout=10), 404, "Not Found"),
        (requests.get(f"{url}/blobs/sha256/" + "0" * 64, timeout=10), 404, "Not Found"),
        (put(url, [("huge.jpg", b"\xff\xd8" + b"\0" * 1_500_000)]), 413, "request body over"),
    ]
    for response, status, message in cases:
        assert response.status_code == status and message in response.json()["error"], (response.status_code, response.text)


def test_catalog_lifecycle_and_openapi(api):
    url, root = api
    files = [(p.name, p.read_bytes()) for p in product_images("coca-cola-can")]
    assert put(url, files, product="coca-cola-can").status_code == 201
    assert put(url, files, product="coca-cola-can").status_code == 200  # replaced
    published = requests.post(f"{url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120).json()
    assert published["version"] == 1 and published["products"] == 1
    manifest = requests.get(f"{url}/catalogs/shelf/manifest.json", timeout=10)
    assert manifest.status_code == 200 and manifest.headers.get("etag")
    assert requests.get(f"{url}/catalogs/shelf/manifest.json", headers={"If-None-Match": manifest.headers["etag"]},
                        timeout=10).status_code == 304
    [listed] = requests.get(f"{url}/api/v1/catalogs", headers=AUTH, timeout=10).json()
    assert listed["published_version"] == 1 and listed["products"] == 1
    paths = requests.get(f"{url}/openapi.json", timeout=10).json()["paths"]
    assert {"/api/v1/catalogs", "/api/v1/catalogs/{catalog_id}/publish", "/api/v1/catalogs/{catalog_id}/products/{product_id}"} <= set(paths)
    assert requests.delete(f"{url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).status_code == 204
    assert requests.get(f"{url}/catalogs/shelf/manifest.json", timeout=10).status_code == 404
    assert not list((root / "public" / "blobs" / "sha256").iterdir())  # no manifest names them any more
