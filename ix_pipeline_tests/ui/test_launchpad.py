"""The restore launchpad explains itself: every field described, the default config valid."""

from __future__ import annotations

from typing import Any

import dagster as dg

from ix_pipeline.definitions import build_defs
from ix_pipeline.orchestration.config import RestoreConfig
from ix_pipeline.settings import Settings


def _op_config_fields(settings: Settings) -> dict[str, dg.Field]:
    job = build_defs(settings).resolve_job_def("restore_interaction_data")
    # Walked as the launchpad walks it; dagster types each level as a plain ConfigType.
    ops: Any = job.run_config_schema.config_type
    ops = ops.fields["ops"].config_type
    return ops.fields["restore_items"].config_type.fields["config"].config_type.fields


def test_every_restore_field_is_described_in_the_launchpad(settings: Settings) -> None:
    # Read from the job's config schema: that is what the launchpad's reference panel shows.
    fields = _op_config_fields(settings)
    assert set(fields) == set(RestoreConfig.model_fields)
    undescribed = [name for name, f in fields.items() if len((f.description or "").strip()) < 20]
    assert not undescribed, f"fields without a useful description: {undescribed}"
    # The operator can launch with only ids or tags: nothing else is required.
    assert not [name for name, f in fields.items() if f.is_required]


def test_the_default_restore_config_validates(settings: Settings) -> None:
    job = build_defs(settings).resolve_job_def("restore_interaction_data")
    # {} is what "Scaffold missing config" starts from; the second is the pre-filled default.
    for config in ({}, {"ops": {"restore_items": {"config": {"as_of": "", "requested_by": ""}}}}):
        result = dg.validate_run_config(job, config)
        assert result["ops"]["restore_items"]["config"]["requested_by"] == ""


def test_unknown_fields_are_rejected_before_launch(settings: Settings) -> None:
    job = build_defs(settings).resolve_job_def("restore_interaction_data")
    bad = {"ops": {"restore_items": {"config": {"campaign_id": ["cmp_000001"]}}}}
    try:
        dg.validate_run_config(job, bad)
    except dg.DagsterInvalidConfigError as exc:
        assert "campaign_id" in str(exc)
    else:
        raise AssertionError("a misspelt field was accepted")
