"""A real S3-compatible server on loopback for the storage tests: moto's server in a thread of the test process.

    def test_lake(s3):  # an S3Server (tests/sdk/conftest.py), its bucket empty and ready
        block = RemoteFileSystem(basepath=s3.url("results"), settings=s3.settings)

Every test gets a new bucket, so tests never see each other's objects.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class S3Server:
    """A running moto server and one bucket of it."""

    endpoint_url: str
    bucket: str

    @property
    def settings(self) -> dict[str, Any]:
        """The fsspec storage options of a `remote-file-system` block that uses this server."""
        return {"key": ACCESS_KEY, "secret": SECRET_KEY, "client_kwargs": {"endpoint_url": self.endpoint_url}}

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def boto3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self) -> S3Server:
        """The same server with a new, empty bucket."""
        other = S3Server(self.endpoint_url, f"bucket-{uuid.uuid4().hex[:12]}")
        other.boto3_client().create_bucket(Bucket=other.bucket)
        return other

    def keys(self, prefix: str = "") -> list[str]:
        answer = self.boto3_client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def read(self, key: str) -> bytes:
        return bytes(self.boto3_client().get_object(Bucket=self.bucket, Key=key)["Body"].read())


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1 and a free port; stop it on exit."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}", "")
    finally:
        server.stop()
