"""The feature assets called directly on a real hot store: what they leave in the exports
folder follows the items' lifecycle."""

from __future__ import annotations

import dagster as dg

from ix_pipeline.definitions import build_resources
from ix_pipeline.orchestration.feature_assets import ItemCsvConfig, item_csv_exports
from ix_pipeline.settings import Settings
from ix_pipeline_tests.lifecycle import scenario
from ix_pipeline_tests.lifecycle.scenario import NIGHT
from ix_pipeline_tests.lifecycle.test_expiry import expire


def export_csvs(settings: Settings, *item_ids: str) -> dg.MaterializeResult:
    resources = build_resources(settings)
    result = item_csv_exports(
        dg.build_asset_context(),
        config=ItemCsvConfig(item_ids=list(item_ids)),
        hot=resources["hot"],
        landing=resources["landing"],
    )
    assert isinstance(result, dg.MaterializeResult) and result.metadata is not None
    return result


def test_an_item_csv_written_while_hot_is_gone_once_the_item_expired(settings: Settings) -> None:
    scenario.build(settings)
    folder = settings.data_dir / "exports" / "items"
    export_csvs(settings, "cmp_stop", "cmp_active")
    written = {p.name for p in folder.glob("*.csv")}
    assert any(name.startswith("cmp_stop-") for name in written) and len(written) == 2
    expire(settings, NIGHT)
    result = export_csvs(settings)  # the default: every active item
    assert [p.name for p in folder.glob("*.csv")] == [
        n for n in written if n.startswith("cmp_active-")
    ]
    assert (result.metadata or {})["removed_files_of_hidden_items"] == 1
