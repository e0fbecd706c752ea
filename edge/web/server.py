"""The installer's page, served by the daemon itself (stdlib ThreadingHTTPServer; read-only but for teaching and zones; off by default).

    /                       the page: live view, recent identifications, health (edge/web/static/index.html)
    /snapshot.jpg           the live view with boxes and names (503 before the first frame)
    /api/status             health as JSON (schemas/status.schema.json)
    /api/events?limit=N     recent identifications, newest first, with thumbnail URLs
    /thumb/<event_id>/crop.jpg | catalog.jpg
    /metrics                Prometheus text format
    /api/unknowns, /unknown/<track>/<k>.jpg, /api/products?q=, POST /api/unknowns/<track>
                            teaching the device what it could not name (edge/web/teach.py)
    /api/zones              GET: the shelf zones, their state and the catalog's products (edge.web.zone_desk);
                            POST: save the zones drawn on the page into the config file
    /zones.js               the page's zone drawing (edge/web/static/zones.js)

A token (file, credential `web-token` or $SHELFID_WEB_TOKEN) is required when
bound to anything but loopback; it is accepted as `Authorization: Bearer`,
as a `token` query parameter (the page then keeps it in an HttpOnly cookie)
or as that cookie; a page opened with ?token= is redirected to itself without it,
so the token does not stay in the address bar. Without one the answer is 401, with
a wrong one 403: JSON for the API, and for a browser opening the page a small page
(edge/web/static/token.html) whose form sends GET /?token=…. Two routes change state: POST /api/unknowns/<track>
(teaching) and POST /api/zones (the shelf zones, saved into the config file). Each takes only a small
`application/json` body from this page's own origin — a form on another site cannot send that type, a script there
cannot without a CORS preflight this server never grants, and a browser's Origin or Sec-Fetch-Site header naming
another site is refused (403) — so another site cannot change the device, token or not.

Without a token (loopback only) the page answers only requests whose Host is a loopback name (localhost,
*.localhost) or an IP address, and 421 to any other: a browser made to resolve an attacker's name to 127.0.0.1 (DNS
rebinding, also through a port forwarded with `ssh -L`) sends that name, and cannot read the page. A page reached
under any other name needs the token.

Everything that arrives is hostile: at most `max_connections` connections are
served at once (the rest get a 503 from the accepting thread, no new thread),
the request line and headers must all arrive within `timeout_s` of the accept
(a slow-loris client is dropped), every answer forbids framing and sniffing,
and a handler that fails answers a JSON 500 and logs once.

One stdlib handler serves every route, so each route passes the same guards: the deadline, the token check, the
security headers.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from urllib.parse import parse_qs, urlencode, urlsplit

from edge.core.config import WebConfig
from edge.core.errors import ShelfIDError
from edge.web.live import LiveState
from edge.web.metrics import Metrics
from edge.web.teach import MAX_BODY, LessonError, Teacher, parse_lesson
from edge.web.zone_desk import MAX_BODY as ZONES_MAX_BODY
from edge.web.zone_desk import ZoneDesk, ZoneSaveError

log = logging.getLogger(__name__)
MAX_TARGET = 2048
COOKIE = "shelfid_token"
THUMB = re.compile(r"^/thumb/([0-9a-f-]{36})/(crop|catalog)\.jpg$")
UNKNOWN_CROP = re.compile(r"^/unknown/([0-9]{1,9})/([0-9]{1,2})\.jpg$")
TEACH = re.compile(r"^/api/unknowns/([0-9]{1,9})$")
LIMIT = re.compile(r"[0-9]{1,4}")  # ASCII only: str.isdigit accepts '²' and '١', which int() then refuses or reads
METHODS = ("GET", "HEAD", "POST")  # POST: the teaching route and /api/zones only
MAX_CONNECTIONS = 32  # a browser opens at most 6 to one host; a few installers and a scraper fit many times over
TIMEOUT_S = 5.0  # for the whole request line and headers after the accept, and for each write of the answer
SECURITY = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
PAGES = ("/", "/index.html")  # the page itself: refused with the token prompt whatever the Accept header says
PROMPT_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"  # no script, own form only
REFUSED = {HTTPStatus.UNAUTHORIZED: "a token is needed: open /?token=… or send Authorization: Bearer …",
           HTTPStatus.FORBIDDEN: "wrong token: the Authorization: Bearer header, ?token= or cookie sent is not this device's "
                                 "(the credential 'web-token', web.token_file or $SHELFID_WEB_TOKEN)"}
WRONG = b'<p class="wrong">That token is not right.</p>'
QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")  # RFC 9110: anything else ranks nothing
CLIENT_GONE = (ConnectionError, TimeoutError)  # the client vanished or stalled: nothing to answer, nothing wrong here


class Deadline(io.RawIOBase):
    """A socket's reads, all of them together within `seconds` from now.

    A socket timeout bounds each read, not the request: a client that sends one byte every few seconds would hold its
    thread for ever. Each read waits at most what is left, then raises TimeoutError, which the stdlib's
    handle_one_request turns into a closed connection.
    """

    def __init__(self, sock: socket.socket, seconds: float):
        super().__init__()
        self.sock, self.seconds, self.deadline = sock, seconds, time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"request not complete within {self.seconds:g} s of the connection")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    server_version = "shelfid"
    sys_version = ""
    default_request_version = "HTTP/1.0"  # the stdlib's HTTP/0.9 answers have no headers: no browser sends 0.9, every answer gets them
    responded = False  # True once the status line is out: after that an error can only cut the answer short

    def setup(self) -> None:
        self.timeout = self.server.timeout_s  # StreamRequestHandler sets it on the socket: bounds each write
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(Deadline(self.connection, self.server.timeout_s))

    def parse_request(self) -> bool:
        """The stdlib's checks of the request line and headers, then ours: only GET and HEAD exist here.

        Checked here rather than with do_* methods so that every other name (TRACE, CONNECT, PROPFIND, 'get') gets
        the JSON 405 instead of the stdlib's HTML 501.
        """
        if not super().parse_request():
            return False
        if self.command not in METHODS:
            path = urlsplit(self.path).path
            allow = "POST" if TEACH.match(path) else "GET, HEAD, POST" if path == "/api/zones" else "GET, HEAD"
            self.error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command[:20]!r} is not {allow.replace(', ', ' or ')} here", {"Allow": allow})
            return False
        return True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        log.debug("web %s - %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        try:
            self.route()
        except Exception as exc:  # the handler's boundary: answer and log here, never a dropped connection
            self.fail(exc)

    do_POST = do_GET  # noqa: N815 - one router; route() sends POST to the teaching route and /api/zones only

    def route(self) -> None:
        if len(self.path) > MAX_TARGET:
            return self.error(HTTPStatus.REQUEST_URI_TOO_LONG, f"request target over {MAX_TARGET} characters")
        if self.server.token is None and not host_allowed(self.headers.get("Host")):
            return self.error(HTTPStatus.MISDIRECTED_REQUEST, f"Host {self.headers.get('Host', '')[:100]!r} is not this page's: "
                              "without a token it answers to localhost and IP addresses only (open it as http://127.0.0.1:"
                              f"{self.server.server_address[1]}/, or set a token to use another name)")
        parts = urlsplit(self.path)
        try:
            query = parse_qs(parts.query, strict_parsing=bool(parts.query), max_num_fields=8)
        except ValueError as exc:
            return self.error(HTTPStatus.BAD_REQUEST, f"malformed query: {exc}")
        cookie = self.authorised(query)
        if isinstance(cookie, HTTPStatus):
            return self.refused(cookie, parts.path)
        if self.command == "POST":
            if parts.path == "/api/zones":
                return self.save_zones()
            if match := TEACH.match(parts.path):
                return self.teach(int(match.group(1)))
            return self.error(HTTPStatus.METHOD_NOT_ALLOWED, f"{parts.path[:200]!r} takes GET and HEAD only; POST is for "
                              "/api/unknowns/<track> and /api/zones", {"Allow": "GET, HEAD"})
        route = {"/": self.page, "/index.html": self.page, "/snapshot.jpg": self.snapshot, "/api/status": self.status,
                 "/api/events": self.events, "/metrics": self.metrics, "/api/unknowns": self.unknowns,
                 "/api/products": self.products, "/api/zones": self.zones, "/zones.js": self.zones_js}.get(parts.path)
        if route is not None:
            return route(query, cookie)
        if match := THUMB.match(parts.path):
            return self.thumb(*match.groups())
        if match := UNKNOWN_CROP.match(parts.path):
            return self.unknown_crop(int(match.group(1)), int(match.group(2)))
        if TEACH.match(parts.path):
            return self.error(HTTPStatus.METHOD_NOT_ALLOWED, "POST a lesson here (edge/web/teach.py)", {"Allow": "POST"})
        return self.error(HTTPStatus.NOT_FOUND, f"no page {parts.path!r}: try /, /api/status, /api/events, /snapshot.jpg, /metrics")

    def fail(self, exc: Exception) -> None:
        """One log line per failure, and a JSON 500 when nothing has been sent yet."""
        self.close_connection = True
        if isinstance(exc, CLIENT_GONE):
            log.debug("web %s: %s %s: client gone: %s", self.address_string(), self.command, self.path[:200], exc)
            return
        log.error("web: %s %s failed", self.command, self.path[:200], exc_info=exc)
        if self.responded:
            return
        try:
            self.error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error answering {self.command} {urlsplit(self.path).path[:200]!r}: "
                                                         f"the daemon's log has the details")
        except CLIENT_GONE:
            pass  # the client left as well; the failure is logged above

    # --- auth ---

    def authorised(self, query: dict) -> str | HTTPStatus:
        """'' when allowed without setting a cookie, the token when the page should keep it; when refused, 401 if no token
        came (an empty one, or a cookie that cannot be parsed, is none) and 403 if every one that came is wrong."""
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
        offered = [value for value in offered if value]
        for value in offered:
            if hmac.compare_digest(value.encode(), token.encode()):
                return token if "token" in query else ""
        return HTTPStatus.FORBIDDEN if offered else HTTPStatus.UNAUTHORIZED

    def refused(self, status: HTTPStatus, path: str) -> None:
        """The page (or a browser's navigation) gets a page to type the token into; the API, scrapers and images get JSON.

        The prompt says only whether a token came and whether it was wrong: never the one sent, nothing about the real one.
        """
        challenge = {"WWW-Authenticate": 'Bearer realm="ShelfID"'} if status == HTTPStatus.UNAUTHORIZED else {}
        if path not in PAGES and not prefers_html(self.headers.get("Accept", "")):
            return self.error(status, REFUSED[status], challenge)
        html = files("edge.web").joinpath("static/token.html").read_bytes()
        html = html.replace(b"<!--notice-->", WRONG if status == HTTPStatus.FORBIDDEN else b"")
        self.send(status, "text/html; charset=utf-8", html, {"Cache-Control": "no-store", "Content-Security-Policy": PROMPT_CSP} | challenge)

    # --- routes ---

    def page(self, query: dict, cookie: str) -> None:
        if cookie:
            return self.without_token(query, cookie)
        html = files("edge.web").joinpath("static/index.html").read_bytes()
        self.send(HTTPStatus.OK, "text/html; charset=utf-8", html, {"Cache-Control": "no-store"})

    def without_token(self, query: dict, cookie: str) -> None:
        """Keep the token in a cookie and take it out of the address bar (history, bookmarks, screenshots, shoulders).

        SameSite=Lax, not Strict: a token link opened from another site (a chat, a mail) is a cross-site navigation,
        and Strict would withhold the cookie from the redirected request, so the page would answer 401. Lax only adds
        top-level GETs from elsewhere, and nothing here changes state.
        """
        rest = urlencode({key: values for key, values in query.items() if key != "token"}, doseq=True)
        location = urlsplit(self.path).path + (f"?{rest}" if rest else "")
        self.send(HTTPStatus.SEE_OTHER, "text/plain; charset=utf-8", b"",
                  {"Location": location, "Cache-Control": "no-store", "Set-Cookie": f"{COOKIE}={cookie}; HttpOnly; SameSite=Lax; Path=/"})

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
        if not LIMIT.fullmatch(raw) or not 1 <= int(raw) <= maximum:
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
        self.send(HTTPStatus.OK, "image/jpeg", image, {"Cache-Control": "private, max-age=3600"})  # behind the token: no shared cache

    def zones(self, query: dict, cookie: str) -> None:
        if self.server.zones is None:
            return self.error(HTTPStatus.SERVICE_UNAVAILABLE, "zones are not ready yet: the daemon is starting", {"Retry-After": "1"})
        self.json(self.server.zones.view())

    def zones_js(self, query: dict, cookie: str) -> None:
        script = files("edge.web").joinpath("static/zones.js").read_bytes()
        self.send(HTTPStatus.OK, "text/javascript; charset=utf-8", script, {"Cache-Control": "no-store"})

    def save_zones(self) -> None:
        """POST /api/zones: checks that the request comes from this page and is whole, then edge.web.zone_desk saves."""
        if self.server.zones is None:
            return self.error(HTTPStatus.SERVICE_UNAVAILABLE, "zones are not ready yet: the daemon is starting", {"Retry-After": "1"})
        if (body := self.posted_json(ZONES_MAX_BODY, "zones")) is None:
            return
        try:
            result = self.server.zones.save(body)
        except ZoneSaveError as exc:
            out = json.dumps({"error": exc.message, "problems": exc.problems, "status": exc.status}, ensure_ascii=False).encode()
            return self.send(HTTPStatus(exc.status), "application/json", out, {"Cache-Control": "no-store"})
        self.json(result)

    def posted_json(self, limit: int, what: str) -> bytes | None:
        """The JSON body of a POST that changes state, or None once refused: whole, at most `limit` bytes, from this
        page (same_origin) and typed application/json, which a form on another site cannot send."""
        length = self.headers.get("Content-Length", "")
        if not re.fullmatch(r"[0-9]{1,9}", length):
            self.error(HTTPStatus.LENGTH_REQUIRED, "a Content-Length (a whole number of bytes) is needed")
            return None
        if int(length) > limit:
            self.error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{what} of {int(length):,} bytes: at most {limit:,}")
            return None
        # read first, whatever the answer: a body left unread makes the close a reset, which can lose the answer
        body = self.rfile.read(int(length))  # within the request's deadline (Deadline)
        if len(body) < int(length):
            self.error(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {length} bytes")
        elif not same_origin(self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site"), self.headers.get("Host")):
            self.error(HTTPStatus.FORBIDDEN, f"cross-site request refused: {what} comes only from this device's own page")
        elif self.headers.get_content_type() != "application/json":
            self.error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"send {what} as Content-Type: application/json")
        else:
            return body
        return None

    # --- teaching (edge/web/teach.py) ---

    def teacher(self) -> Teacher | None:
        if self.server.teacher is None:
            self.error(HTTPStatus.NOT_FOUND, "teaching is not available here (the page runs without the daemon's pipeline)")
        return self.server.teacher

    def unknowns(self, query: dict, cookie: str) -> None:
        if (teacher := self.teacher()) is not None:
            self.json([u | {"crop_urls": [f"/unknown/{u['track_id']}/{k}.jpg" for k in range(u["crops"])]} for u in teacher.unknowns()])

    def products(self, query: dict, cookie: str) -> None:
        text = query.get("q", [""])[0]
        if len(text) > 100:
            return self.error(HTTPStatus.BAD_REQUEST, "q is over 100 characters")
        if (teacher := self.teacher()) is not None:
            self.json(teacher.products(text))

    def unknown_crop(self, track_id: int, k: int) -> None:
        if (teacher := self.teacher()) is None:
            return
        image = teacher.crop(track_id, k)
        if image is None:
            return self.error(HTTPStatus.NOT_FOUND, f"no crop {k} of unknown track {track_id} (named, taught or scrolled out since)")
        self.send(HTTPStatus.OK, "image/jpeg", image, {"Cache-Control": "private, max-age=60"})

    def teach(self, track_id: int) -> None:
        """The one route that changes state: a small JSON body from this page's own origin (see the module's docstring)."""
        if (body := self.posted_json(MAX_BODY, "a lesson")) is None:
            return
        if (teacher := self.teacher()) is None:
            return
        try:
            self.json(teacher.teach(parse_lesson(track_id, body)))
        except LessonError as exc:
            self.error(HTTPStatus(exc.status), str(exc))

    def metrics(self, query: dict, cookie: str) -> None:
        self.send(HTTPStatus.OK, "text/plain; version=0.0.4; charset=utf-8", self.server.metrics.exposition(), {"Cache-Control": "no-store"})

    # --- responses ---

    def json(self, obj) -> None:
        self.send(HTTPStatus.OK, "application/json", json.dumps(obj, ensure_ascii=False).encode(), {"Cache-Control": "no-store"})

    def error(self, status: HTTPStatus, message: str, headers: dict | None = None) -> None:
        body = json.dumps({"error": message, "status": int(status)}).encode()
        self.send(status, "application/json", body, {"Cache-Control": "no-store"} | (headers or {}))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (a malformed request line, headers too long or too many) in this page's JSON shape."""
        status = HTTPStatus(code)
        self.close_connection = True
        self.error(status, message or status.phrase)

    def send(self, status: HTTPStatus, content_type: str, body: bytes, headers: dict | None = None) -> None:
        self.responded = True
        self.connection.settimeout(self.server.timeout_s)  # the read deadline may have left little: each write gets the full time
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (SECURITY | (headers or {})).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class WebServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # a burst waits in the kernel (no thread) and is answered at once, not after SYN retries

    def __init__(self, config: WebConfig, live: LiveState, metrics: Metrics, *, max_connections: int = MAX_CONNECTIONS,
                 timeout_s: float = TIMEOUT_S, teacher: Teacher | None = None):
        self.token = config.token()
        if self.token is None and not config.loopback:
            raise ShelfIDError(f"web.host is {config.host}, not loopback: set web.token_file (or the credential 'web-token' "
                               f"or $SHELFID_WEB_TOKEN) so the page is not open to the network")
        self.live, self.metrics, self.teacher = live, metrics, teacher
        self.zones: ZoneDesk | None = None  # set by the daemon (edge.daemon.page) once it knows its zones
        self.timeout_s, self.max_connections = timeout_s, max_connections
        self.slots = threading.BoundedSemaphore(max_connections)
        self.busy = busy_answer(max_connections)
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

    # --- connections ---

    def process_request(self, request: socket.socket, client_address) -> None:
        """A thread per connection while a slot is free; past the cap a 503 from this, the accepting, thread."""
        if not self.slots.acquire(blocking=False):
            return self.refuse(request, client_address)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()  # no thread started: nobody else would give the slot back
            raise

    def process_request_thread(self, request: socket.socket, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def refuse(self, request: socket.socket, client_address) -> None:
        log.debug("web %s: refused, %d connections open already", client_address[0], self.max_connections)
        try:
            request.setblocking(False)  # the accepting thread never waits on a client
            request.recv(65536)  # what the client sent already: unread, the close below would be a reset that loses the 503
        except OSError:
            pass  # nothing sent yet (or gone): either way the 503 and the close follow
        try:
            request.send(self.busy)
        except OSError:
            pass  # a fresh socket's send buffer is empty, so this fails only for a client already gone
        self.shutdown_request(request)

    def handle_error(self, request: socket.socket, client_address) -> None:
        """Whatever escaped a handler's own boundary (a client that vanished mid-answer, mostly): one log line, not a
        traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, CLIENT_GONE):
            log.debug("web %s: client gone: %s", client_address[0], exc)
        else:
            log.error("web %s: request failed", client_address[0], exc_info=exc)


def host_allowed(host: str | None) -> bool:
    """Whether a Host header names this page for a request without a token: none at all (HTTP/1.0, no browser), a
    loopback name (RFC 6761: browsers resolve *.localhost to loopback themselves) or an IP address. DNS rebinding needs
    a name the attacker's DNS answers for, so none of these can be one."""
    if host is None:
        return True
    name = host.strip().lower()
    if name.startswith("["):  # [v6] or [v6]:port
        literal, bracket, _ = name[1:].partition("]")
        return bool(bracket) and is_ip(literal)
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    name = name.rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or is_ip(name)


def same_origin(origin: str | None, fetch_site: str | None, host: str | None) -> bool:
    """Whether a request that changes state comes from this page: browsers send Origin (and Sec-Fetch-Site) with a POST,
    naming the page that sent it; a client that is no browser (curl, a script) sends neither and is judged by its token."""
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    return origin is None or urlsplit(origin).netloc.lower() == (host or "").lower()


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def prefers_html(accept: str) -> bool:
    """Whether an Accept header ranks text/html first (ties count): a browser opening a URL does; fetch(), <img>, curl and
    Prometheus send */*, image or text/plain types, and a wildcard alone is no preference."""
    ranks = {}
    for item in accept.split(",", 64)[:64]:
        kind, *params = item.split(";")
        q = next((p.strip()[2:] for p in params if p.strip()[:2].lower() == "q="), "1")
        ranks[kind.strip().lower()] = float(q) if QVALUE.fullmatch(q) else 0.0
    html = ranks.get("text/html", 0.0)
    return html > 0 and html >= max(ranks.values())


def busy_answer(cap: int) -> bytes:
    """The whole 503 for connections past the cap, built once: the accepting thread only sends it."""
    body = json.dumps({"error": f"busy: {cap} connections open already; retry in a moment", "status": 503}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Retry-After": "1", "Cache-Control": "no-store",
               "Connection": "close"} | SECURITY
    return ("HTTP/1.0 503 Service Unavailable\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body
