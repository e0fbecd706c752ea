"""The catalog server under hostile requests, over raw sockets to a real uvicorn: bodies refused before they are read,
bodies capped by counting, ids checked whole, no server path in any answer, JSON 405 for unknown methods."""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
import requests
from urllib3 import encode_multipart_formdata

from edge.core.config import Config
from sync_agent.server.app import ServerSettings, create_app
from tests.sync.conftest import TOKEN
from tests.sync.test_server import AUTH, jpeg, put
from tools.http_harness import ServerThread

CAP = 3_000_000  # over the form parser's 1 MB in-memory spool, so an upload reaches a temp file
PRODUCT = "/api/v1/catalogs/shelf/products/p1"


@pytest.fixture
def served(tmp_path, keys):
    settings = ServerSettings(root=tmp_path / "server", signing_key=keys[0], token=TOKEN, config=Config(), max_request_bytes=CAP)
    thread = ServerThread(create_app(settings)).start()
    requests.post(f"{thread.url}/api/v1/catalogs", json={"catalog_id": "shelf"}, headers=AUTH, timeout=10).raise_for_status()
    yield thread, tmp_path / "server"
    thread.stop()


def send_head(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    """A connection that has sent the request line, `headers` and the start of a body, and nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock.sendall("\r\n".join(lines).encode("latin-1") + body)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())


def hung_up(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def multipart_start(boundary: str = "x") -> tuple[dict[str, str], bytes]:
    """Headers and the opening of a form whose one image part is still streaming."""
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, head.encode() + b"\xff\xd8"


def open_temp_files() -> dict[int, int]:
    """This process's open files in the temp folder (the form parser's spools; the server runs in a thread here): fd -> size."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(tempfile.gettempdir()):
                out[int(fd)] = os.stat(f"/proc/self/fd/{fd}").st_size
        except OSError:  # closed meanwhile, or the listing's own fd
            continue
    return out


@pytest.mark.parametrize("framing", [{"Content-Length": str(CAP)}, {"Transfer-Encoding": "chunked"}])
@pytest.mark.parametrize("auth,status", [({}, 401), ({"Authorization": "Bearer nope"}, 403)])
def test_an_upload_without_the_token_is_refused_before_its_body_is_read(served, framing, auth, status):
    thread, _ = served
    form, start = multipart_start()
    body = chunk(start + b"\0" * 16_000) if "Transfer-Encoding" in framing else start + b"\0" * 16_000
    sock = send_head(thread.port, "PUT", PRODUCT, framing | auth | form, body)  # 16 kB of a body of 3 MB or more
    got, headers, answer = read_answer(sock)
    assert got == status and "token" in answer["error"] and answer["status"] == status
    assert headers["connection"] == "close" and hung_up(sock)  # the rest of the body is never read
    sock.close()


@pytest.mark.parametrize("auth", [{}, AUTH])
def test_content_length_with_transfer_encoding_is_refused_whatever_the_token(served, auth):
    thread, root = served
    form, start = multipart_start()
    sock = send_head(thread.port, "PUT", PRODUCT, {"Content-Length": "10", "Transfer-Encoding": "chunked"} | auth | form,
                     chunk(start + b"\0" * 16_000))
    got, headers, answer = read_answer(sock)
    assert got == 400 and "Transfer-Encoding" in answer["error"] and headers["connection"] == "close"
    sock.close()
    assert requests.get(f"{thread.url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).json()["products"] == []


def test_a_chunked_body_is_counted_and_stopped_at_the_cap(served):
    thread, root = served
    before = open_temp_files()
    form, start = multipart_start()
    sock = send_head(thread.port, "PUT", PRODUCT, {"Transfer-Encoding": "chunked"} | AUTH | form, chunk(start))
    sock.settimeout(1)
    piece, sent, spooled = chunk(b"\0" * 65_536), 0, 0
    while sent < 100 * CAP and not select.select([sock], [], [], 0)[0]:
        try:
            sock.sendall(piece)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            break  # the server stopped reading
        sent += len(piece)
        spooled = max([spooled, *(size for fd, size in open_temp_files().items() if fd not in before)])
    sock.settimeout(5)
    got, _, answer = read_answer(sock)
    assert got == 413 and answer["error"] == f"request body over {CAP} bytes", answer
    assert sent < 100 * CAP and 0 < spooled <= CAP  # the parser's temp file reached the cap and never passed it
    sock.close()
    assert not set(open_temp_files()) - set(before)  # and it was closed
    assert requests.get(f"{thread.url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).json()["products"] == []


def test_a_chunked_upload_under_the_cap_is_accepted(served):
    thread, _ = served
    body, content_type = encode_multipart_formdata({"images": ("a.jpg", jpeg(), "image/jpeg"), "name": "P one"})
    r = requests.put(f"{thread.url}{PRODUCT}", data=iter([body[:100], body[100:]]), headers=AUTH | {"Content-Type": content_type},
                     timeout=10)  # a generator: requests sends it chunked
    assert r.status_code == 201 and r.json()["images"] == ["00.jpg"], r.text


def test_ids_with_a_trailing_newline_are_refused_and_nothing_is_created(served):
    thread, root = served
    url = thread.url
    assert put(url, [("a.jpg", jpeg())], product="a%0A").status_code == 422
    assert requests.delete(f"{url}/api/v1/catalogs/shelf/products/a%0A", headers=AUTH, timeout=10).status_code == 422
    assert requests.get(f"{url}/api/v1/catalogs/shelf%0A", headers=AUTH, timeout=10).status_code == 422
    r = requests.post(f"{url}/api/v1/catalogs", json={"catalog_id": "shelf2\n"}, headers=AUTH, timeout=10)
    assert r.status_code == 422 and "catalog_id" in r.json()["error"]
    assert requests.get(f"{url}/api/v1/catalogs/shelf", headers=AUTH, timeout=10).json()["products"] == []
    assert sorted(p.name for p in (root / "work").iterdir()) == ["shelf"]
    assert not list((root / "work" / "shelf").iterdir())  # records are in the database; the work area holds images only


def test_publish_answers_name_no_path_of_the_server(served):
    thread, root = served
    work = root / "work" / "shelf"
    assert put(thread.url, [("a.jpg", jpeg())]).status_code == 201
    shutil.rmtree(work / "p1")  # listed in products.csv, no images left: the build fails naming its folder
    r = requests.post(f"{thread.url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120)
    assert r.status_code == 422 and "cannot be built" in r.json()["error"] and str(root) not in r.text, r.text
    assert put(thread.url, [("a.jpg", jpeg())]).status_code == 200  # its images back
    (work / "p1" / "00.jpg").write_bytes(b"\xff\xd8 broken since")  # damaged on disk: skipped by the build, reported by path
    assert put(thread.url, [("b.jpg", jpeg())], product="p2").status_code == 201
    r = requests.post(f"{thread.url}/api/v1/catalogs/shelf/publish", headers=AUTH, timeout=120)
    assert r.status_code == 201 and str(root) not in r.text and str(Path(tempfile.gettempdir())) + "/" not in r.text, r.text
    assert any(line.startswith("shelf/p1/00.jpg: ") for line in r.json()["skipped"]), r.text


@pytest.mark.parametrize("method,path", [("TRACE", "/api/v1/catalogs"), ("PROPFIND", "/api/v1/catalogs"),
                                         ("PROPFIND", "/blobs/sha256/" + "0" * 64), ("TRACE", "/healthz")])
def test_methods_the_api_does_not_have_get_json_405(served, method, path):
    thread, _ = served
    r = requests.request(method, f"{thread.url}{path}", timeout=10)
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed", "status": 405}, r.text
