"""Typed Dagster resources, built from settings (and so from the environment).

They hold configuration only; the work is done by `store/` and `lifecycle/`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from ix_pipeline.notifications.mail import Mail, MailSettings, send_mail
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import hot_connection

# deltalake reads these itself; we pass them explicitly only so one place shows which
# variables matter. Values never reach logs or run config.
_STORAGE_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_S3_ALLOW_UNSAFE_RENAME", "AWS_CONDITIONAL_PUT",
    "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "GOOGLE_SERVICE_ACCOUNT",
)  # fmt: skip


class HotStoreResource(dg.ConfigurableResource):
    """The hot DuckDB file. Connections are short-lived: open, work, close."""

    path: str = Field(description="The hot DuckDB file (IX_DATA_DIR/hot.duckdb).")

    @contextmanager
    def connection(
        self, *, read_only: bool = False, wait_seconds: float = 120.0
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        with hot_connection(Path(self.path), read_only=read_only, wait_seconds=wait_seconds) as con:
            yield con


class ArchiveResource(dg.ConfigurableResource):
    """The Delta Lake archive: a folder or an object-store URI (credentials from the env)."""

    uri: str = Field(description="Delta archive: a folder or s3://, az://, gs:// (IX_ARCHIVE_URI).")

    def archive(self) -> Archive:
        options = {k: os.environ[k] for k in _STORAGE_ENV if os.environ.get(k)}
        if self.uri.startswith(("s3://", "s3a://")):
            # Put-if-absent commits make concurrent writers safe without a lock table; it is
            # deltalake's default, set here so an inherited "disabled" cannot slip in unseen.
            options.setdefault("AWS_CONDITIONAL_PUT", "etag")
        return Archive(self.uri, options)


class MailResource(dg.ConfigurableResource):
    """SMTP when a host is configured, else `.eml` files in the outbox folder."""

    outbox: str = Field(description="Folder for .eml files when no SMTP host is set.")
    smtp_host: str | None = Field(
        default=None, description="SMTP server (IX_SMTP_HOST); empty: outbox."
    )
    smtp_port: int = Field(default=587, description="SMTP port (IX_SMTP_PORT).")
    smtp_user: str | None = Field(default=None, description="SMTP login (IX_SMTP_USER).")
    smtp_password: str | None = Field(
        default=None, description="From IX_SMTP_PASSWORD; never shown."
    )
    smtp_starttls: bool = Field(
        default=True, description="STARTTLS before login (IX_SMTP_STARTTLS)."
    )
    mail_from: str = Field(default="ix-pipeline@localhost", description="Sender (IX_MAIL_FROM).")
    default_to: str = Field(
        default="data-team@localhost", description="Recipient when a run names none (IX_MAIL_TO)."
    )

    def send(self, mail: Mail) -> str:
        return send_mail(
            mail,
            MailSettings(
                outbox=Path(self.outbox), smtp_host=self.smtp_host, smtp_port=self.smtp_port,
                smtp_user=self.smtp_user, smtp_password=self.smtp_password,
                smtp_starttls=self.smtp_starttls, mail_from=self.mail_from,
            ),
        )  # fmt: skip


class LandingResource(dg.ConfigurableResource):
    """Where Currents files and catalog documents arrive, and where bad input goes."""

    landing: str = Field(description="Landing folder: catalog/ and currents/ below it.")
    quarantine: str = Field(description="Where rejected files and records are written.")

    @property
    def currents(self) -> Path:
        return Path(self.landing) / "currents"

    @property
    def catalog(self) -> Path:
        return Path(self.landing) / "catalog"
