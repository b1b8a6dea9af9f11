"""The hot store's tables: one definition, read by ingestion, lifecycle, features and tests.

`campaign_interactions` and `canvas_interactions` share one column list so the archive, the
expiry and the restore handle both with the same code; `item_id` repeats `campaign_id` or
`canvas_id` so that lifecycle queries need not know which table they are on.
"""

from __future__ import annotations

from typing import Literal

ItemType = Literal["campaign", "canvas"]
ITEM_TYPES: tuple[ItemType, ...] = ("campaign", "canvas")

# (name, DuckDB type) in storage order; `id` is the Currents event id.
INTERACTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "VARCHAR"),
    ("item_id", "VARCHAR"),
    ("event_type", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("channel", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("external_user_id", "VARCHAR"),
    ("time", "BIGINT"),
    ("app_group_id", "VARCHAR"),
    ("campaign_id", "VARCHAR"),
    ("campaign_name", "VARCHAR"),
    ("message_variation_id", "VARCHAR"),
    ("message_variation_name", "VARCHAR"),
    ("canvas_id", "VARCHAR"),
    ("canvas_name", "VARCHAR"),
    ("canvas_variation_id", "VARCHAR"),
    ("canvas_variation_name", "VARCHAR"),
    ("canvas_step_id", "VARCHAR"),
    ("canvas_step_name", "VARCHAR"),
    ("canvas_step_message_variation_id", "VARCHAR"),
    ("send_id", "VARCHAR"),
    ("dispatch_id", "VARCHAR"),
    ("link_alias", "VARCHAR"),
    ("link_id", "VARCHAR"),
    ("url", "VARCHAR"),
    ("machine_open", "VARCHAR"),
    ("is_suspected_bot_click", "BOOLEAN"),
    ("conversion_behavior_index", "INTEGER"),
    ("conversion_behavior", "VARCHAR"),
    ("in_control_group", "BOOLEAN"),
    ("abort_type", "VARCHAR"),
)
INTERACTION_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in INTERACTION_COLUMNS)


def interaction_table(item_type: ItemType) -> str:
    """The hot table of an item type; the only place that turns a type into a table name."""
    return {"campaign": "campaign_interactions", "canvas": "canvas_interactions"}[item_type]


def ledger_key(id_sql: str) -> str:
    """SQL for the ledger's key of an event id: its 128-bit MD5, fixed width. The ledger grows
    by every event ever delivered: as strings its ids were over a quarter of a fresh store
    (42 of 149 MB after 2 M events) and compressing them about a twentieth of an ingest's
    CPU; as keys they take a fifth less space and no string work. Two distinct ids share a
    key with probability about n² / 2¹²⁹ (10⁻¹⁹ for 10¹⁰ events). To look an id up:
    `WHERE id_key = md5_number('…')`."""
    return f"md5_number({id_sql})"


def _interaction_ddl(table: str) -> str:
    cols = ",\n  ".join(f"{name} {typ}" for name, typ in INTERACTION_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n);"


# Tables ingestion derives from events and expiry never touches, each folded from `<name>_pending`.
DERIVED_TABLES: tuple[str, ...] = (
    "user_summaries",
    "user_items_received",
    "user_inbound_keywords",
    "item_analytics",
)


def pending_table(table: str) -> str:
    """Where batch aggregates of a derived table wait to be folded into it."""
    if table not in DERIVED_TABLES:
        raise ValueError(f"not a derived table: {table}")
    return f"{table}_pending"


# Tables that ingestion merges set-wise carry no PRIMARY KEY: the merge keeps one row per key
# (user_summaries: user_id; user_items_received: user_id, received_id; user_inbound_keywords:
# user_id, category; item_analytics: item, variant, step, event type, day) and an index would
# slow every batch down.
DDL: tuple[str, ...] = (
    _interaction_ddl("campaign_interactions"),
    _interaction_ddl("canvas_interactions"),
    # Every event id ever stored, interaction or not, as its `ledger_key`: de-duplicates
    # at-least-once delivery even after an item's rows left for the archive, and is the
    # ledger the "nothing lost" check compares hot + archive against.
    """CREATE TABLE IF NOT EXISTS event_ledger (
      id_key UHUGEINT, item_type VARCHAR, ingested_at TIMESTAMPTZ
    );""",
    """CREATE TABLE IF NOT EXISTS ingested_files (
      path VARCHAR, size BIGINT, mtime_ns BIGINT, kind VARCHAR, status VARCHAR,
      records BIGINT, stored BIGINT, duplicates BIGINT, quarantined BIGINT,
      ingested_at TIMESTAMPTZ, run_id VARCHAR,
      PRIMARY KEY (path, size, mtime_ns)
    );""",
    """CREATE TABLE IF NOT EXISTS quarantine_log (
      logged_at TIMESTAMPTZ, source VARCHAR, record_index BIGINT, event_id VARCHAR, reason VARCHAR,
      saved_to VARCHAR, run_id VARCHAR
    );""",
    """CREATE TABLE IF NOT EXISTS user_summaries (
      user_id VARCHAR,
      external_user_id VARCHAR,
      last_received_any TIMESTAMPTZ,
      last_received_email TIMESTAMPTZ,
      last_received_push TIMESTAMPTZ,
      last_received_sms TIMESTAMPTZ,
      last_received_webhook TIMESTAMPTZ,
      last_received_whatsapp TIMESTAMPTZ,
      last_engaged TIMESTAMPTZ,
      last_enrolled_control TIMESTAMPTZ,
      last_in_app_impression TIMESTAMPTZ,
      hard_bounced_at TIMESTAMPTZ,
      marked_spam_at TIMESTAMPTZ,
      invalid_phone_at TIMESTAMPTZ,
      last_inbound_keyword_category VARCHAR,
      last_inbound_keyword_at TIMESTAMPTZ,
      news_feed_views BIGINT,
      last_news_feed_view TIMESTAMPTZ,
      feature_flags VARCHAR[],
      clicked_aliases VARCHAR[]
    );""",
    # Every campaign id and Canvas step id each user ever received, one row per pair, for
    # "Has Never Received a Message from Campaign or Canvas Step". A row per pair, not a list
    # per user: a batch's DISTINCT pairs cost what its lists did, but the lists were then
    # flattened and de-duplicated again by the fold and written to the WAL with the pending
    # summaries; without them an ingest of 2 M events takes 2 CPU-s (7 %) less.
    """CREATE TABLE IF NOT EXISTS user_items_received (
      user_id VARCHAR, received_id VARCHAR
    );""",
    # Per user and keyword category, for "Last Sent Specific SMS Inbound Keyword Category".
    """CREATE TABLE IF NOT EXISTS user_inbound_keywords (
      user_id VARCHAR, category VARCHAR, last_at TIMESTAMPTZ
    );""",
    """CREATE TABLE IF NOT EXISTS item_analytics (
      item_type VARCHAR, item_id VARCHAR, variant_id VARCHAR, step_id VARCHAR,
      kind VARCHAR, event_type VARCHAR, day DATE, events BIGINT
    );""",
    # Batch aggregates not yet folded into the table they are named after (store/events.py).
    *(
        f"CREATE TABLE IF NOT EXISTS {pending_table(table)} AS SELECT * FROM {table} LIMIT 0;"  # noqa: S608
        for table in DERIVED_TABLES
    ),
    """CREATE TABLE IF NOT EXISTS catalog_documents (
      id VARCHAR PRIMARY KEY, type VARCHAR, name VARCHAR, updated_at TIMESTAMPTZ,
      document JSON, source VARCHAR, loaded_at TIMESTAMPTZ
    );""",
    """CREATE TABLE IF NOT EXISTS catalog_items (
      id VARCHAR PRIMARY KEY, type VARCHAR, name VARCHAR, status VARCHAR, tags VARCHAR[],
      stopped_at TIMESTAMPTZ, first_sent TIMESTAMPTZ, last_sent TIMESTAMPTZ,
      interaction_data_deleted_at TIMESTAMPTZ, archived BOOLEAN, draft BOOLEAN,
      multivariate BOOLEAN, updated_at TIMESTAMPTZ
    );""",
    # Variants, control messages, steps and Canvas variations: what ID filters may name.
    """CREATE TABLE IF NOT EXISTS item_components (
      item_id VARCHAR, item_type VARCHAR, component_type VARCHAR, component_id VARCHAR,
      name VARCHAR, is_control BOOLEAN
    );""",
    """CREATE TABLE IF NOT EXISTS audience_consumers (
      id VARCHAR PRIMARY KEY, type VARCHAR, name VARCHAR, active BOOLEAN, audience JSON,
      valid BOOLEAN, errors VARCHAR[]
    );""",
    """CREATE TABLE IF NOT EXISTS filter_references (
      consumer_id VARCHAR, consumer_type VARCHAR, consumer_active BOOLEAN, filter VARCHAR,
      path VARCHAR, ref_by VARCHAR, item_type VARCHAR, item_id VARCHAR, component_id VARCHAR,
      tag VARCHAR, valid BOOLEAN, error VARCHAR
    );""",
    """CREATE TABLE IF NOT EXISTS catalog_errors (
      source VARCHAR, document_id VARCHAR, filter VARCHAR, path VARCHAR, message VARCHAR,
      logged_at TIMESTAMPTZ
    );""",
    """CREATE TABLE IF NOT EXISTS item_lifecycle (
      item_id VARCHAR PRIMARY KEY, item_type VARCHAR, state VARCHAR,
      last_restored_at TIMESTAMPTZ, expired_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
      run_id VARCHAR
    );""",
    """CREATE TABLE IF NOT EXISTS lifecycle_audit (
      logged_at TIMESTAMPTZ, item_id VARCHAR, item_type VARCHAR, from_state VARCHAR,
      to_state VARCHAR, as_of TIMESTAMPTZ, rows BIGINT, run_id VARCHAR, actor VARCHAR,
      reason VARCHAR
    );""",
    # What features may read: rows of items whose data is hot. `expiring` rows are still
    # fully hot (nothing deleted yet); `restoring` rows are not complete until marked hot.
    """CREATE OR REPLACE VIEW visible_campaign_interactions AS
      SELECT i.* FROM campaign_interactions i
      WHERE NOT EXISTS (SELECT 1 FROM item_lifecycle l WHERE l.item_id = i.item_id
                        AND l.state IN ('expired', 'restoring', 'legacy_deleted'));""",
    """CREATE OR REPLACE VIEW visible_canvas_interactions AS
      SELECT i.* FROM canvas_interactions i
      WHERE NOT EXISTS (SELECT 1 FROM item_lifecycle l WHERE l.item_id = i.item_id
                        AND l.state IN ('expired', 'restoring', 'legacy_deleted'));""",
)

INVISIBLE_STATES: tuple[str, ...] = ("expired", "restoring", "legacy_deleted")
