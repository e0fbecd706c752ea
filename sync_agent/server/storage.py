"""Where the static bundle tree (catalogs/ + blobs/) lives: a local folder, or an S3-compatible bucket.

Keys are the tree's relative paths (`catalogs/shelf/manifest.json`,
`blobs/sha256/<hex>`), so the same tree is servable as-is by any web server,
bucket or CDN. Writes of one key are atomic: a reader sees the old content or
the new, never half. `keys(prefix)` lists a folder; deleting a missing key is
not an error. Both implementations are run by the tests: LocalStorage behind
the catalog server and behind nginx, S3Storage against moto's S3 server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from models.safe_write import make_dirs, write_bytes_atomic
from sync_agent.errors import SyncError


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def has(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> list[str]: ...


class LocalStorage:
    def __init__(self, root: Path):
        self.root = root
        for top in ("catalogs", "blobs"):  # the tree's two folders, durable from the start (the server serves both)
            make_dirs(root / top)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise SyncError(f"storage key {key!r} leaves {self.root}")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        make_dirs(path.parent)  # a new catalog's folder, durable before the manifest written into it is
        write_bytes_atomic(path, data)

    def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        base = self.path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))


def check_key(key: str) -> str:
    """A tree key as every storage takes it: relative, '/'-separated, no empty, '.' or '..' part."""
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise SyncError(f"storage key {key!r} is not a relative path inside the tree")
    return key


def cache_control(key: str) -> str:
    """What a CDN or bucket in front of the tree tells caches: blobs never change (their name is their hash); manifests
    and signatures change in place, so every poll revalidates them (a conditional GET, answered 304 while unchanged)."""
    return "public, max-age=31536000, immutable" if key.startswith("blobs/") else "no-cache"


class S3Storage:
    """An S3-compatible bucket via boto3, credentials found the usual AWS way (environment, profile, instance role).

    The tree lives under `prefix` in `bucket`; devices can sync straight from the bucket's HTTP endpoint
    (`<endpoint>/<bucket>/<prefix>/`) when a bucket policy lets anyone s3:GetObject under the prefix (and nothing else),
    or from a CDN in front of it. Each object carries the Content-Type and Cache-Control a CDN needs (`cache_control`).
    Run against moto's S3 server (tests/sync/test_s3.py). Request checksums are sent only where S3 requires them:
    several S3-compatible stores refuse the CRC32 headers newer boto3 adds to every PUT.
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise SyncError("S3 storage needs boto3: pip install 'shelfid[s3]'") from None
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        config = Config(connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 3},
                        s3={"addressing_style": "path"} if endpoint_url else None,
                        request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        self._errors = (ClientError, BotoCoreError)

    def where(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    @contextmanager
    def _call(self, action: str, key: str = "") -> Iterator[None]:
        """boto3's errors as one SyncError line: what failed, where, and S3's own error code."""
        try:
            yield
        except self._errors as exc:
            error = getattr(exc, "response", {}).get("Error", {})
            reason = f"{error.get('Code')}: {error.get('Message')}" if error else str(exc)
            raise SyncError(f"S3 {action} {self.where(key)} failed ({reason}): check the bucket, its endpoint and the "
                            "credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE)") from None

    def put(self, key: str, data: bytes) -> None:
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        with self._call("put", check_key(key)):  # one PUT is atomic: readers see the old object or the new one
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type,
                                   CacheControl=cache_control(key))

    def get(self, key: str) -> bytes | None:
        with self._call("get", check_key(key)):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
            except self.client.exceptions.NoSuchKey:
                return None

    def has(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._call("head", check_key(key)):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise

    def delete(self, key: str) -> None:
        with self._call("delete", check_key(key)):  # deleting what is not there succeeds, as in LocalStorage
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def keys(self, prefix: str) -> list[str]:
        """Keys under the folder `prefix` (as LocalStorage: `catalogs` lists `catalogs/…`, never `catalogs-old/…`)."""
        folder = self.prefix + (check_key(prefix.strip("/")) + "/" if prefix.strip("/") else "")
        out = []
        with self._call("list", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
                out += [obj["Key"][len(self.prefix):] for obj in page.get("Contents", [])]
        return sorted(out)
