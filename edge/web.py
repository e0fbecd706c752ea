"""The installer's page, served by the daemon itself (stdlib ThreadingHTTPServer; read-only; off by default).

    /                       the page: live view, recent identifications, health (edge/static/index.html)
    /snapshot.jpg           the live view with boxes and names (503 before the first frame)
    /api/status             health as JSON (schemas/status.schema.json)
    /api/events?limit=N     recent identifications, newest first, with thumbnail URLs
    /thumb/<event_id>/crop.jpg | catalog.jpg
    /metrics                Prometheus text format

A token (file, credential `web-token` or $SHELFID_WEB_TOKEN) is required when
bound to anything but loopback; it is accepted as `Authorization: Bearer`,
as a `token` query parameter (the page then keeps it in an HttpOnly cookie)
or as that cookie. Nothing here changes state.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from urllib.parse import parse_qs, urlsplit

from edge.config import WebConfig
from edge.errors import ShelfIDError
from edge.live import LiveState
from edge.metrics import Metrics

log = logging.getLogger(__name__)
MAX_TARGET = 2048
COOKIE = "shelfid_token"
THUMB = re.compile(r"^/thumb/([0-9a-f-]{36})/(crop|catalog)\.jpg$")


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    server_version = "shelfid"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        log.debug("web %s - %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if len(self.path) > MAX_TARGET:
            return self.error(HTTPStatus.REQUEST_URI_TOO_LONG, f"request target over {MAX_TARGET} characters")
        parts = urlsplit(self.path)
        try:
            query = parse_qs(parts.query, strict_parsing=bool(parts.query), max_num_fields=8)
        except ValueError as exc:
            return self.error(HTTPStatus.BAD_REQUEST, f"malformed query: {exc}")
        cookie = self.authorised(query)
        if cookie is None:
            return self.error(HTTPStatus.UNAUTHORIZED, "a token is needed: open /?token=… or send Authorization: Bearer …")
        route = {"/": self.page, "/snapshot.jpg": self.snapshot, "/api/status": self.status, "/api/events": self.events,
                 "/metrics": self.metrics}.get(parts.path)
        if route is not None:
            return route(query, cookie)
        if match := THUMB.match(parts.path):
            return self.thumb(*match.groups())
        return self.error(HTTPStatus.NOT_FOUND, f"no page {parts.path!r}: try /, /api/status, /api/events, /snapshot.jpg, /metrics")

    def do_POST(self) -> None:  # noqa: N802
        self.error(HTTPStatus.METHOD_NOT_ALLOWED, "this page is read-only", {"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST  # noqa: N815

    # --- auth ---

    def authorised(self, query: dict) -> str | None:
        """'' when allowed without setting a cookie, the token when the page should keep it, None when refused."""
        token = self.server.token
        if token is None:
            return ""
        offered = []
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            offered.append(header[7:])
        if "token" in query:
            offered.append(query["token"][0])
        try:
            jar = SimpleCookie(self.headers.get("Cookie", ""))
            if COOKIE in jar:
                offered.append(jar[COOKIE].value)
        except CookieError:
            pass
        for value in offered:
            if hmac.compare_digest(value.encode(), token.encode()):
                return token if "token" in query else ""
        return None

    # --- routes ---

    def page(self, query: dict, cookie: str) -> None:
        html = files("edge").joinpath("static/index.html").read_bytes()
        headers = {"Cache-Control": "no-store"}
        if cookie:
            headers["Set-Cookie"] = f"{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/"
        self.send(HTTPStatus.OK, "text/html; charset=utf-8", html, headers)

    def snapshot(self, query: dict, cookie: str) -> None:
        image = self.server.live.snapshot()
        if image is None:
            return self.error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet: the camera has not delivered one since start",
                              {"Retry-After": "1"})
        self.send(HTTPStatus.OK, "image/jpeg", image, {"Cache-Control": "no-store"})

    def status(self, query: dict, cookie: str) -> None:
        self.json(self.server.live.status())

    def events(self, query: dict, cookie: str) -> None:
        maximum = self.server.live.capacity
        raw = query.get("limit", [str(maximum)])[0]
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            return self.error(HTTPStatus.BAD_REQUEST, f"limit must be a whole number from 1 to {maximum}, got {raw[:20]!r}")
        out = []
        for r in self.server.live.recent(int(raw)):
            eid = r.event["event_id"]
            out.append(r.event | {"crop_url": f"/thumb/{eid}/crop.jpg" if r.crop_jpeg else None,
                                  "catalog_url": f"/thumb/{eid}/catalog.jpg" if r.catalog_jpeg else None})
        self.json(out)

    def thumb(self, event_id: str, which: str) -> None:
        recent = self.server.live.find(event_id)
        image = None if recent is None else recent.crop_jpeg if which == "crop" else recent.catalog_jpeg
        if image is None:
            return self.error(HTTPStatus.NOT_FOUND, f"no {which} thumbnail for event {event_id} (it may have scrolled out)")
        self.send(HTTPStatus.OK, "image/jpeg", image, {"Cache-Control": "max-age=3600"})

    def metrics(self, query: dict, cookie: str) -> None:
        self.send(HTTPStatus.OK, "text/plain; version=0.0.4; charset=utf-8", self.server.metrics.exposition())

    # --- responses ---

    def json(self, obj) -> None:
        self.send(HTTPStatus.OK, "application/json", json.dumps(obj, ensure_ascii=False).encode(), {"Cache-Control": "no-store"})

    def error(self, status: HTTPStatus, message: str, headers: dict | None = None) -> None:
        body = json.dumps({"error": message, "status": int(status)}).encode()
        self.send(status, "application/json", body, headers)

    def send(self, status: HTTPStatus, content_type: str, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class WebServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: WebConfig, live: LiveState, metrics: Metrics):
        self.token = config.token()
        if self.token is None and not config.loopback:
            raise ShelfIDError(f"web.host is {config.host}, not loopback: set web.token_file (or the credential 'web-token' "
                               f"or $SHELFID_WEB_TOKEN) so the page is not open to the network")
        self.live, self.metrics = live, metrics
        try:
            super().__init__((config.host, config.port), Handler)
        except OSError as exc:
            raise ShelfIDError(f"web page cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        self.thread = threading.Thread(target=self.serve_forever, name="web", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebServer:
        self.thread.start()
        log.info("installer page on %s%s", self.url, " (token required)" if self.token else "")
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
