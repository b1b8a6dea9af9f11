"""Where things live, read from the environment with embedded defaults under ./data.

Every setting is an environment variable so that the same code location runs on a laptop,
in CI and against a real bucket without code changes. Secrets are read here and nowhere
else, and `Settings.__repr__` masks them so they cannot leak through logs or error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

SECRET_FIELDS = frozenset({"smtp_password"})


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    archive_uri: str
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = True
    mail_from: str = "ix-pipeline@localhost"
    mail_to: str = "data-team@localhost"
    auto_restore: bool = True
    expiring_soon_days: int = 7

    @property
    def hot_db(self) -> Path:
        return self.data_dir / "hot.duckdb"

    @property
    def landing(self) -> Path:
        return self.data_dir / "landing"

    @property
    def quarantine(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.data_dir / "dagster_home")

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.name in SECRET_FIELDS and getattr(self, f.name) else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"Settings({shown})"


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used; the message names it."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    # A typo ("flase") must not silently pick a side: it may turn automatic restores off.
    raise SettingsError(f"{name} must be true or false, got {env[name]!r}")


def _whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {env[name]!r}") from None


def load_settings(data_dir: str | Path | None = None) -> Settings:
    """Settings from the environment; `data_dir` (e.g. the CLI's --data-dir) wins over IX_DATA_DIR."""
    env = os.environ
    root = Path(data_dir or env.get("IX_DATA_DIR") or "data").resolve()
    return Settings(
        data_dir=root,
        archive_uri=env.get("IX_ARCHIVE_URI") or str(root / "archive"),
        smtp_host=env.get("IX_SMTP_HOST") or None,
        smtp_port=_whole_number(env, "IX_SMTP_PORT", 587),
        smtp_user=env.get("IX_SMTP_USER") or None,
        smtp_password=env.get("IX_SMTP_PASSWORD") or None,
        smtp_starttls=_flag(env, "IX_SMTP_STARTTLS", True),
        mail_from=env.get("IX_MAIL_FROM") or "ix-pipeline@localhost",
        mail_to=env.get("IX_MAIL_TO") or "data-team@localhost",
        auto_restore=_flag(env, "IX_AUTO_RESTORE", True),
        expiring_soon_days=_whole_number(env, "IX_EXPIRING_SOON_DAYS", 7),
    )
