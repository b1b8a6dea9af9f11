"""The Dagster instance the CLI runs jobs on, so its runs show in the UI's run history."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

# One pool for every step that opens the hot DuckDB file: DuckDB admits one writing process.
DAGSTER_YAML = """\
# Written by ix_pipeline. Every step that opens the hot DuckDB file is in the `hot_db` pool.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_dagster_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def get_instance(home: Path) -> dg.DagsterInstance:
    os.environ["DAGSTER_HOME"] = str(ensure_dagster_home(home))
    return dg.DagsterInstance.get()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_cli_runs(
    instance: dg.DagsterInstance, on_reaped: Callable[[dg.DagsterRun], None] | None = None
) -> list[str]:
    """Fail CLI runs whose process died (a crash, a kill -9) and free their pool slots;
    `on_reaped` is told of each (a dead restore could not send its own notice).

    A run launched in-process holds its `hot_db` slot until it ends; if the process dies the
    slot stays claimed and every later run would wait forever. The daemon's run monitoring
    does this for UI-launched runs; the CLI does it for its own, identified by host and pid.
    """
    reaped = []
    # Two commands starting at once must not both reap (and notify) the same dead run.
    with reaper_lock(instance):
        runs = instance.get_runs(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
                tags={"ix/launched_by": "cli", "ix/host": socket.gethostname()},
            )
        )
        for run in runs:
            pid = run.tags.get("ix/pid", "")
            if pid.isdigit() and not _alive(int(pid)):
                instance.report_run_failed(
                    run, f"the process running it (pid {pid}) died before the run ended"
                )
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
                reaped.append(run.run_id)
                if on_reaped:
                    on_reaped(run)
    return reaped


@contextmanager
def reaper_lock(instance: dg.DagsterInstance) -> Iterator[None]:
    """An exclusive lock on a file in the instance's folder, held while runs are reaped and
    while a failed run's notice is sent, so two processes never send the same one."""
    root = getattr(instance, "root_directory", None)
    try:
        if not root:
            raise FileNotFoundError("the instance has no folder")
        Path(root).mkdir(parents=True, exist_ok=True)  # Dagster creates it only when needed
        handle = open(Path(root) / ".ix-reaper.lock", "a")  # noqa: SIM115 (closed below)
    except OSError:
        # No lock to be had: reap all the same; at worst a notice goes out twice.
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


HOT_POOL = "hot_db"


def unstick_pool(instance: dg.DagsterInstance, pool: str = HOT_POOL) -> bool:
    """Hand a free `hot_db` slot to the oldest waiting step if nobody was handed it.

    Dagster assigns a waiting step when a slot is freed; a step that registers as waiting in
    the instant between the holder's release and that hand-over is never assigned, and its
    run waits forever. Seen under the stress test with in-process runs; harmless otherwise,
    because the slot rows stay the real semaphore.
    """
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        return False  # the hand-over below is the SQL storages' (ours is SQLite's)
    info = storage.get_concurrency_info(pool)
    if not info.slot_count or info.active_slot_count >= info.slot_count:
        return False
    assigned = [p for p in info.pending_steps if p.assigned_timestamp is not None]
    waiting = [p for p in info.pending_steps if p.assigned_timestamp is None]
    if len(assigned) >= info.slot_count or not waiting:
        return False
    storage.assign_pending_steps([pool])
    return True
