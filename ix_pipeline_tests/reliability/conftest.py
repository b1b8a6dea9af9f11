"""Fixtures for reliability tests: one S3-compatible server per session on loopback, and an
archive in its own prefix of the bucket per test, configured only through the environment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ix_pipeline.settings import Settings, load_settings
from ix_pipeline_tests.reliability.s3 import S3Server, s3_server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_prefix() -> str:
    # One prefix per test: tests share the server, never each other's tables.
    return f"t-{uuid.uuid4().hex[:10]}/archive"


@pytest.fixture
def s3_settings(
    settings: Settings, s3: S3Server, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """`settings` with IX_ARCHIVE_URI=s3://… and the AWS_* variables set in the environment,
    which is what the `ix` subprocesses and deltalake itself read."""
    for key, value in s3.env(s3_prefix).items():
        monkeypatch.setenv(key, value)
    return load_settings(settings.data_dir)
