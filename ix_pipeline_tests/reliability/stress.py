"""Concurrent load with injected crashes, through the real `ix` command line.

Several driver threads each keep one `ix` process busy at a time, so up to four processes
compete for the hot DuckDB file and the Dagster `hot_db` pool at once:

- ingest: writes a new Currents Avro file (new events, some re-deliveries, late events of
  expired items) into the landing folder, then runs `ix ingest`; now and then the process is
  killed with SIGKILL at a random moment;
- expiry: `ix expire --as-of T` with a simulated clock that advances on every run (so items
  keep crossing their three months), some runs dying at `expiry.after_archive_write` or
  `expiry.after_hot_delete`, some SIGKILLed;
- restore: `ix restore` by IDs of expired items or by tag, some dying at `restore.mid_copy`;
- reader: what sensors and users do meanwhile: `ix status`, `ix expire --dry-run`,
  `ix audience`, and the landing sensor's file discovery (which never opens the hot store).

When the time is up the driver waits for the processes, runs one last clean `ix ingest`,
`ix expire` and a restore of anything left `restoring`, and then checks, with the processes
gone: every event id ever written is in the hot store or the archive, none twice in either;
each item's `lifecycle_audit` replays as a valid chain ending in its current state; no item is
left `expiring` or `restoring`; no Dagster run is left `STARTED`.

    .venv/bin/python -m ix_pipeline_tests.reliability.stress            # about a minute
    .venv/bin/python -m ix_pipeline_tests.reliability.stress --long     # five minutes
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from ix_pipeline.demo.currents_files import currents_path, write_avro
from ix_pipeline.demo.workspace import generate_workspace
from ix_pipeline.faults import FAULT_ENV, FAULT_EXIT_CODE
from ix_pipeline.ingest.catalog import discover_catalog
from ix_pipeline.ingest.currents import discover
from ix_pipeline.orchestration.instance import ensure_dagster_home
from ix_pipeline.settings import Settings, load_settings
from ix_pipeline.store import invariants
from ix_pipeline.store.archive import Archive
from ix_pipeline.store.hot import hot_connection, registered
from ix_pipeline.store.schema import ITEM_TYPES, interaction_table

IX = str(Path(sys.executable).with_name("ix"))

# Transitions the lifecycle protocol may record (ARCHITECTURE.md, "Moving data without losing
# it"); `x → x` rows are resumed operations and late rows moved to the archive.
ALLOWED = {
    ("hot", "expiring"), ("expiring", "expiring"), ("expiring", "expired"), ("expiring", "hot"),
    ("expired", "expired"), ("expired", "restoring"), ("restoring", "restoring"),
    ("restoring", "hot"),
    # The catalog flags an item as deleted under the pre-2024 policy (every item starts hot).
    ("hot", "legacy_deleted"),
}  # fmt: skip


@dataclass
class StressConfig:
    duration_s: float = 35.0
    seed: int = 11
    n_users: int = 300
    n_events: int = 10_000
    n_campaigns: int = 24
    n_canvases: int = 8
    events_per_file: int = 300
    # What happens to each successive run, cycling: None runs clean, a fault point makes the
    # process die there (IX_TEST_FAULT), "kill" SIGKILLs it at a random moment. The cycles
    # start with a crash so that even a short run injects each kind it reaches.
    ingest_plan: tuple[str | None, ...] = (None, "kill", None)
    # The first expiry commits and then dies, so restores have expired items to work on
    # early and the next run must reap a dead run that still holds the pool slot.
    expiry_plan: tuple[str | None, ...] = (
        "expiry.after_hot_delete", "expiry.after_archive_write", None, "kill", None,
    )  # fmt: skip
    restore_plan: tuple[str | None, ...] = ("restore.mid_copy", None, None)
    reader_pause_s: float = 3.0
    # The load goes on past `duration_s` until each kind of writer has run this often (keys
    # are prefixes of operation names), but not past `max_duration_s` (when that is longer
    # than `duration_s`: `--long` loads for five minutes whatever it says): on a loaded machine
    # one `ix` run can take most of the duration, and a load of one ingest proves nothing
    # about concurrent ones.
    min_operations: tuple[tuple[str, int], ...] = (("ingest", 2), ("expire", 1), ("restore_", 1))
    max_duration_s: float = 90.0
    start_as_of: datetime = datetime(2024, 9, 1, 2, tzinfo=UTC)
    as_of_step: timedelta = timedelta(days=75)
    op_timeout_s: float = 300.0


@dataclass
class StressFigures:
    events_generated: int = 0  # distinct events of the generated workspace
    events_written: int = 0  # distinct new events the ingest worker delivered meanwhile
    redeliveries_written: int = 0
    events_ingested: int = 0  # distinct ids in the ledger at the end
    files_written: int = 0
    operations: dict[str, int] = field(default_factory=dict)
    faults_injected: dict[str, int] = field(default_factory=dict)
    faults_fired: int = 0  # processes that really died (fault exit code or SIGKILL)
    refusals: int = 0  # clean, expected refusals (e.g. an audience with an invalid filter)
    items_expired_at_end: int = 0
    restores_done: int = 0
    rows_lost: int = 0
    written_ids_missing: int = 0
    duplicate_ids: int = 0
    visible_rows_of_hidden_items: int = 0
    items_in_flight: list[tuple[str, str]] = field(default_factory=list)
    audit_rows: int = 0
    audit_problems: list[str] = field(default_factory=list)
    runs_left_started: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    last_as_of: str = ""

    def ok(self) -> bool:
        return not (
            self.rows_lost or self.written_ids_missing or self.duplicate_ids
            or self.visible_rows_of_hidden_items or self.items_in_flight or self.audit_problems
            or self.runs_left_started or self.failures
        )  # fmt: skip


class _Clock:
    """The simulated nightly clock: each expiry takes the next tick; restores and new events
    are stamped at the latest tick, so anchors and expiries keep moving forward together."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self._now = start
        self._step = step
        self._lock = threading.Lock()

    def tick(self) -> datetime:
        with self._lock:
            self._now += self._step
            return self._now

    def now(self) -> datetime:
        with self._lock:
            return self._now


class _Run:
    """Shared state of one stress run: settings, counters, and the `ix` launcher."""

    def __init__(
        self, settings: Settings, config: StressConfig, log: Callable[[str], None]
    ) -> None:
        self.settings = settings
        self.config = config
        self.log = log
        self.figures = StressFigures()
        self.lock = threading.Lock()
        self.ops: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()

    def env(self, fault: str | None) -> dict[str, str]:
        env = {**os.environ, "IX_DATA_DIR": str(self.settings.data_dir),
               "DAGSTER_HOME": str(self.settings.dagster_home)}  # fmt: skip
        for key in (FAULT_ENV, "IX_SMTP_HOST", "IX_ARCHIVE_URI"):
            env.pop(key, None)
        if fault:
            env[FAULT_ENV] = fault
        return env

    def ix(
        self,
        kind: str,
        *args: str,
        fault: str | None = None,
        kill_after: float | None = None,
        refusal_ok: bool = False,
    ) -> dict[str, Any] | list[Any] | None:
        """Run `ix ARGS --json`; returns its document, or None when it died or refused.

        A process that exits with the fault code, or that we SIGKILLed, is an injected crash;
        any other failure is recorded as a finding (the run then fails its checks).
        """
        with self.lock:
            self.ops[kind] += 1
            if fault:
                self.faults[fault] += 1
            if kill_after is not None:
                self.faults[f"sigkill.{kind}"] += 1
        proc = subprocess.Popen(
            [IX, *args, "--json"], env=self.env(fault), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        killed = False
        began = time.monotonic()
        try:
            out, err = proc.communicate(timeout=kill_after or self.config.op_timeout_s)
        except subprocess.TimeoutExpired:
            # SIGKILL, by pid, of the process this thread started: a crash at any point.
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate()
            killed = kill_after is not None
            if not killed:
                self.failure(f"{kind} {' '.join(args)}: no answer in {self.config.op_timeout_s} s")
                return None
        self.log(
            f"{kind:<15} rc={proc.returncode:<4} {time.monotonic() - began:5.1f} s  "
            f"{' '.join(args)}{f'  [{fault}]' if fault else ''}{'  [SIGKILL]' if killed else ''}"
        )
        if killed or proc.returncode == -signal.SIGKILL:
            with self.lock:
                self.figures.faults_fired += 1
            return None
        if fault and proc.returncode == FAULT_EXIT_CODE:
            with self.lock:
                self.figures.faults_fired += 1
            return None
        if proc.returncode != 0:
            last = (err.strip().splitlines() or ["(no message)"])[-1]
            if refusal_ok and last.startswith("Error:") and "Traceback" not in err:
                with self.lock:
                    self.figures.refusals += 1
                return None
            self.failure(f"{kind} {' '.join(args)} exited {proc.returncode}: {err[-1500:]}")
            return None
        return json.loads(out)

    def enough_load(self) -> bool:
        """Has each kind of operation in `min_operations` been started often enough?"""
        with self.lock:
            return all(
                sum(n for kind, n in self.ops.items() if kind.startswith(prefix)) >= least
                for prefix, least in self.config.min_operations
            )

    def failure(self, text: str) -> None:
        self.log(f"FAILURE {text}")
        with self.lock:
            self.figures.failures.append(text)


# --------------------------------------------------------------------------------------------
# The catalog and new Currents files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    item_id: str
    item_type: str
    variants: tuple[str, ...]
    steps: tuple[str, ...]
    tags: tuple[str, ...]


def _catalog(settings: Settings) -> tuple[list[_Item], list[str]]:
    """Items (with their variants and steps) and segment ids, read from the landing catalog."""
    items: list[_Item] = []
    segments: list[str] = []
    for path in discover_catalog([settings.landing / "catalog"]):
        data = json.loads(path.read_text())
        for doc in data if isinstance(data, list) else [data]:
            if doc["type"] == "campaign":
                items.append(_Item(doc["id"], "campaign", tuple(doc.get("messages") or ()), (),
                                   tuple(doc.get("tags", []))))  # fmt: skip
            elif doc["type"] == "canvas":
                items.append(_Item(doc["id"], "canvas", tuple(v["id"] for v in doc.get("variants", [])),
                                   tuple(s["id"] for s in doc.get("steps", [])), tuple(doc.get("tags", []))))  # fmt: skip
            elif doc["type"] == "segment" and doc.get("status") == "active":
                segments.append(doc["id"])
    return items, segments


class _EventWriter:
    """Currents files the way the platform delivers them: complete files appearing at once
    (written beside the landing folder, then renamed in), some events delivered twice."""

    TYPES = {
        "campaign": ("users.messages.email.Send", "users.messages.email.Open", "users.messages.email.Click"),
        "canvas": ("users.canvas.Entry", "users.messages.email.Send"),
    }  # fmt: skip

    def __init__(self, run: _Run, items: list[_Item], rng: random.Random) -> None:
        self.run = run
        self.items = items
        self.rng = rng
        self.serial = 0
        self.written: list[str] = []
        self.staging = run.settings.data_dir / "staging"
        self.staging.mkdir(parents=True, exist_ok=True)

    def _event(self, item: _Item, event_type: str, eid: str, when: int) -> dict[str, Any]:
        r = self.rng
        base: dict[str, Any] = {"id": eid, "user_id": f"u{r.randrange(self.run.config.n_users):07d}",
                                "external_user_id": None, "time": when, "app_group_id": "stress"}  # fmt: skip
        if item.item_type == "campaign":
            base.update(campaign_id=item.item_id, campaign_name=item.item_id,
                        message_variation_id=r.choice(item.variants) if item.variants else None)  # fmt: skip
            if event_type.endswith("Click"):
                base["link_alias"] = "cta"
        else:
            base.update(canvas_id=item.item_id, canvas_name=item.item_id,
                        canvas_variation_id=r.choice(item.variants) if item.variants else None)  # fmt: skip
            if event_type == "users.canvas.Entry":
                base["in_control_group"] = r.random() < 0.1
            else:
                base["canvas_step_id"] = r.choice(item.steps) if item.steps else None
        return base

    def write_file(self, when: datetime) -> int:
        """One new file of one event type; returns the number of records written."""
        r = self.rng
        item_type = r.choice(ITEM_TYPES)
        event_type = r.choice(self.TYPES[item_type])
        candidates = [i for i in self.items if i.item_type == item_type]
        records = []
        stamp = int(when.timestamp())
        for _ in range(self.run.config.events_per_file):
            item = r.choice(candidates)
            if self.written and r.random() < 0.05:
                # At-least-once delivery: an id seen before, maybe in another file and run.
                eid = r.choice(self.written)
                self.run.figures.redeliveries_written += 1
            else:
                self.serial += 1
                eid = f"st-{self.serial:08d}"
                self.written.append(eid)
            records.append(self._event(item, event_type, eid, stamp - r.randrange(30 * 86_400)))
        self.run.figures.files_written += 1
        final = currents_path(self.run.settings.landing / "currents", event_type, when,
                              integration_id="stress", part=self.run.figures.files_written)  # fmt: skip
        temp = self.staging / final.name
        write_avro(temp, event_type, records, codec=r.choice(("null", "deflate", "snappy")))
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        return len(records)


# --------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------


def _crash(
    plan: tuple[str | None, ...], k: int, rng: random.Random
) -> tuple[str | None, float | None]:
    """(fault point, seconds until SIGKILL) of the k-th run of a worker."""
    what = plan[k % len(plan)] if plan else None
    if what == "kill":
        # Anywhere from start-up to the middle of the work: the point is not choosing.
        return None, rng.uniform(2.0, 12.0)
    return what, None


def _ingest_worker(run: _Run, writer: _EventWriter, clock: _Clock, rng: random.Random) -> None:
    k = 0
    while not run.stop.is_set():
        writer.write_file(clock.now())
        fault, kill = _crash(run.config.ingest_plan, k, rng)
        run.ix("ingest", "ingest", fault=fault, kill_after=kill)
        k += 1


def _expiry_worker(run: _Run, clock: _Clock, rng: random.Random) -> None:
    k = 0
    while not run.stop.is_set():
        as_of = clock.tick().isoformat()
        fault, kill = _crash(run.config.expiry_plan, k, rng)
        run.ix("expire", "expire", "--as-of", as_of, fault=fault, kill_after=kill)
        k += 1


def _restore_worker(run: _Run, clock: _Clock, items: list[_Item], rng: random.Random) -> None:
    tags = {i.item_id: i.tags for i in items}
    types = {i.item_id: i.item_type for i in items}
    k = 0
    while not run.stop.is_set():
        # The catalog sensor's kind of read: a short read-only look at the hot store, in this
        # process, waiting for the lock like the sensor does.
        with hot_connection(run.settings.hot_db, read_only=True) as con:
            waiting = [r[0] for r in con.execute(
                "SELECT item_id FROM item_lifecycle WHERE state IN ('expired', 'restoring') ORDER BY 1"
            ).fetchall()]  # fmt: skip
        with run.lock:
            run.ops["sensor_read"] += 1
        if not waiting:
            # Nothing expired yet: look again shortly, as a sensor's next tick would.
            run.stop.wait(1.0)
            continue
        fault, kill = _crash(run.config.restore_plan, k, rng)
        as_of = (clock.now() + timedelta(hours=1)).isoformat()
        waiting_tags = sorted({t for i in waiting for t in tags.get(i, ())})
        if k % 2 == 1 and waiting_tags:
            done = run.ix("restore_by_tag", "restore", "--tag", rng.choice(waiting_tags),
                          "--as-of", as_of, fault=fault, kill_after=kill)  # fmt: skip
        else:
            args: list[str] = []
            for item_id in rng.sample(waiting, min(3, len(waiting))):
                args += ["--campaign" if types[item_id] == "campaign" else "--canvas", item_id]
            done = run.ix("restore_by_id", "restore", *args, "--as-of", as_of, fault=fault,
                          kill_after=kill)  # fmt: skip
        if isinstance(done, dict):
            with run.lock:
                run.figures.restores_done += len(done["restored"])
        k += 1


def _reader_worker(run: _Run, clock: _Clock, segments: list[str], rng: random.Random) -> None:
    k = 0
    while not run.stop.is_set():
        # The landing sensor's read: it lists files and never opens the hot store.
        files = list(discover_catalog([run.settings.landing / "catalog"]))
        files += list(discover([run.settings.landing / "currents"]))
        if not files:
            run.failure("the landing sensor's discovery found no files")
        if k % 3 == 0:
            run.ix("status", "status")
        elif k % 3 == 1:
            run.ix("dry_run", "expire", "--dry-run", "--as-of", clock.now().isoformat())
        elif segments:
            # Segments whose filters name legacy-deleted items are refused, by design.
            run.ix("audience", "audience", rng.choice(segments), refusal_ok=True)
        k += 1
        # Reads are cheap for the store but not for two CPUs: leave room for the writers.
        run.stop.wait(run.config.reader_pause_s)


# --------------------------------------------------------------------------------------------
# Final pass and checks
# --------------------------------------------------------------------------------------------


def _converge(run: _Run, clock: _Clock) -> None:
    """What an operator does after a bad night: ingest, expire, finish interrupted restores."""
    with hot_connection(run.settings.hot_db, read_only=True) as con:
        known = {r[0] for r in con.execute("SELECT path FROM ingested_files").fetchall()}
    landed = {str(p.resolve()) for p in discover([run.settings.landing / "currents"])}
    if landed - known:
        # The last ingest was killed: its files are read again, as the next sensor run would.
        run.ix("final", "ingest")
    run.ix("final", "expire", "--as-of", clock.now().isoformat())
    with hot_connection(run.settings.hot_db, read_only=True) as con:
        left = con.execute(
            "SELECT item_id, item_type FROM item_lifecycle WHERE state = 'restoring' ORDER BY 1"
        ).fetchall()
    if left:
        args = [a for item_id, t in left for a in (f"--{t}", item_id)]
        done = run.ix(
            "final", "restore", *args, "--as-of", (clock.now() + timedelta(hours=1)).isoformat()
        )
        if isinstance(done, dict):
            run.figures.restores_done += len(done["restored"])


def audit_problems(con: Any) -> tuple[int, list[str]]:
    """Replay `lifecycle_audit` per item: each row starts where the previous one ended, only
    protocol transitions occur, and the last one ends in the item's current state."""
    current = dict(con.execute("SELECT item_id, state FROM item_lifecycle").fetchall())
    rows = con.execute(
        "SELECT item_id, from_state, to_state FROM lifecycle_audit ORDER BY item_id, logged_at"
    ).fetchall()
    chains: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for item_id, a, b in rows:
        chains[item_id].append((a, b))
    problems: list[str] = []
    for item_id, state in sorted(current.items()):
        chain = chains.pop(item_id, [])
        at = "hot"
        for step, (a, b) in enumerate(chain):
            if a != at or (a, b) not in ALLOWED:
                problems.append(f"{item_id}: audit row {step} is {a}→{b} while the item was {at}")
                break
            at = b
        else:
            if at != state:
                problems.append(f"{item_id}: the audit ends in {at} but the item is {state}")
    problems += [f"{i}: audit rows for an item without lifecycle row" for i in chains]
    return len(rows), problems


def _check(run: _Run, written: list[str]) -> None:
    import dagster as dg

    f = run.figures
    archive = Archive(run.settings.archive_uri)
    with hot_connection(run.settings.hot_db, read_only=True) as con:
        f.rows_lost = sum(invariants.lost_events(con, archive).values())
        f.duplicate_ids = sum(invariants.duplicate_ids(con, archive).values())
        f.visible_rows_of_hidden_items = invariants.visible_rows_of_hidden_items(con)
        f.items_in_flight = invariants.items_in_flight(con)
        f.events_ingested = con.execute(
            "SELECT count(DISTINCT id_key) FROM event_ledger"
        ).fetchall()[0][0]
        f.items_expired_at_end = con.execute(
            "SELECT count(*) FROM item_lifecycle WHERE state = 'expired'"
        ).fetchall()[0][0]
        # Independently of the ledger: every id this run delivered is hot or archived.
        with contextlib.ExitStack() as stack:
            ids = pa.table({"id": pa.array(sorted(set(written)), pa.string())})
            stack.enter_context(registered(con, "_written", ids))
            found = "SELECT id FROM _written"
            for item_type in ITEM_TYPES:
                stack.enter_context(
                    registered(con, f"_arch_{item_type}", archive.dataset(item_type))
                )
                found = f"""SELECT id FROM ({found}) w
                            WHERE NOT EXISTS (SELECT 1 FROM {interaction_table(item_type)} h WHERE h.id = w.id)
                              AND NOT EXISTS (SELECT 1 FROM _arch_{item_type} a WHERE a.id = w.id)"""  # noqa: S608
            f.written_ids_missing = con.execute(f"SELECT count(*) FROM ({found})").fetchall()[0][0]  # noqa: S608
        f.audit_rows, f.audit_problems = audit_problems(con)
    instance = dg.DagsterInstance.from_config(str(run.settings.dagster_home))
    try:
        f.runs_left_started = len(
            instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                              dg.DagsterRunStatus.STARTING]))
        )  # fmt: skip
    finally:
        instance.dispose()


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def run_stress(
    data_dir: Path, config: StressConfig | None = None, log: Callable[[str], None] = print
) -> StressFigures:
    """Generate a workspace in `data_dir`, load it concurrently with crashes, converge, check."""
    config = config or StressConfig()
    started = time.monotonic()
    settings = load_settings(data_dir)
    ensure_dagster_home(settings.dagster_home)
    summary = generate_workspace(settings.data_dir, n_users=config.n_users, n_events=config.n_events,
                                 n_campaigns=config.n_campaigns, n_canvases=config.n_canvases,
                                 seed=config.seed)  # fmt: skip
    run = _Run(settings, config, log)
    run.figures.events_generated = summary.n_events
    # The workspace is ingested before the load starts: `ix expire` on a store without a
    # catalog fails (an empty executemany in `expiry_eligibility`; see docs/RELIABILITY.md).
    if run.ix("setup", "ingest") is None:
        raise RuntimeError(f"the first ingest failed: {run.figures.failures}")
    items, segments = _catalog(settings)
    clock = _Clock(config.start_as_of, config.as_of_step)
    rng = random.Random(config.seed)
    writer = _EventWriter(run, items, random.Random(rng.random()))
    workers = [
        threading.Thread(target=_ingest_worker, args=(run, writer, clock, random.Random(rng.random())), name="ingest"),
        threading.Thread(target=_expiry_worker, args=(run, clock, random.Random(rng.random())), name="expiry"),
        threading.Thread(target=_restore_worker, args=(run, clock, items, random.Random(rng.random())), name="restore"),
        threading.Thread(target=_reader_worker, args=(run, clock, segments, random.Random(rng.random())), name="reader"),
    ]  # fmt: skip
    for w in workers:
        w.start()
    load_started = time.monotonic()
    while all(w.is_alive() for w in workers):
        elapsed = time.monotonic() - load_started
        if elapsed >= config.duration_s and (run.enough_load() or elapsed >= config.max_duration_s):
            break
        time.sleep(0.5)
    run.stop.set()
    log(f"load phase over after {time.monotonic() - started:.0f} s: {dict(run.ops)}; draining")
    for w in workers:
        w.join()
    _converge(run, clock)
    run.figures.events_written = len(writer.written)
    _check(run, writer.written)
    run.figures.operations = dict(run.ops)
    run.figures.faults_injected = dict(run.faults)
    run.figures.last_as_of = clock.now().isoformat()
    run.figures.seconds = round(time.monotonic() - started, 1)
    return run.figures


def _temp_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ix-stress-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="load for five minutes, not 35 s")
    parser.add_argument("--duration", type=float, help="seconds of concurrent load")
    parser.add_argument("--events", type=int, help="events of the generated workspace")
    parser.add_argument("--data-dir", type=Path, help="work here (kept); default: a temp dir")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    config = StressConfig(seed=args.seed)
    if args.long:
        config.duration_s = 300.0
        config.n_events = 100_000
        config.n_users = 3_000
        config.n_campaigns, config.n_canvases = 60, 20
        config.events_per_file = 2_000
        # More ticks fit in five minutes: smaller steps keep the clock within a few years.
        config.as_of_step = timedelta(days=30)
    if args.duration:
        config.duration_s = args.duration
    if args.events:
        config.n_events = args.events
    context = (
        contextlib.nullcontext(args.data_dir)
        if args.data_dir
        else contextlib.contextmanager(_temp_dir)(False)
    )
    with context as data_dir:
        figures = run_stress(
            Path(data_dir), config, log=lambda m: print(m, file=sys.stderr, flush=True)
        )
    print(json.dumps(asdict(figures), indent=2, default=str))
    return 0 if figures.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
