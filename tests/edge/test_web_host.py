"""The installer's page without a token answers only to Host names that DNS rebinding cannot forge (issue 33), over a
real loopback socket: loopback names and IP addresses; any other name gets 421."""

from __future__ import annotations

import http.client
import json

import pytest

from edge.core.config import WebConfig
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.server import WebServer
from tests.edge.test_web import STATUS
from tools.mqtt_harness import free_port


def serve() -> WebServer:
    live = LiveState(snapshot_fps=5, recent=5)
    live.set_status(STATUS)
    return WebServer(WebConfig(enabled=True, host="127.0.0.1", port=free_port()), live, Metrics(live)).start()


@pytest.fixture(scope="module")
def page():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SHELFID_WEB_TOKEN", raising=False)
        server = serve()
    yield server
    server.stop()


def get(server: WebServer, path: str, host: str | None, headers: dict | None = None) -> tuple[int, bytes]:
    """GET with exactly this Host header (None: none at all, as an HTTP/1.0 client may send)."""
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    connection.putrequest("GET", path, skip_host=True)
    if host is not None:
        connection.putheader("Host", host)
    for key, value in (headers or {}).items():
        connection.putheader(key, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}", "localhost.evil.example",
                                  "[evil]:{port}", "shelf-cam.lan", ""])
@pytest.mark.parametrize("path", ["/api/status", "/", "/snapshot.jpg", "/metrics"])
def test_a_forged_host_is_refused_without_a_token(page, host, path):
    status, body = get(page, path, host.format(port=page.server_address[1]))
    assert status == 421, body
    answer = json.loads(body)
    assert answer["status"] == 421 and "localhost and IP addresses only" in answer["error"] and "set a token" in answer["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "shelf.localhost:{port}", "[::1]:{port}",
                                  "192.168.1.20:{port}", "localhost.", None])
def test_loopback_names_and_ip_addresses_are_served(page, host):
    status, body = get(page, "/api/status", None if host is None else host.format(port=page.server_address[1]))
    assert status == 200 and json.loads(body)["device"] == STATUS["device"]


def test_with_a_token_the_token_decides_whatever_the_host(monkeypatch):
    monkeypatch.setenv("SHELFID_WEB_TOKEN", "let-me-in")
    server = serve()
    try:
        assert get(server, "/api/status", "shelf.example.com", {"Authorization": "Bearer let-me-in"})[0] == 200
        assert get(server, "/api/status", "shelf.example.com")[0] == 401
    finally:
        server.stop()
