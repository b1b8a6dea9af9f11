"""The per-item user data CSV on the hand-built world: columns, rows, refusals."""

from __future__ import annotations

import csv
import typing as t
from pathlib import Path

import duckdb
import pytest

from ix_pipeline.audience.expressions import LEGACY_POLICY
from ix_pipeline.exports.item_csv import (
    CAMPAIGN_COLUMNS,
    CANVAS_COLUMNS,
    ItemDataDeleted,
    ItemDataExpired,
    UnknownItem,
    export_item_csv,
)
from ix_pipeline.store.hot import hot_connection
from ix_pipeline_tests.exports.world import build_store, copy_store, mark_expired


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("world"))


@pytest.fixture
def con(store: Path) -> t.Iterator[duckdb.DuckDBPyConnection]:
    with hot_connection(store, read_only=True) as connection:
        yield connection


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_campaign_csv(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    assert export_item_csv(con, "cmp_a", out) == 4
    header, rows = read_csv(out)
    assert tuple(header) == CAMPAIGN_COLUMNS == (
        "user_id", "external_user_id", "variation_name", "variation_api_id", "in_control_group",
        "last_received", "opened", "clicked", "converted",
    )  # fmt: skip
    assert rows == [
        ["u1", "ext_1", "Variant 1", "var_a1", "false", "2025-03-02T10:00:00Z", "true", "true", "true"],
        ["u2", "ext_2", "Variant 2", "var_a2", "false", "2025-03-03T10:00:00Z", "false", "true", "false"],
        ["u3", "ext_3", "Control", "ctl_a", "true", "", "false", "false", "true"],
        ["u4", "ext_4", "Control", "ctl_a", "true", "", "false", "false", "false"],
    ]  # fmt: skip


def test_single_variant_campaign_csv(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "b.csv"
    assert export_item_csv(con, "cmp_b", out) == 2
    _, rows = read_csv(out)
    assert rows == [
        ["u1", "ext_1", "Push", "var_b1", "false", "2025-03-21T09:00:00Z", "true", "false", "false"],
        ["u5", "ext_5", "Push", "var_b1", "false", "2025-01-20T09:00:00Z", "false", "false", "false"],
    ]  # fmt: skip


def test_canvas_csv(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    assert export_item_csv(con, "cnv_x", out) == 3
    header, rows = read_csv(out)
    assert tuple(header) == CANVAS_COLUMNS
    assert header[-2:] == ["last_entered", "steps_received"]
    assert rows == [
        ["u1", "ext_1", "Path 1", "cvar_1", "false", "2025-03-04T09:30:00Z", "false", "true",
         "true", "2025-03-04T09:00:00Z", "stp_1"],
        ["u2", "ext_2", "Path 2", "cvar_2", "false", "2025-03-05T12:00:00Z", "true", "false",
         "false", "2025-03-05T09:00:00Z", "stp_2"],
        ["u7", "ext_7", "Control", "cvar_ctl", "true", "", "false", "false", "true",
         "2025-03-04T09:00:00Z", ""],
    ]  # fmt: skip


def test_item_without_recipients_gives_a_header_only(store: Path, tmp_path: Path) -> None:
    db = copy_store(store, tmp_path / "db")
    with hot_connection(db) as con:
        con.execute("DELETE FROM campaign_interactions WHERE item_id = 'cmp_c'")
        assert export_item_csv(con, "cmp_c", tmp_path / "c.csv") == 0
    header, rows = read_csv(tmp_path / "c.csv")
    assert tuple(header) == CAMPAIGN_COLUMNS and rows == []


@pytest.mark.parametrize(("item", "flag"), [("cmp_a", "--campaign"), ("cnv_x", "--canvas")])
@pytest.mark.parametrize("state", ["expired", "restoring"])
def test_expired_item_is_refused(
    store: Path, tmp_path: Path, item: str, flag: str, state: str
) -> None:
    db = copy_store(store, tmp_path / "db")
    out = tmp_path / "out.csv"
    with hot_connection(db) as con:
        mark_expired(con, item, delete_rows=True)
        con.execute("UPDATE item_lifecycle SET state = ? WHERE item_id = ?", [state, item])
        with pytest.raises(ItemDataExpired) as info:
            export_item_csv(con, item, out)
    message = str(info.value)
    assert "expired" in message and f"ix restore {flag} {item}" in message
    assert not out.exists()


def test_legacy_deleted_item_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(ItemDataDeleted, match=LEGACY_POLICY):
        export_item_csv(con, "cmp_old", tmp_path / "old.csv")


@pytest.mark.parametrize("item", ["cmp_nope", "seg_1", "../../etc/passwd"])
def test_unknown_item_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path, item: str) -> None:
    with pytest.raises(UnknownItem, match="not a campaign or Canvas"):
        export_item_csv(con, item, tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []


def test_hostile_text_is_data(store: Path, tmp_path: Path) -> None:
    """Names with commas, quotes and newlines survive the CSV; ids are parameters."""
    db = copy_store(store, tmp_path / "db")
    with hot_connection(db) as con:
        con.execute(
            "UPDATE item_components SET name = ? WHERE component_id = 'var_a1'",
            ['Variant "1",\nsecond line'],
        )
        export_item_csv(con, "cmp_a", tmp_path / "a.csv")
    _, rows = read_csv(tmp_path / "a.csv")
    assert rows[0][2] == 'Variant "1",\nsecond line'
