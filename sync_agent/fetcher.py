"""The network behind one small interface: small documents with ETags, and resumable, size-capped blob downloads.

HTTPFetcher speaks HTTP(S) with requests; FileFetcher reads a bundle tree on a
local or mounted folder (`file://` server URLs: a USB stick, an NFS mount).
Failures are one line an installer can act on: what failed, the URL, what to
check (`catalog server http://h:8080/ not reachable (connection refused): …`),
never the text requests and urllib3 wrap around it; FetchError.status keeps an
HTTP status for callers that know more (a missing manifest: a wrong catalog id).

Every request is bounded in bytes (the caller's cap) and in time: `deadline`, a
time.monotonic() instant, is checked between reads, and each read waits at most
READ_TIMEOUT_S, so a server that trickles a byte every few seconds is cut off
at the deadline instead of holding the agent forever. Only regular files are
read from a folder: a FIFO or /dev/zero behind a file:// URL is refused.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from sync_agent.errors import DiskFullError, FetchError, SyncError

CHUNK = 256 * 1024
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 15.0  # one read; the deadline bounds the whole request
REQUEST_DEADLINE_S = 60.0  # a document (manifest, signature) when the caller gives no deadline


@dataclass(frozen=True)
class Document:
    status: int  # 200, or 304 when the ETag still matches
    body: bytes
    etag: str | None


class Fetcher(Protocol):
    def get(self, url: str, max_bytes: int, etag: str | None = None, deadline: float | None = None) -> Document: ...

    def download(self, url: str, part: Path, size: int, deadline: float | None = None) -> int:
        """Complete `part` to `size` bytes, resuming what is there; returns the bytes transferred."""
        ...


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_error(part: Path, exc: OSError) -> SyncError:
    """A download that cannot be written under data_dir: DiskFullError when the filesystem is full (the agent then makes room)."""
    if exc.errno in NO_SPACE:
        return DiskFullError(f"{part}: cannot write the download: no space left on device")
    return SyncError(f"{part}: cannot write the download ({exc.strerror or exc}): check free space and permissions under device.data_dir")


def check_deadline(url: str, deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise SyncError(f"GET {url}: not complete by its deadline (a slow or stalled server?); what arrived is kept and resumed")


def server_of(url: str) -> str:
    """`http://host:port/` of a URL: what a connection is made to."""
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}/"


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps, outermost first: requests wraps urllib3, which wraps the socket's error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = inner or current.__cause__ or current.__context__


def network_reason(exc: BaseException) -> str:
    """What failed on the network in a few words, never a library's own text; the innermost cause decides
    (urllib3's NewConnectionError is a ConnectTimeoutError even when the connection was refused)."""
    import ssl
    from http.client import IncompleteRead

    from urllib3.exceptions import TimeoutError as URLLibTimeout

    chain = list(causes(exc))
    for cause in reversed(chain):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "its TLS certificate is not trusted"
        if isinstance(cause, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(cause, (TimeoutError, URLLibTimeout)):
            return "timed out"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, IncompleteRead):
            return "the body ended early"
    if isinstance(chain[-1], OSError) and chain[-1].strerror:
        return chain[-1].strerror.lower()
    return type(chain[-1]).__name__


class HTTPFetcher:
    def __init__(self, token: str | None = None, timeout_s: float = READ_TIMEOUT_S):
        import requests
        import urllib3

        self.session = requests.Session()
        self.session.headers["User-Agent"] = "shelfid-sync"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.has_token = bool(token)
        self.timeout = (CONNECT_TIMEOUT_S, timeout_s)
        self._errors = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)

    def get(self, url: str, max_bytes: int, etag: str | None = None, deadline: float | None = None) -> Document:
        headers = {"If-None-Match": etag} if etag else {}
        deadline = deadline if deadline is not None else time.monotonic() + REQUEST_DEADLINE_S
        with self._request(url, headers, (200, 304)) as r:
            if r.status_code == 304:
                return Document(304, b"", etag)
            body = bytearray()
            for chunk in self._chunks(r, url, deadline):
                body += chunk
                if len(body) > max_bytes:
                    raise SyncError(f"GET {url}: larger than {max_bytes} bytes; refused")
            return Document(200, bytes(body), r.headers.get("ETag"))

    def download(self, url: str, part: Path, size: int, deadline: float | None = None) -> int:
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have == size:
            return 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with self._request(url, headers, (200, 206)) as r:
            if r.status_code == 200:
                have = 0  # the server ignored the range: start over
            written = 0
            try:
                with open(part, "r+b" if have else "wb") as f:
                    f.seek(have)
                    f.truncate()
                    for chunk in self._chunks(r, url, deadline, "; what arrived is kept and resumed"):
                        if have + written + len(chunk) > size:
                            raise SyncError(f"GET {url}: more than the manifest's {size} bytes; refused")
                        f.write(chunk)
                        written += len(chunk)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:  # the network's errors arrive as FetchError from _chunks: this is the disk
                raise write_error(part, exc) from None
            return written

    def _request(self, url: str, headers: dict[str, str], expected: tuple[int, ...]):
        """The response, its body not yet read, when the status is one of `expected`; else a FetchError saying what to check."""
        import requests

        try:
            r = self.session.get(url, headers=headers, timeout=self.timeout, stream=True)
        except requests.ConnectionError as exc:  # connect timeouts included
            raise FetchError(f"catalog server {server_of(url)} not reachable ({network_reason(exc)}): "
                             "is it running? check sync.server_url") from None
        except requests.Timeout:
            raise FetchError(f"GET {url}: no answer within {self.timeout[1]:g} s (a stalled server? check sync.server_url)") from None
        except self._errors as exc:
            raise FetchError(f"GET {url}: {network_reason(exc)}") from None
        if r.status_code in expected:
            return r
        r.close()
        if r.status_code in (401, 403):
            problem = "refused the token" if self.has_token else "asks for a token"
            raise FetchError(f"catalog server {server_of(url)} {problem} (HTTP {r.status_code}): check sync.token_file",
                             r.status_code)
        raise FetchError(f"GET {url}: HTTP {r.status_code} from the server", r.status_code)

    def _chunks(self, response, url: str, deadline: float | None, after: str = "") -> Iterator[bytes]:
        """What arrives, as it arrives (read1: one socket read each), until the body ends or the deadline passes."""
        while True:
            check_deadline(url, deadline)
            try:
                chunk = response.raw.read1(CHUNK, decode_content=True)
            except self._errors as exc:  # urllib3's errors: requests does not wrap the raw stream
                raise FetchError(f"GET {url}: the transfer broke off ({network_reason(exc)}){after}") from None
            if not chunk:
                return
            yield chunk


class FileFetcher:
    """A bundle tree in a folder; ETags are the file's mtime and size. Regular files only, read with a cap."""

    def _path(self, url: str) -> Path:
        return Path(unquote(urlparse(url).path))

    def _open(self, path: Path) -> tuple[int, os.stat_result]:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: opening a FIFO must not hang the agent
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise SyncError(f"{path}: not a regular file; refused")
        return fd, st

    def get(self, url: str, max_bytes: int, etag: str | None = None, deadline: float | None = None) -> Document:
        path = self._path(url)
        try:
            fd, st = self._open(path)
            with open(fd, "rb") as f:
                tag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
                if etag == tag:
                    return Document(304, b"", etag)
                body = f.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise SyncError(f"{path}: larger than {max_bytes} bytes; refused")
            return Document(200, body, tag)
        except OSError as exc:
            raise SyncError(f"{path}: {exc.strerror or exc}") from None

    def download(self, url: str, part: Path, size: int, deadline: float | None = None) -> int:
        path = self._path(url)
        try:
            fd, st = self._open(path)
            with open(fd, "rb") as src, open(part, "wb") as dst:
                if st.st_size != size:
                    raise SyncError(f"{path}: {st.st_size} bytes, the manifest says {size}")
                copied = 0
                while chunk := src.read(CHUNK):
                    check_deadline(url, deadline)
                    copied += len(chunk)
                    if copied > size:  # the file grew while being copied
                        raise SyncError(f"{path}: more than the manifest's {size} bytes; refused")
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise write_error(part, exc) from None
            raise SyncError(f"{path}: {exc.strerror or exc}") from None
        return size


def fetcher_for(server_url: str, token: str | None) -> Fetcher:
    return FileFetcher() if server_url.startswith("file://") else HTTPFetcher(token)
