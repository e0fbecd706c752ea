"""The installer's page fuzzed over a real loopback socket: any path, query, token, cookie and Authorization header.

Each request gets an answer below 500 (JSON for the API, never the real token echoed), and the server keeps serving.
Bounded in CI by the Hypothesis profile in tests/conftest.py; HYPOTHESIS_PROFILE=long runs 5,000 examples per target.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.core.config import WebConfig
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.server import WebServer
from tests.edge.test_web import STATUS
from tools.mqtt_harness import free_port

TOKEN = "fuzz-token-0123456789abcdef"
PATHS = ["/", "/index.html", "/snapshot.jpg", "/api/status", "/api/events", "/metrics", "/thumbs/1.jpg", "/thumbs/../x", "/nope"]
KEYS = ["limit", "token", "since", "format", "x"]
text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@pytest.fixture(scope="module", params=[None, TOKEN], ids=["open", "token"])
def server(request):
    mp = pytest.MonkeyPatch()
    if request.param:
        mp.setenv("SHELFID_WEB_TOKEN", request.param)
    else:
        mp.delenv("SHELFID_WEB_TOKEN", raising=False)
    live = LiveState(snapshot_fps=5, recent=5)
    live.set_status(STATUS)
    live.set_frame(np.zeros((120, 160, 3), np.uint8), [((10, 10, 60, 90), "Chá Mate", True)])  # the snapshot has a frame
    server = WebServer(WebConfig(enabled=True, host="127.0.0.1", port=free_port()), live, Metrics(live)).start()
    yield server
    server.stop()
    mp.undo()


def ask(server: WebServer, target: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def check(server: WebServer, status: int, kind: str, body: bytes) -> None:
    assert status < 500, body[:300]
    if kind.startswith("application/json"):
        json.loads(body)  # the API's errors are JSON too
    assert TOKEN.encode() not in body  # never echoed, whatever was offered
    assert ask(server, "/api/status", {"Authorization": f"Bearer {TOKEN}"})[0] == 200  # still serving


@given(st.sampled_from(PATHS), st.lists(st.tuples(st.sampled_from(KEYS) | text, text), max_size=10), st.booleans())
def test_any_query_on_any_page_is_answered_below_500(server, path, pairs, raw):
    # raw: the query as typed (only the characters HTTP cannot carry escaped); else each part percent-encoded
    encode = (lambda s: quote(s, safe="=&;%/?+")) if raw else (lambda s: quote(s, safe=""))
    query = "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs)
    check(server, *ask(server, f"{path}?{query}" if query else path))


@given(st.sampled_from(PATHS), text, text, st.sampled_from(["Bearer ", "Basic ", ""]))
def test_any_cookie_and_authorization_header_is_answered_below_500(server, path, cookie, credential, scheme):
    latin = lambda s: s.encode("utf-8").decode("latin-1")  # noqa: E731  (what a client puts on the wire)
    headers = {"Cookie": latin(cookie), "Authorization": latin(scheme + credential), "Accept": "text/html"}
    headers = {k: v for k, v in headers.items() if not any(c in v for c in "\r\n\0")}  # http.client refuses these itself
    check(server, *ask(server, path, headers))


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200))
def test_any_printable_request_target_is_answered_below_500(server, target):
    check(server, *ask(server, target if target.startswith("/") else "/" + target))
