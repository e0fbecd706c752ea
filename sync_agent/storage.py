"""Where the static bundle tree (catalogs/ + blobs/) lives: a local folder, or an S3-compatible bucket.

Keys are the tree's relative paths (`catalogs/shelf/manifest.json`,
`blobs/sha256/<hex>`), so the same tree is servable as-is by any web server,
bucket or CDN. Writes of one key are atomic: a reader sees the old content or
the new, never half.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from models.safe_write import write_bytes_atomic
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
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise SyncError(f"storage key {key!r} leaves {self.root}")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
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


class S3Storage:
    """An S3-compatible bucket via boto3, configured the usual AWS way (environment, profile, instance role).

    Not run here (no bucket): written against boto3's documented client API.
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        try:
            import boto3
        except ImportError:
            raise SyncError("S3 storage needs boto3: pip install 'shelfid[s3]'") from None
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client("s3", endpoint_url=endpoint_url)
        self._missing = self.client.exceptions.NoSuchKey

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)  # S3 PUTs are atomic per object

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except self._missing:
            return None

    def has(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def keys(self, prefix: str) -> list[str]:
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            out += [obj["Key"][len(self.prefix):] for obj in page.get("Contents", [])]
        return sorted(out)
