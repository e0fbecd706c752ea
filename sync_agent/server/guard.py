"""What every request to the catalog server passes before a route sees it, and the one shape of its errors.

`RequestGuard` decides from the headers alone, before a byte of the body is read, in this order:
    Content-Length together with Transfer-Encoding   400 (a proxy in front could frame the body differently)
    an /api/ request without a token / with an unknown or out-of-scope one   401 / 403 (server.tokens.needed says
                                                     what each request needs: admin, write or read for its catalog)
    a declared Content-Length over max_request_bytes   413
then counts the body as it streams, chunked or not, and stops it at the cap
(413): the count, not a header, is the limit, so the form parser never spools
more than max_request_bytes to its temp files. Chunked bodies are therefore
accepted. A body that sends nothing for `body_idle_timeout_s` is cut off (408).
An answer given while the body is still unread closes the connection, so the
rest of it is never read. A client that hangs up before its body is complete
is one line in the log (not a traceback: anyone with a token could fill the log
with them). Every error, 404 and 405 included, is JSON `{"error": "...",
"status": N}`, and none names a path on this server.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Optional

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.core.text import printable
from sync_agent.server.settings import ServerSettings
from sync_agent.server.tokens import Tokens, needed

log = logging.getLogger(__name__)


def json_error(exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail, "status": exc.status_code}, exc.status_code, headers=exc.headers)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return json_error(exc)


async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return JSONResponse({"error": "; ".join(problems), "status": 422}, 422)


def header_problem(method: str, path: str, headers: Headers, settings: ServerSettings, tokens: Tokens) -> Optional[HTTPException]:
    """What the request line and headers alone decide: framing (400), the token (401/403), declared size (413)."""
    length = headers.get("content-length")
    if length is not None and "transfer-encoding" in headers:
        return HTTPException(400, "Content-Length together with Transfer-Encoding: send one of them")
    if length is not None and not re.fullmatch(r"[0-9]+", length):
        return HTTPException(400, f"Content-Length {length!r} is not a number of bytes")
    if need := needed(method, path):
        try:
            tokens.check(headers.get("authorization"), *need)
        except HTTPException as problem:
            return problem
    if length is not None and int(length) > settings.max_request_bytes:
        return HTTPException(413, f"request body over {settings.max_request_bytes} bytes")
    return None


class BodyRefused(StarletteHTTPException):
    """Raised from `receive` once a body passes the cap (413) or stalls (408); FastAPI lets HTTP errors out of body
    parsing, so the app answers with it."""


class RequestGuard:
    """Pure ASGI, around the whole app: header checks before any body is read, then the body counted as it streams."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, tokens: Tokens):
        self.app = app
        self.settings = settings
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cap = self.settings.max_request_bytes
        received = 0
        unread = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"

        idle_s = self.settings.body_idle_timeout_s

        async def counted() -> Message:
            nonlocal received, unread
            if not unread:  # the body is in (or there is none): what comes now is the disconnect, whenever it comes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), idle_s)
            except asyncio.TimeoutError:
                raise BodyRefused(408, f"the request body stalled: nothing arrived for {idle_s:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                unread = message.get("more_body", False)
                if received > cap:
                    unread = True
                    raise BodyRefused(413, f"request body over {cap} bytes")
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and unread:  # answered early: do not read (or wait for) the rest
                message = message | {"headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        problem = await run_in_threadpool(header_problem, scope["method"], scope["path"], headers, self.settings, self.tokens)
        if problem:  # (in a thread: a token is looked up in the database)
            await json_error(problem)(scope, receive, closing)
            return
        try:
            await self.app(scope, counted, closing)
        except ClientDisconnect:  # nobody is left to answer; uvicorn sends nothing to a closed connection
            log.info("%s %s: the client closed the connection before its request body was complete", scope["method"],
                     printable(scope["path"][:200]))
