"""A real S3-compatible server on loopback: moto's standalone server in its own process.

The archive talks to it over HTTP exactly as it would to a bucket, configured only through
the environment variables a user sets for a real bucket (see `S3Server.env`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from ix_pipeline_tests.smtp import free_port

BUCKET = "ix-archive"
REGION = "us-east-1"
# moto accepts any credentials; these are distinctive so leak checks can search for them.
ACCESS_KEY_ID = "AKIAIXTESTKEY0000001"


def _restore_default_signals() -> None:
    # On these machines background processes may start with SIGINT/SIGTERM ignored
    # (FIELD_NOTES.md); the server must die when the fixture says so.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class S3Server:
    port: int
    process: subprocess.Popen[bytes]
    bucket: str = BUCKET
    region: str = REGION
    access_key_id: str = ACCESS_KEY_ID
    # A fresh secret per server, so a leak test cannot pass by accident on a constant.
    secret_access_key: str = field(default_factory=lambda: f"ix-s3-secret-{uuid.uuid4().hex}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, prefix: str) -> dict[str, str]:
        """What a user exports to put the archive in `s3://bucket/prefix`."""
        return {
            "IX_ARCHIVE_URI": f"s3://{self.bucket}/{prefix}",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            # A loopback test server speaks plain HTTP; a real bucket needs none of this.
            "AWS_ALLOW_HTTP": "true",
            # Delta commits are put-if-absent (`If-None-Match: *`): two writers racing for
            # the same log version cannot both win, so no commit is overwritten. This is
            # object_store's default for S3 in deltalake 1.x; we set it so the choice is
            # explicit and a `disabled` inherited from the shell cannot slip in.
            "AWS_CONDITIONAL_PUT": "etag",
        }

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
        )  # fmt: skip

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix/` in the bucket."""
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/")
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _wait_ready(server: S3Server, timeout: float = 30.0) -> None:
    # No proxy: the server is on loopback and a proxy from the environment must not see it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"moto server exited with {server.process.returncode}")
        try:
            opener.open(f"{server.endpoint}/moto-api/", timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start `python -m moto.server` on 127.0.0.1:<free port>, create the bucket, stop it after."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_restore_default_signals, start_new_session=True,
    )  # fmt: skip
    server = S3Server(port=port, process=proc)
    try:
        _wait_ready(server)
        server.client().create_bucket(Bucket=server.bucket)
        yield server
    finally:
        # Its own session: kill the whole group (werkzeug may fork a reloader child).
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
