"""Fixtures: a data dir under tmp_path with real DuckDB and Delta files, and helpers that run
the real ingestion, expiry and restore against it."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from ix_pipeline.ingest.catalog import ingest_catalog
from ix_pipeline.ingest.currents_ingest import ingest_currents
from ix_pipeline.orchestration.instance import ensure_dagster_home
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import hot_connection
from ix_pipeline.store.schema import DERIVED_TABLES

warnings.filterwarnings("ignore", message=".*owners.*")

_ENV = [k for k in os.environ if k.startswith("IX_")] + ["DAGSTER_HOME"]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for key in _ENV:
        monkeypatch.delenv(key, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("IX_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    s = load_settings(data)
    ensure_dagster_home(data / "dagster_home")
    (s.landing / "catalog").mkdir(parents=True)
    (s.landing / "currents").mkdir(parents=True)
    yield s


def ingest(settings: Settings, *paths: Path) -> tuple:
    """Catalog then Currents, the same functions the `ingest` job calls."""
    targets = list(paths) or [settings.landing]
    with hot_connection(settings.hot_db) as con:
        cat = ingest_catalog(con, targets, settings.quarantine, f"test-{uuid.uuid4().hex[:6]}")
        cur = ingest_currents(con, targets, settings.quarantine, f"test-{uuid.uuid4().hex[:6]}")
    return cat, cur


def archive_of(settings: Settings) -> Archive:
    return Archive(settings.archive_uri)


def q(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    with hot_connection(settings.hot_db, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def derived_tables(settings: Settings) -> dict[str, list[tuple]]:
    """Every table ingestion derives from events, lists compared as sets (their order
    depends on how batches were folded)."""
    return {name: [tuple(sorted(v) if isinstance(v, list) else v for v in row)
                   for row in q(settings, f"SELECT * FROM {name} ORDER BY ALL")]  # noqa: S608
            for name in DERIVED_TABLES}  # fmt: skip


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
