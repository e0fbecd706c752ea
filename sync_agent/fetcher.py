"""The network behind one small interface: small documents with ETags, and resumable, size-capped blob downloads.

HTTPFetcher speaks HTTP(S) with requests; FileFetcher reads a bundle tree on a
local or mounted folder (`file://` server URLs: a USB stick, an NFS mount).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from sync_agent.errors import SyncError

CHUNK = 256 * 1024


@dataclass(frozen=True)
class Document:
    status: int  # 200, or 304 when the ETag still matches
    body: bytes
    etag: str | None


class Fetcher(Protocol):
    def get(self, url: str, max_bytes: int, etag: str | None = None) -> Document: ...

    def download(self, url: str, part: Path, size: int) -> int:
        """Complete `part` to `size` bytes, resuming what is there; returns the bytes transferred."""
        ...


class HTTPFetcher:
    def __init__(self, token: str | None = None, timeout_s: float = 30.0):
        import requests

        self.session = requests.Session()
        self.session.headers["User-Agent"] = "shelfid-sync"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout_s = timeout_s
        self._errors = (requests.RequestException,)

    def get(self, url: str, max_bytes: int, etag: str | None = None) -> Document:
        headers = {"If-None-Match": etag} if etag else {}
        try:
            with self.session.get(url, headers=headers, timeout=self.timeout_s, stream=True) as r:
                if r.status_code == 304:
                    return Document(304, b"", etag)
                if r.status_code != 200:
                    raise SyncError(f"GET {url}: HTTP {r.status_code}")
                body = self._read_capped(r, url, max_bytes)
                return Document(200, body, r.headers.get("ETag"))
        except self._errors as exc:
            raise SyncError(f"GET {url}: {exc}") from None

    def download(self, url: str, part: Path, size: int) -> int:
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have == size:
            return 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.session.get(url, headers=headers, timeout=self.timeout_s, stream=True) as r:
                if r.status_code == 200:
                    have = 0  # the server ignored the range: start over
                elif r.status_code != 206:
                    raise SyncError(f"GET {url}: HTTP {r.status_code}")
                written = 0
                with open(part, "r+b" if have else "wb") as f:
                    f.seek(have)
                    f.truncate()
                    for chunk in r.iter_content(CHUNK):
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
    def _read_capped(response, url: str, max_bytes: int) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise SyncError(f"GET {url}: larger than {max_bytes} bytes; refused")
        return bytes(body)


class FileFetcher:
    """A bundle tree in a folder; ETags are the file's mtime and size."""

    def _path(self, url: str) -> Path:
        return Path(unquote(urlparse(url).path))

    def get(self, url: str, max_bytes: int, etag: str | None = None) -> Document:
        path = self._path(url)
        try:
            st = path.stat()
            tag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
            if etag == tag:
                return Document(304, b"", etag)
            if st.st_size > max_bytes:
                raise SyncError(f"{path}: larger than {max_bytes} bytes; refused")
            return Document(200, path.read_bytes(), tag)
        except OSError as exc:
            raise SyncError(f"{path}: {exc.strerror or exc}") from None

    def download(self, url: str, part: Path, size: int) -> int:
        path = self._path(url)
        try:
            if path.stat().st_size != size:
                raise SyncError(f"{path}: {path.stat().st_size} bytes, the manifest says {size}")
            shutil.copyfile(path, part)
        except OSError as exc:
            raise SyncError(f"{path}: {exc.strerror or exc}") from None
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        return size


def fetcher_for(server_url: str, token: str | None) -> Fetcher:
    return FileFetcher() if server_url.startswith("file://") else HTTPFetcher(token)
