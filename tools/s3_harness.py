"""A real S3-compatible server on a free loopback port: moto's standalone server as a process (tests and tools).

    with MotoS3(folder) as s3:
        s3.public_bucket("bundles", "fleet")   # devices may GET under fleet/, nothing else, without credentials

Moto checks anonymous requests against the bucket policy as S3 does (a GET outside the granted prefix is 403), and
answers conditional GETs (304) and ranges (206) on objects, so a device can sync straight from the bucket's endpoint.
Clients find the credentials in the environment (`credentials()`); moto takes any.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tools.mqtt_harness import free_port, wait_listening

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "shelfid-test", "AWS_SECRET_ACCESS_KEY": "shelfid-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def public_read_policy(bucket: str, prefix: str) -> str:
    """Anyone may GET objects under `prefix`; listing the bucket and everything else needs credentials."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DevicesReadBundles", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/{prefix.strip('/')}/*"}]})


class MotoS3:
    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def credentials(self) -> dict[str, str]:
        return dict(CREDENTIALS)

    def start(self) -> MotoS3:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "moto.log"
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
        wait_listening(self.process, self.port, "moto's S3 server", log, 30)
        return self

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name=CREDENTIALS["AWS_DEFAULT_REGION"])

    def public_bucket(self, bucket: str, prefix: str) -> str:
        """Create `bucket` with anonymous read under `prefix`; returns the HTTP URL of that prefix."""
        client = self.client()
        client.create_bucket(Bucket=bucket)
        client.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket, prefix))
        return f"{self.url}/{bucket}/{prefix.strip('/')}/"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
