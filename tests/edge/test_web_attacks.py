"""The installer's page server under attack, on a real loopback socket: slow clients, odd methods and limits, framing, leaks."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time

import pytest
import requests

from edge.core.config import WebConfig
from edge.logs import StderrHandler
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.server import WebServer
from tests.edge.test_web import STATUS
from tools.mqtt_harness import free_port

HALF_SENT = b"GET /api/status HTTP/1.1\r\nHost: x\r\n"  # no blank line: the request never ends
FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'", "X-Content-Type-Options": "nosniff"}


def serve(token: str | None = None, monkeypatch=None, **limits) -> WebServer:
    if token is not None:
        monkeypatch.setenv("SHELFID_WEB_TOKEN", token)
    live = LiveState(snapshot_fps=5, recent=5)
    live.set_status(STATUS)
    return WebServer(WebConfig(enabled=True, host="127.0.0.1", port=free_port()), live, Metrics(live), **limits).start()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("SHELFID_WEB_TOKEN", raising=False)
    server = serve()
    yield server
    server.stop()


def raw(server: WebServer, method: str, target: str) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    connection.request(method, target)
    response = connection.getresponse()
    return response, response.read()


def half_sent(server: WebServer) -> socket.socket:
    sock = socket.create_connection(server.server_address[:2], timeout=10)
    sock.sendall(HALF_SENT)
    return sock


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sent before it closed the connection (blocks until then, at most the socket's timeout)."""
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:  # closed with our unread request in its buffer: a reset, just as closed
        pass
    finally:
        sock.close()
    return received


def test_half_sent_requests_hold_at_most_the_cap_of_threads_and_are_dropped_at_the_deadline(monkeypatch):
    monkeypatch.delenv("SHELFID_WEB_TOKEN", raising=False)
    server = serve(max_connections=8, timeout_s=3.0)
    baseline = threading.active_count()
    try:
        slow = [half_sent(server) for _ in range(60)]
        started = time.monotonic()
        response, body = raw(server, "GET", "/api/status")  # queued behind the 60: answered once they were all accepted
        assert response.status == 503 and response.getheader("Retry-After") and json.loads(body)["status"] == 503
        assert time.monotonic() - started < 2.0  # at once, not after the slow clients' deadline
        assert threading.active_count() - baseline <= 8
        answers = [closed_by_server(sock) for sock in slow]
        assert all(a == b"" or a.startswith(b"HTTP/1.0 503 ") for a in answers)  # held: dropped silently; over the cap: 503
        assert time.monotonic() - started < 3.0 + 4.0  # the held ones at their deadline, the rest at once
        assert requests.get(server.url + "/api/status", timeout=5).status_code == 200  # the slots are free again
    finally:
        server.stop()


def test_a_slow_loris_trickling_bytes_is_dropped_at_the_deadline(monkeypatch):
    monkeypatch.delenv("SHELFID_WEB_TOKEN", raising=False)
    server = serve(timeout_s=1.0)
    try:
        sock = socket.create_connection(server.server_address[:2], timeout=5)
        started = time.monotonic()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for byte in HALF_SENT:  # one byte every 0.1 s: each read is quick, the request never completes
                sock.send(bytes([byte]))
                time.sleep(0.1)
        assert time.monotonic() - started < 3.0
        sock.close()
    finally:
        server.stop()


@pytest.mark.parametrize("limit", ["²", "١", "٣", "1.0", "+1", " 1", "1_0", "0x3"])
def test_a_limit_that_is_not_ascii_digits_is_a_400_not_a_dropped_connection(server, limit):
    response = requests.get(server.url + "/api/events", params={"limit": limit}, timeout=5)
    assert response.status_code == 400 and response.json()["status"] == 400 and "limit" in response.json()["error"]


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "OPTIONS", "get", "BREW"])
def test_any_method_but_get_and_head_is_a_json_405(server, method):
    response, body = raw(server, method, "/api/status")
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD" and json.loads(body)["status"] == 405


@pytest.mark.parametrize("line,status", [(b"GET /api/status HTTP/9.x", 400), (b"GET /api/status HTTP/2.0", 505), (b"a b c d", 400),
                                         (b"POST /", 400)])
def test_a_request_line_the_stdlib_refuses_is_answered_in_json_with_headers(server, line, status):
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        sock.sendall(line + b"\r\n\r\n")
        answer = closed_by_server(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 %d " % status) and b"X-Frame-Options: DENY" in head and json.loads(body)["status"] == status


@pytest.mark.parametrize("method,target", [("GET", "/"), ("HEAD", "/"), ("GET", "/api/status"), ("GET", "/metrics"), ("GET", "/nope"),
                                           ("GET", "/snapshot.jpg"), ("POST", "/"), ("GET", "/api/events?limit=x")])
def test_every_answer_forbids_framing_and_sniffing(server, method, target):
    response, _ = raw(server, method, target)
    assert {key: response.getheader(key) for key in FRAMING} == FRAMING


@pytest.mark.parametrize("target", ["/metrics", "/api/status", "/api/events", "/api/events?limit=x", "/api/nope"])
def test_metrics_and_the_api_are_never_cached(server, target):
    response, _ = raw(server, "GET", target)
    assert response.getheader("Cache-Control") == "no-store"


def test_a_token_in_the_url_becomes_a_cookie_and_leaves_the_address_bar(monkeypatch):
    server = serve(token="let-me-in", monkeypatch=monkeypatch)
    try:
        browser = requests.Session()
        first = browser.get(server.url + "/?lang=pt&token=let-me-in", allow_redirects=False, timeout=5)
        assert first.status_code == 303 and first.headers["Location"] == "/?lang=pt"
        assert "HttpOnly" in first.headers["Set-Cookie"] and first.headers["Cache-Control"] == "no-store"
        page = browser.get(server.url + first.headers["Location"], timeout=5)  # the cookie now carries the token
        assert page.status_code == 200 and "Recent identifications" in page.text
        assert browser.get(server.url + "/?token=let-me-in", allow_redirects=False, timeout=5).headers["Location"] == "/"
        scrape = requests.get(server.url + "/metrics?token=let-me-in", allow_redirects=False, timeout=5)
        assert scrape.status_code == 200  # a scraper keeps its token in the URL: no cookie jar to follow a redirect with
        assert requests.get(server.url + "/?token=nope", allow_redirects=False, timeout=5).status_code == 403
    finally:
        server.stop()


def test_an_exception_in_a_handler_is_a_json_500_logged_once(server, monkeypatch, caplog, capfd):
    def broken() -> dict:
        raise RuntimeError("status exploded")

    monkeypatch.setattr(server.live, "status", broken)
    root = logging.getLogger()  # a CLI run earlier in this process (same xdist worker) left its stderr handler on the root
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers if not isinstance(h, StderrHandler)])
    with caplog.at_level(logging.DEBUG, logger="edge.web.server"):
        response, body = raw(server, "GET", "/api/status")
    assert response.status == 500 and json.loads(body)["status"] == 500 and "exploded" not in body.decode()
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and "/api/status" in failures[0].getMessage() and "status exploded" in str(failures[0].exc_info[1])
    assert "Traceback" not in capfd.readouterr().err
    assert requests.get(server.url + "/", timeout=5).status_code == 200  # and the server is still there
