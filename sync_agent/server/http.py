"""How the catalog server holds its connections: uvicorn's h11 protocol with the deadlines and the cap uvicorn lacks.

uvicorn closes a kept-alive connection after `timeout_keep_alive` of silence, but has no deadline for a request's
line and headers (a connection that sends nothing, or one header line every few seconds, stays open for ever), and its
`limit_concurrency` counts idle connections with busy ones, so a few hundred silent connections would make it answer
503 to every real request. Here instead:

    header_timeout_s   the request line and headers must be complete within this of the connection opening (or of
                       the previous answer, on a kept-alive connection); bytes arriving do not extend it
    max_connections    past it, a new connection closes the one that has waited longest for its headers, and gets
                       a 503 of its own only when every open connection is inside a request
    keep_alive_s       uvicorn's own: a kept-alive connection silent for this long is closed
    16 KB              of request line and headers at most (h11's limit; 431 past it)

Request bodies have their own bounds in server.guard (size, a stall) and server.detect (the whole photo's deadline).
The protocol is named explicitly rather than `auto`, so a host with httptools installed runs the same code.
"""

from __future__ import annotations

import asyncio
import json
import logging

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sync_agent.server.settings import ServerSettings

log = logging.getLogger(__name__)
MAX_HEADER_BYTES = 16 * 1024
BUSY_BODY = json.dumps({"error": "busy: every connection is inside a request; retry in a moment", "status": 503}).encode()
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\n"
        b"content-length: " + str(len(BUSY_BODY)).encode() + b"\r\n\r\n" + BUSY_BODY)


class DeadlineProtocol(H11Protocol):
    """One connection; `header_timeout_s` and `max_connections` are set on the subclass `protocol_for` makes."""

    header_timeout_s: float = 10.0
    max_connections: int = 256

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.header_timer: asyncio.TimerHandle | None = None
        self.waiting_since = self.loop.time()
        if len(self.connections) > self.max_connections and not self.close_longest_waiting():
            log.warning("refused a connection: %d open, all inside a request", len(self.connections) - 1)
            transport.write(BUSY)
            transport.close()
            return
        self.wait_for_headers()

    def wait_for_headers(self) -> None:
        """From now the next request's line and headers have `header_timeout_s` to arrive."""
        self.stop_waiting()
        self.waiting_since = self.loop.time()
        self.header_timer = self.loop.call_later(self.header_timeout_s, self.headers_overdue)

    def stop_waiting(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def waiting_for_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

    def headers_overdue(self) -> None:
        self.header_timer = None
        if self.waiting_for_headers():
            log.debug("closed a connection from %s: no complete request within %g s", self.client, self.header_timeout_s)
            self.transport.close()

    def close_longest_waiting(self) -> bool:
        """Close the connection (not this one) that has waited longest for a request's headers; whether there was one."""
        idle = [c for c in self.connections if c is not self and isinstance(c, DeadlineProtocol) and c.waiting_for_headers()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.waiting_since)
        log.debug("%d connections open: closed the one from %s, waiting for headers for %.1f s", len(self.connections),
                  oldest.client, self.loop.time() - oldest.waiting_since)
        oldest.stop_waiting()
        oldest.transport.close()
        self.connections.discard(oldest)  # counted out now; connection_lost follows on the next loop turn
        return True

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request's headers are in: the body has its own bounds
            self.stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.wait_for_headers()  # a kept-alive connection: the next request has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_waiting()
        super().connection_lost(exc)


def protocol_for(settings: ServerSettings) -> type[DeadlineProtocol]:
    return type("CatalogServerProtocol", (DeadlineProtocol,), {"header_timeout_s": settings.header_timeout_s,
                                                               "max_connections": settings.max_connections})


def server_config(app, host: str, port: int, settings: ServerSettings) -> uvicorn.Config:
    """uvicorn's settings for the catalog server: the protocol above, its keep-alive, no access log (server.store logs
    every change)."""
    return uvicorn.Config(app, host=host, port=port, http=protocol_for(settings), timeout_keep_alive=settings.keep_alive_s,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, log_level="warning", access_log=False)
