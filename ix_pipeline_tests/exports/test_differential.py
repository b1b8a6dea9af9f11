"""Differential tests of DOMAIN.md's promise: with item X expired, every feature that reads
interaction data answers exactly as if X's rows did not exist, and every feature that does not
read it answers exactly as before.

Worlds compared, per item X:

* ``before``: everything ingested, X hot.
* ``expired_kept``: X marked expired, its rows still in the hot table (visibility must come
  from the lifecycle state alone, as during the window of an expiry or a restore).
* ``expired_gone``: X marked expired and its hot rows deleted (the expiry job's end state).
* ``reference``: X hot, its interaction rows deleted: "X's interaction events never stored",
  with the summaries and analytics their ingestion produced (expiry never touches those).
* ``never``: a store built from every event except X's, through the real ingestion. Summaries
  differ there (they never saw X's events), so only outputs that do not read summaries are
  compared with it, for the users both stores know.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import duckdb
import pytest

from ix_pipeline.audience.evaluate import AudienceRefused, evaluate_consumer
from ix_pipeline.audience.expressions import FILTERS, iter_leaves, parse_audience
from ix_pipeline.exports.item_csv import ItemExportError, export_item_csv
from ix_pipeline.exports.profiles import profile_lists
from ix_pipeline.exports.user_export import export_users
from ix_pipeline.store.hot import hot_connection
from ix_pipeline_tests.audience.test_evaluate import CONSUMERS
from ix_pipeline_tests.exports.world import (
    AS_OF,
    EVENTS,
    ITEM_OF_PREFIX,
    build_store,
    copy_store,
    delete_rows_only,
    mark_expired,
)

Observation = dict[str, t.Any]
ITEMS = ("cmp_a", "cmp_b", "cmp_c", "cnv_x")


def _families(con: duckdb.DuckDBPyConnection, consumer_id: str) -> set[str]:
    rows = con.execute(
        "SELECT audience FROM audience_consumers WHERE id = ?", [consumer_id]
    ).fetchall()
    assert rows, f"no consumer {consumer_id}"
    audience: str = rows[0][0]
    try:
        expr = parse_audience(json.loads(audience), consumer_id=consumer_id)
    except ValueError:
        return {"invalid"}
    families: set[str] = {FILTERS[leaf.filter].family for leaf in iter_leaves(expr)}
    if '"not"' in audience:
        families.add("not")
    return families


def observe(db: Path, work: Path) -> Observation:
    """Every output the features produce, as comparable data."""
    work.mkdir(parents=True, exist_ok=True)
    with hot_connection(db, read_only=True) as con:
        consumers = [
            r[0] for r in con.execute("SELECT id FROM audience_consumers ORDER BY id").fetchall()
        ]
        audiences: dict[str, t.Any] = {}
        for consumer in consumers:
            try:
                audiences[consumer] = evaluate_consumer(con, consumer, AS_OF)
            except AudienceRefused as exc:
                audiences[consumer] = f"refused: {exc}"
        export_users(con, work / "users.jsonl")
        csvs: dict[str, str] = {}
        for (item,) in con.execute("SELECT id FROM catalog_items ORDER BY id").fetchall():
            try:
                export_item_csv(con, item, work / "item.csv")
                csvs[item] = (work / "item.csv").read_text(encoding="utf-8")
            except ItemExportError as exc:
                csvs[item] = f"error: {type(exc).__name__}"
        users = [
            r[0] for r in con.execute("SELECT user_id FROM user_summaries ORDER BY 1").fetchall()
        ]
        return {
            "audiences": audiences,
            "families": {c: _families(con, c) for c in consumers},
            "export": {
                json.loads(line)["braze_id"]: line
                for line in (work / "users.jsonl").read_text(encoding="utf-8").splitlines()
            },
            "csvs": csvs,
            "profiles": {u: profile_lists(con, u) for u in users},
            "user_summaries": con.execute("SELECT * FROM user_summaries ORDER BY user_id").fetchall(),
            "received": con.execute("SELECT * FROM user_items_received ORDER BY ALL").fetchall(),
            "inbound": con.execute("SELECT * FROM user_inbound_keywords ORDER BY ALL").fetchall(),
            "item_analytics": con.execute("SELECT * FROM item_analytics ORDER BY ALL").fetchall(),
            "catalog": con.execute("SELECT * FROM catalog_items ORDER BY id").fetchall(),
        }  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("base"), CONSUMERS)


@pytest.fixture(scope="module")
def before(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Observation:
    return observe(base, tmp_path_factory.mktemp("before_out"))


def _variant(base: Path, root: Path, name: str, change: t.Callable[[duckdb.DuckDBPyConnection], None]) -> Observation:  # fmt: skip
    db = copy_store(base, root / name)
    with hot_connection(db) as con:
        change(con)
    return observe(db, root / f"{name}_out")


NOT_SUMMARY_ONLY = {"id", "tag", "not", "invalid"}


@pytest.mark.parametrize("item", ITEMS)
def test_expiry_equals_absence(base: Path, before: Observation, tmp_path: Path, item: str) -> None:
    kept = _variant(base, tmp_path, "kept", lambda c: mark_expired(c, item, delete_rows=False))
    gone = _variant(base, tmp_path, "gone", lambda c: mark_expired(c, item, delete_rows=True))
    reference = _variant(base, tmp_path, "ref", lambda c: delete_rows_only(c, item))

    # Expired with or without its rows present: identical everywhere.
    assert kept == gone
    # Identical to the item's rows never having been stored, except its own CSV, which
    # refuses (restore first) instead of pretending nobody received the item.
    assert kept["csvs"].pop(item) == "error: ItemDataExpired"
    reference["csvs"].pop(item)
    assert kept == reference

    # What does not read interaction data is exactly as before.
    for key in ("user_summaries", "inbound", "item_analytics", "catalog"):
        assert kept[key] == before[key], key
    summary_only = [c for c, fams in before["families"].items() if not fams & NOT_SUMMARY_ONLY]
    assert len(summary_only) > 30
    for consumer in summary_only:
        assert kept["audiences"][consumer] == before["audiences"][consumer], consumer
    # The comparison is not vacuous: the item's data did matter before.
    assert kept["audiences"] != before["audiences"]
    assert kept["export"] != before["export"]
    others = [i for i in before["csvs"] if i != item]
    assert all(kept["csvs"][i] == before["csvs"][i] for i in others)


@pytest.mark.parametrize("item", ITEMS)
def test_expiry_equals_never_ingested(base: Path, tmp_path: Path, item: str) -> None:
    """Against a store that never saw X's events at all, for every output that does not read
    summaries: interaction-only audiences without ``not`` (whose universe is the summaries),
    the export and profile lists of the users both stores know, the other items' CSVs."""
    expired = _variant(base, tmp_path, "gone", lambda c: mark_expired(c, item, delete_rows=True))
    events = [e for e in EVENTS if ITEM_OF_PREFIX.get(e[0][0]) != item]
    never_db = build_store(tmp_path / "never", CONSUMERS, events)
    never = observe(never_db, tmp_path / "never_out")

    positive_interaction = [
        c for c, fams in never["families"].items() if fams and fams <= {"id", "tag"}
    ]
    assert len(positive_interaction) > 30
    for consumer in positive_interaction:
        assert expired["audiences"][consumer] == never["audiences"][consumer], consumer
    shared = set(never["export"]) & set(expired["export"])
    for user in shared:
        mine, theirs = json.loads(expired["export"][user]), json.loads(never["export"][user])
        for key in ("campaigns_received", "canvases_received"):
            assert mine[key] == theirs[key], (user, key)
        assert expired["profiles"][user] == never["profiles"][user]
    for other in ITEMS:
        if other != item:
            assert expired["csvs"][other] == never["csvs"][other], other


def test_restore_brings_everything_back(base: Path, before: Observation, tmp_path: Path) -> None:
    """Expired with rows kept, then hot again (what a restore ends with): as before."""

    def expire_and_restore(con: duckdb.DuckDBPyConnection) -> None:
        mark_expired(con, "cmp_a", delete_rows=False)
        con.execute("UPDATE item_lifecycle SET state = 'hot' WHERE item_id = 'cmp_a'")

    again = _variant(base, tmp_path, "restored", expire_and_restore)
    assert again == before
