"""moto's S3 server in a thread (port 0), shared by the whole test session; each test gets its
own bucket. moto serves objects and presigned GET/POST but enforces no signature, expiry or
POST-policy condition: tests assert on the policy the adapter builds."""

from __future__ import annotations

import atexit
import itertools
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


@dataclass
class MotoS3:
    endpoint_url: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def new_bucket(self) -> str:
        name = f"atelier-test-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name


_buckets = itertools.count(1)
_lock = threading.Lock()
_running: MotoS3 | None = None


def moto_s3() -> MotoS3:
    """Start the server on first use; it stops when the test process exits."""
    global _running
    with _lock:
        if _running is None:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            atexit.register(server.stop)
            _running = MotoS3(f"http://{host}:{port}")
        return _running
