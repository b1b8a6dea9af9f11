"""The code location: `defs`, assembled by one function from settings."""

from __future__ import annotations

import warnings

import dagster as dg

from ix_pipeline.orchestration.assets import (
    expiring_soon,
    expiry_eligibility,
    ingest_catalog_documents,
    ingest_currents_files,
    interaction_archive,
)
from ix_pipeline.orchestration.checks import CHECKS
from ix_pipeline.orchestration.feature_assets import FEATURE_ASSETS
from ix_pipeline.orchestration.jobs import (
    catalog_refresh_job,
    expiring_soon_job,
    expiring_soon_schedule,
    ingest_job,
    nightly_expiry_job,
    nightly_expiry_schedule,
)
from ix_pipeline.orchestration.resources import (
    ArchiveResource,
    HotStoreResource,
    LandingResource,
    MailResource,
)
from ix_pipeline.orchestration.restore_job import restore_interaction_data
from ix_pipeline.orchestration.sensors import (
    CatalogSensorConfig,
    catalog_sensor,
    landing_files_sensor,
    restore_notice_sensor,
)
from ix_pipeline.settings import Settings, load_settings

warnings.filterwarnings("ignore", category=dg.BetaWarning)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "catalog_policy": CatalogSensorConfig(auto_restore=settings.auto_restore),
        "hot": HotStoreResource(path=str(settings.hot_db)),
        "archive": ArchiveResource(uri=settings.archive_uri),
        "landing": LandingResource(
            landing=str(settings.landing), quarantine=str(settings.quarantine)
        ),
        "mail": MailResource(
            outbox=str(settings.outbox),
            smtp_host=settings.smtp_host,
            smtp_port=settings.smtp_port,
            smtp_user=settings.smtp_user,
            # The secret goes in as an EnvVar so the UI shows its name, never its value.
            smtp_password=dg.EnvVar("IX_SMTP_PASSWORD") if settings.smtp_password else None,
            smtp_starttls=settings.smtp_starttls,
            mail_from=settings.mail_from,
            default_to=settings.mail_to,
        ),
    }


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            ingest_catalog_documents,
            ingest_currents_files,
            expiry_eligibility,
            interaction_archive,
            expiring_soon,
            *FEATURE_ASSETS,
        ],
        asset_checks=CHECKS,
        jobs=[
            ingest_job,
            nightly_expiry_job,
            restore_interaction_data,
            expiring_soon_job,
            catalog_refresh_job,
        ],
        schedules=[nightly_expiry_schedule, expiring_soon_schedule(settings.expiring_soon_days)],
        sensors=[landing_files_sensor, catalog_sensor, restore_notice_sensor],
        resources=build_resources(settings),
    )


defs = build_defs(load_settings())
