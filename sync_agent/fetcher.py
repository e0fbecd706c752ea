"""The network behind one small interface: small documents with ETags, and resumable, size-capped blob downloads.

HTTPFetcher speaks HTTP(S) with requests; FileFetcher reads a bundle tree on a
local or mounted folder (`file://` server URLs: a USB stick, an NFS mount).

Every request is bounded in bytes (the caller's cap) and in time: `deadline`, a
time.monotonic() instant, is checked between reads, and each read waits at most
READ_TIMEOUT_S, so a server that trickles a byte every few seconds is cut off
at the deadline instead of holding the agent forever. Only regular files are
read from a folder: a FIFO or /dev/zero behind a file:// URL is refused.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from sync_agent.errors import SyncError

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


def check_deadline(url: str, deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise SyncError(f"GET {url}: not complete by its deadline (a slow or stalled server?); what arrived is kept and resumed")


class HTTPFetcher:
    def __init__(self, token: str | None = None, timeout_s: float = READ_TIMEOUT_S):
        import requests
        import urllib3

        self.session = requests.Session()
        self.session.headers["User-Agent"] = "shelfid-sync"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = (CONNECT_TIMEOUT_S, timeout_s)
        # reading the raw stream raises urllib3's errors, not requests' wrappers
        self._errors = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)

    def get(self, url: str, max_bytes: int, etag: str | None = None, deadline: float | None = None) -> Document:
        headers = {"If-None-Match": etag} if etag else {}
        deadline = deadline if deadline is not None else time.monotonic() + REQUEST_DEADLINE_S
        try:
            with self.session.get(url, headers=headers, timeout=self.timeout, stream=True) as r:
                if r.status_code == 304:
                    return Document(304, b"", etag)
                if r.status_code != 200:
                    raise SyncError(f"GET {url}: HTTP {r.status_code}")
                body = bytearray()
                for chunk in self._chunks(r, url, deadline):
                    body += chunk
                    if len(body) > max_bytes:
                        raise SyncError(f"GET {url}: larger than {max_bytes} bytes; refused")
                return Document(200, bytes(body), r.headers.get("ETag"))
        except self._errors as exc:
            raise SyncError(f"GET {url}: {exc}") from None

    def download(self, url: str, part: Path, size: int, deadline: float | None = None) -> int:
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have == size:
            return 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.session.get(url, headers=headers, timeout=self.timeout, stream=True) as r:
                if r.status_code == 200:
                    have = 0  # the server ignored the range: start over
                elif r.status_code != 206:
                    raise SyncError(f"GET {url}: HTTP {r.status_code}")
                written = 0
                with open(part, "r+b" if have else "wb") as f:
                    f.seek(have)
                    f.truncate()
                    for chunk in self._chunks(r, url, deadline):
                        if have + written + len(chunk) > size:
                            raise SyncError(f"GET {url}: more than the manifest's {size} bytes; refused")
                        f.write(chunk)
                        written += len(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                return written
        except self._errors as exc:
            raise SyncError(f"GET {url}: {exc}") from None

    @staticmethod
    def _chunks(response, url: str, deadline: float | None) -> Iterator[bytes]:
        """What arrives, as it arrives (read1: one socket read each), until the body ends or the deadline passes."""
        while True:
            check_deadline(url, deadline)
            chunk = response.raw.read1(CHUNK, decode_content=True)
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
            raise SyncError(f"{path}: {exc.strerror or exc}") from None
        return size


def fetcher_for(server_url: str, token: str | None) -> Fetcher:
    return FileFetcher() if server_url.startswith("file://") else HTTPFetcher(token)
