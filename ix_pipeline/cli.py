"""`ix`: the command line. Thin: mutating commands run the same Dagster jobs the UI launches
(on the instance in $DAGSTER_HOME, so they appear in the run history); read-only commands
query the hot store directly."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from ix_pipeline.settings import Settings, load_settings

if TYPE_CHECKING:  # importing dagster takes about a second: only the commands that run a job do
    import dagster as dg

err = Console(stderr=True)
REAP_INTERVAL_SECONDS = 5.0


class CliError(click.ClickException):
    """One clear sentence plus what to do; exit code 1."""


def _settings(data_dir: str | None) -> Settings:
    settings = load_settings(data_dir)
    os.environ["IX_DATA_DIR"] = str(settings.data_dir)
    return settings


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--data-dir", type=click.Path(file_okay=False), default=None,
        help="Data folder (default: $IX_DATA_DIR or ./data).",
    )(fn)  # fmt: skip
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(
        fn
    )
    return fn


def _as_of(value: str | None) -> datetime:
    from ix_pipeline.orchestration.config import parse_as_of

    if value is not None and not value.strip():
        raise CliError(
            "--as-of is empty: give an ISO-8601 instant (e.g. 2025-05-01T02:00:00Z) or leave it out for now"
        )
    try:
        return parse_as_of(value)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _emit(as_json: bool, document: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(document, default=str, indent=2))
    else:
        human()


def _run_job(
    settings: Settings,
    job_name: str,
    run_config: dict[str, Any],
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    from ix_pipeline.definitions import build_defs, build_resources
    from ix_pipeline.notifications.mail import MailError
    from ix_pipeline.orchestration.console import ix_console
    from ix_pipeline.orchestration.instance import get_instance, reap_dead_cli_runs, unstick_pool
    from ix_pipeline.orchestration.restore_job import notify_interrupted_restore

    instance = get_instance(settings.dagster_home)
    mail = build_resources(settings)["mail"]

    def notify(run: dg.DagsterRun) -> None:
        # A restore that died could not send its notice. Whatever stops this one (a mail
        # server down, an outbox not writable) must not stop the command that found it.
        try:
            notify_interrupted_restore(instance, run, mail)  # type: ignore[arg-type]
        except MailError as exc:
            err.print(f"the notice of the interrupted run {run.run_id} could not be sent: {exc}")

    for run_id in reap_dead_cli_runs(instance, notify):
        err.print(f"marked run {run_id} failed: its process had died (its work resumes now)")
    # While this run waits for the `hot_db` pool, a run holding it may die (kill -9): keep
    # reaping in the background, or the wait would never end.
    stop = threading.Event()

    def reap_while_waiting() -> None:
        while not stop.wait(REAP_INTERVAL_SECONDS):
            reap_dead_cli_runs(instance, notify)
            unstick_pool(instance)

    reaper = threading.Thread(target=reap_while_waiting, name="ix-reaper", daemon=True)
    reaper.start()
    job = build_defs(settings).resolve_job_def(job_name).with_logger_defs({"console": ix_console})
    # INFO shows our progress lines; Dagster's per-event DEBUG chatter stays in the UI's logs.
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    try:
        return job.execute_in_process(
            run_config={**run_config, **quiet},
            instance=instance,
            tags={
                "ix/launched_by": "cli",
                "ix/host": socket.gethostname(),
                "ix/pid": str(os.getpid()),
                **(tags or {}),
            },
            raise_on_error=False,
        )
    finally:
        stop.set()
        reaper.join()


def _job_failure(result: dg.ExecuteInProcessResult) -> str:
    from dagster import AssetCheckSeverity

    from ix_pipeline.orchestration.console import innermost_error

    # A blocking check that failed says what is wrong with the input (which consumer, which
    # item); Dagster's own error names only the check.
    checks = [
        f"{e.asset_check_evaluation_data.check_name}: {e.asset_check_evaluation_data.description}"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and not e.asset_check_evaluation_data.passed
        and e.asset_check_evaluation_data.severity == AssetCheckSeverity.ERROR
        and e.asset_check_evaluation_data.description
    ]
    if checks:
        return "; ".join(checks).rstrip(".")
    for event in result.all_events:
        if event.is_failure and event.step_failure_data is not None:
            data = event.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description.rstrip(".")
            if data.error:
                return innermost_error(data.error).rstrip(".")
    return "the run failed; see the run in the Dagster UI"


class IxGroup(click.Group):
    """Turns the errors a user can act on into one clear sentence instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from ix_pipeline.audience.evaluate import AudienceRefused, UnknownConsumer
        from ix_pipeline.exports.item_csv import ItemExportError
        from ix_pipeline.lifecycle.restore import RestoreRefused
        from ix_pipeline.settings import SettingsError
        from ix_pipeline.store.hot import HotStoreBusy

        try:
            return super().invoke(ctx)
        except (
            HotStoreBusy,
            RestoreRefused,
            AudienceRefused,
            ItemExportError,
            FileNotFoundError,
            SettingsError,
        ) as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            if exc.filename is not None:
                # A local file of ours (an --out path, a landing file): name it. deltalake's
                # own errors carry no file name, and are the archive's, below.
                raise CliError(f"{exc.filename}: {exc.strerror or exc}") from None
            # The archive (a folder or a bucket) could not be read; deltalake raises OSError.
            # deltalake's message nests the store's XML reply; its error code (NoSuchBucket,
            # AccessDenied…) is what the operator needs, so it goes first.
            text = " ".join(str(exc).split())
            code = re.search(r"<Code>([^<]+)</Code>", text)
            first = (f"{code.group(1)}: " if code else "") + (text[:300] or type(exc).__name__)
            raise CliError(
                f"cannot read the archive at {os.environ.get('IX_ARCHIVE_URI') or 'the data dir'}: {first}"
            ) from None
        except UnknownConsumer as exc:
            raise CliError(
                f"unknown consumer {exc.consumer_id!r}: not a segment, content card, campaign or Canvas in the catalog"
            ) from None


@click.group(
    cls=IxGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
def main() -> None:
    """ix: keep messaging interaction data hot while it matters, archive it when the rules say so,
    and bring it back on request.

    \b
    Example:
      ix demo                      # build a realistic workspace in ./data and run it
      ix status --json cmp_000001  # where an item's data is and why
    """


@main.command()
@common
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
def ingest(data_dir: str | None, as_json: bool, paths: tuple[str, ...]) -> None:
    """Ingest catalog documents and Currents files (default: <data>/landing).

    \b
    Example:
      ix ingest data/landing/catalog data/landing/currents
    """
    settings = _settings(data_dir)
    from ix_pipeline.orchestration.jobs import ingest_run_config

    targets = [str(Path(p).resolve()) for p in paths] or [str(settings.landing)]
    result = _run_job(settings, "ingest", ingest_run_config(targets))
    if not result.success:
        raise CliError(f"ingest failed: {_job_failure(result)}")
    doc: dict[str, Any] = {"run_id": result.run_id}
    for part, node in (
        ("catalog", "ingest_catalog_documents"),
        ("currents", "ingest_currents_files"),
    ):
        doc[part] = {}
        for mat in result.asset_materializations_for_node(node):
            for k, v in mat.metadata.items():
                if k != "rows_ingested":
                    doc[part].setdefault(k, getattr(v, "value", v))
            if "rows_ingested" in mat.metadata:
                doc[part][f"{mat.asset_key.path[-1]}_rows"] = mat.metadata["rows_ingested"].value

    def human() -> None:
        for part in ("catalog", "currents"):
            click.echo(
                f"{part}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in doc[part].items())
            )

    _emit(as_json, doc, human)


@main.command()
@common
@click.option("--as-of", help="Decide as of this instant (ISO-8601; default now).")
@click.option("--dry-run", is_flag=True, help="List what would expire and why; change nothing.")
def expire(data_dir: str | None, as_json: bool, as_of: str | None, dry_run: bool) -> None:
    """Run the nightly expiry: move stopped items past their three months to the archive.

    \b
    Example:
      ix expire --as-of 2025-05-01T02:00:00Z --dry-run
    """
    settings = _settings(data_dir)
    when = _as_of(as_of)
    if dry_run:
        from ix_pipeline.lifecycle.expiry import plan_expiry
        from ix_pipeline.store.hot import hot_connection

        with hot_connection(settings.hot_db, read_only=True) as con:
            plan = plan_expiry(con, when)
        eligible = plan.eligible
        doc: dict[str, Any] = {
            "as_of": when.isoformat(), "dry_run": True, "expired": [d.item_id for d in eligible],
            "rows_archived": sum(plan.hot_rows.get(d.item_id, 0) for d in eligible),
            "reasons": {d.item_id: d.reason for d in eligible},
        }  # fmt: skip

        def human() -> None:
            click.echo(
                f"dry run as of {when.isoformat()}: {len(eligible)} items would expire, {doc['rows_archived']} rows"
            )
            for d in eligible:
                click.echo(f"  {d.item_id}  {plan.hot_rows.get(d.item_id, 0):>8} rows  {d.reason}")

        _emit(as_json, doc, human)
        return
    from ix_pipeline.orchestration.jobs import expiry_run_config

    result = _run_job(
        settings,
        "nightly_expiry",
        expiry_run_config(when.isoformat()),
        {"ix/as_of": when.isoformat()},
    )
    if not result.success:
        raise CliError(
            f"expiry failed: {_job_failure(result)}. Nothing was lost; run it again to resume."
        )
    summary: dict[str, Any] = {}
    for mat in result.asset_materializations_for_node("interaction_archive"):
        value = mat.metadata["result"].value
        if isinstance(value, dict):  # the asset records its ExpiryResult as a JSON object
            summary = value
    doc = {"as_of": when.isoformat(), "dry_run": False, "expired": summary.get("expired", []),
           "rows_archived": summary.get("rows_archived", 0), "run_id": result.run_id}  # fmt: skip
    _emit(as_json, doc, lambda: click.echo(
        f"expired {len(doc['expired'])} items, archived {doc['rows_archived']} rows (run {result.run_id})"
    ))  # fmt: skip


@main.command()
@common
@click.option(
    "--campaign", "campaigns", multiple=True, metavar="ID", help="Campaign id (repeatable)."
)
@click.option("--canvas", "canvases", multiple=True, metavar="ID", help="Canvas id (repeatable).")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="Every expired item with this tag (repeatable).",
)
@click.option(
    "--as-of", help="Restore time recorded as the new inactivity anchor (ISO-8601; default now)."
)
@click.option("--requested-by", default="", help="E-mail for the completion notice.")
def restore(data_dir: str | None, as_json: bool, campaigns: tuple[str, ...], canvases: tuple[str, ...],
            tags: tuple[str, ...], as_of: str | None, requested_by: str) -> None:  # fmt: skip
    """Restore expired interaction data by campaign id, Canvas id or tag (a union).

    \b
    Example:
      ix restore --campaign cmp_000123 --tag "black friday"
    """
    settings = _settings(data_dir)
    if not (campaigns or canvases or tags):
        raise CliError("nothing to restore: give --campaign ID, --canvas ID or --tag TAG")
    when = _as_of(as_of)
    from ix_pipeline.lifecycle.restore import RestoreRequest, plan_restore
    from ix_pipeline.store.hot import hot_connection

    # Validate before launching, so a refused request is one sentence, not a failed run's logs.
    # The job validates again: it may run later, when the catalog has changed.
    with hot_connection(settings.hot_db, read_only=True) as con:
        plan_restore(con, RestoreRequest(campaigns, canvases, tags))
    config = {"campaign_ids": list(campaigns), "canvas_ids": list(canvases), "tags": list(tags),
              "requested_by": requested_by, "as_of": when.isoformat()}  # fmt: skip
    result = _run_job(
        settings, "restore_interaction_data", {"ops": {"restore_items": {"config": config}}}
    )
    if not result.success:
        raise CliError(f"restore failed: {_job_failure(result)}")
    out = result.output_for_node("restore_items")
    doc = {"restored": out["restored"], "already_hot": out["already_hot"], "rows_restored": out["rows_restored"],
           "rows_per_item": out["rows_per_item"], "notes": out["notes"], "notified": out["notified"],
           "run_id": result.run_id}  # fmt: skip

    def human() -> None:
        click.echo(
            f"restored {len(doc['restored'])} items, {doc['rows_restored']} rows in {out['seconds']:.2f} s"
        )
        if doc["already_hot"]:
            click.echo("already available: " + ", ".join(doc["already_hot"]))
        for note in doc["notes"]:
            click.echo(note)
        click.echo(f"notice: {doc['notified']}")

    _emit(as_json, doc, human)


@main.command()
@common
@click.argument("ids", nargs=-1)
@click.option("--as-of", help="Explain as of this instant (default now).")
def status(data_dir: str | None, as_json: bool, ids: tuple[str, ...], as_of: str | None) -> None:
    """State, expiry date, exemptions and reason per item (all items when no id is given).

    \b
    Example:
      ix status cmp_000001 cnv_000002 --json
    """
    settings = _settings(data_dir)
    from ix_pipeline.lifecycle.status import item_status
    from ix_pipeline.store.hot import hot_connection

    when = _as_of(as_of)
    with hot_connection(settings.hot_db, read_only=True) as con:
        from ix_pipeline.orchestration.resources import ArchiveResource

        rows = item_status(
            con, ArchiveResource(uri=settings.archive_uri).archive(), when, list(ids)
        )
    unknown = sorted(set(ids) - {r["id"] for r in rows})
    if unknown:
        raise CliError(f"unknown item id: {', '.join(unknown)}. `ix status` lists every item.")

    def human() -> None:
        table = Table(
            "id", "type", "status", "state", "expires at", "hot", "archived", "reason", box=None
        )
        for r in rows:
            table.add_row(r["id"], r["type"], r["status"], r["state"], (r["expires_at"] or "-")[:16],
                          str(r["hot_rows"]), str(r["archived_rows"]), r["reason"])  # fmt: skip
        # Piped output keeps whole lines so grep and less see one item per line.
        Console(width=None if sys.stdout.isatty() else 250).print(table)

    _emit(as_json, rows, human)


@main.command()
@common
@click.argument("consumer_id")
@click.option("--as-of", help="Evaluate time filters as of this instant (default now).")
def audience(data_dir: str | None, as_json: bool, consumer_id: str, as_of: str | None) -> None:
    """User ids matching a consumer's audience (segment, content card, campaign or Canvas).

    \b
    Example:
      ix audience seg_0007 --json
    """
    from ix_pipeline.audience.evaluate import evaluate_consumer
    from ix_pipeline.store.hot import hot_connection

    settings = _settings(data_dir)
    when = _as_of(as_of)
    with hot_connection(settings.hot_db, read_only=True) as con:
        users = evaluate_consumer(con, consumer_id, when)
    doc = {"consumer_id": consumer_id, "as_of": when.isoformat(), "user_ids": users}
    _emit(
        as_json,
        doc,
        lambda: click.echo("\n".join(users) if users else f"{consumer_id}: no matching users"),
    )


@main.group()
def export() -> None:
    """Exports that read interaction data (expired items are invisible to them)."""


@export.command("users")
@common
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="ID",
    help="A user_id (braze_id) or external_user_id; repeatable. Default: every user.",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="JSON Lines file to write."
)
def export_users_cmd(data_dir: str | None, as_json: bool, users: tuple[str, ...], out: str) -> None:
    """The user export in the /users/export/ids shape, one JSON document per line.

    \b
    Example:
      ix export users --user u0000042 --out u42.jsonl
    """
    from ix_pipeline.exports.user_export import export_users, resolve_users
    from ix_pipeline.store.hot import hot_connection

    settings = _settings(data_dir)
    with hot_connection(settings.hot_db, read_only=True) as con:
        unknown = (
            [u for u, hit in resolve_users(con, list(users)).items() if hit is None]
            if users
            else []
        )
        if unknown:
            raise CliError(
                f"unknown user: {', '.join(unknown)} (neither a user_id nor an external_user_id)"
            )
        count = export_users(con, Path(out), list(users) or None)
    doc = {"out": str(Path(out).resolve()), "users": count}
    _emit(as_json, doc, lambda: click.echo(f"wrote {count} users to {out}"))


@export.command("item")
@common
@click.argument("item_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CSV file to write.")
def export_item_cmd(data_dir: str | None, as_json: bool, item_id: str, out: str) -> None:
    """The per-item user data CSV of a campaign or Canvas (one row per recipient).

    \b
    Example:
      ix export item cmp_000123 --out cmp_000123.csv
    """
    from ix_pipeline.exports.item_csv import export_item_csv
    from ix_pipeline.store.hot import hot_connection

    settings = _settings(data_dir)
    with hot_connection(settings.hot_db, read_only=True) as con:
        count = export_item_csv(con, item_id, Path(out))
    doc = {"item_id": item_id, "out": str(Path(out).resolve()), "rows": count}
    _emit(as_json, doc, lambda: click.echo(f"wrote {count} rows to {out}"))


@main.command()
@common
@click.option("--users", default=100_000, show_default=True, help="Users to generate.")
@click.option("--events", default=2_000_000, show_default=True, help="Currents events to generate.")
@click.option("--campaigns", default=200, show_default=True)
@click.option("--canvases", default=50, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--as-of", help="Run the expiry as of this instant (default now).")
def demo(data_dir: str | None, as_json: bool, users: int, events: int, campaigns: int, canvases: int,
         seed: int, as_of: str | None) -> None:  # fmt: skip
    """Generate a realistic workspace in the data dir (catalog + Currents Avro files), then run it:
    ingest, nightly expiry, and print a summary.

    \b
    Example:
      ix demo --data-dir /tmp/ix-demo --users 10000 --events 200000
    """
    from rich.progress import Progress

    from ix_pipeline.demo.workspace import generate_workspace

    settings = _settings(data_dir)
    when = _as_of(as_of)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("generating workspace", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        # The workspace's history ends at the as-of the expiry runs at, as a real one would.
        summary = generate_workspace(settings.data_dir, n_users=users, n_events=events, n_campaigns=campaigns,
                                     n_canvases=canvases, seed=seed, now=when, progress=progress)  # fmt: skip
    err.print(f"generated {summary}")
    from ix_pipeline.orchestration.jobs import expiry_run_config, ingest_run_config

    err.print("ingesting (Dagster job `ingest`)…")
    ingested = _run_job(settings, "ingest", ingest_run_config([str(settings.landing)]))
    if not ingested.success:
        raise CliError(f"demo ingest failed: {_job_failure(ingested)}")
    err.print(
        f"running the nightly expiry as of {when.isoformat()} (Dagster job `nightly_expiry`)…"
    )
    expired = _run_job(settings, "nightly_expiry", expiry_run_config(when.isoformat()))
    if not expired.success:
        raise CliError(f"demo expiry failed: {_job_failure(expired)}")
    from ix_pipeline.lifecycle.status import workspace_summary
    from ix_pipeline.store.hot import hot_connection

    with hot_connection(settings.hot_db, read_only=True) as con:
        doc = workspace_summary(con)
    doc["data_dir"] = str(settings.data_dir)

    def human() -> None:
        for k, v in doc.items():
            click.echo(f"{k}: {v}")
        click.echo(f"\nOpen the UI: DAGSTER_HOME={settings.dagster_home} IX_DATA_DIR={settings.data_dir} "
                   ".venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1")  # fmt: skip

    _emit(as_json, doc, human)
