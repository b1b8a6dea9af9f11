"""Benchmark of Currents ingestion against a raw baseline measured in the same run.

Generates N Currents events once (`generate_workspace`, Avro files as Currents writes them;
cached by N and users under ``--work-dir``), then ingests them into a fresh DuckDB file twice,
each in its own child process so that peak RSS (``VmHWM``) is per process:

* ours: ``ingest_currents`` (validation, quarantine, de-duplication against the ledger, hot
  rows, ledger, per-user summaries and item analytics, in batches of one transaction each);
* raw baseline: ``pl.read_avro`` of the same files, the event type from the `event_type=` folder,
  concatenated in batches of the same size and inserted into one plain DuckDB table (no
  validation, no de-duplication, no derived tables).

Targets (at 2 M events): ratio (ours / baseline wall time) ≤ 1.5, peak RSS ≤ 1.5 GB.
Exit status is non-zero on errors only; missed targets print MISS.

    .venv/bin/python benchmarks/ingest.py [--events 2000000] [--users 100000]
        [--work-dir data/bench_ingest] [--repeat K] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    emit,
    load_average,
    machine_note,
    now_utc,
    run_child,
    table,
    verdict,
    write_section,
)
from ix_pipeline.ingest.currents_ingest import BATCH_ROWS as INGEST_BATCH_ROWS  # noqa: E402

TARGET_RATIO = 1.5
TARGET_RSS_MB = 1.5 * 1024
BATCH_ROWS = 1_000_000  # the baseline's batch size; ours runs with its own default (bounded memory)
GENERATOR_VERSION = 1


# --------------------------------------------------------------------------------------------
# Children


def child_ours(files: Path, db: Path, quarantine: Path) -> None:
    from ix_pipeline.ingest.currents_ingest import ingest_currents
    from ix_pipeline.store.hot import hot_connection

    t0 = time.perf_counter()
    with hot_connection(db) as con:
        report = ingest_currents(con, [files], quarantine, "bench-ingest")
        con.execute("CHECKPOINT")
    seconds = time.perf_counter() - t0
    emit({
        "seconds": seconds,
        "records": report.records_read,
        "stored": report.events_stored,
        "duplicates": report.duplicates_skipped,
        "quarantined": report.records_quarantined,
        "files": report.files_ingested,
    })  # fmt: skip


def child_baseline(files: Path, db: Path) -> None:
    import duckdb
    import polars as pl

    from ix_pipeline.ingest.currents import EVENT_SCHEMA

    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    cols = {n: t for n, t in EVENT_SCHEMA.items() if n != "record_index"}
    duck = {pl.String(): "VARCHAR", pl.Int64(): "BIGINT", pl.Int32(): "INTEGER",
            pl.Boolean(): "BOOLEAN"}  # fmt: skip
    con.execute(
        "CREATE TABLE raw_events ("
        + ", ".join(f"{n} {duck[t]}" for n, t in cols.items())
        + ", source VARCHAR)"
    )
    frames: list[pl.DataFrame] = []
    pending = records = 0

    def flush() -> None:
        nonlocal frames, pending
        if frames:
            batch = pl.concat(frames, how="diagonal_relaxed")  # noqa: F841 (read by DuckDB)
            con.execute("INSERT INTO raw_events BY NAME SELECT * FROM batch")
        frames, pending = [], 0

    for path in sorted(files.rglob("*.avro")):
        # The event type from the path (`event_type=…`), as Currents lays the files out.
        event_type = next(p[11:] for p in path.parts if p.startswith("event_type="))
        raw = pl.read_avro(path)
        # The stored fields only (extra Currents fields are ignored, as ours does).
        frame = raw.select([c for c in raw.columns if c in cols]).with_columns(
            pl.lit(event_type).alias("event_type"), pl.lit(str(path)).alias("source")
        )
        frames.append(frame)
        pending += frame.height
        records += frame.height
        if pending >= BATCH_ROWS:
            flush()
    flush()
    con.execute("CHECKPOINT")
    stored = con.execute("SELECT count(*) FROM raw_events").fetchall()[0][0]
    con.close()
    seconds = time.perf_counter() - t0
    emit({"seconds": seconds, "records": records, "stored": stored})


# --------------------------------------------------------------------------------------------
# Parent


def ensure_files(work: Path, events: int, users: int) -> tuple[Path, dict[str, Any]]:
    from ix_pipeline.demo.workspace import generate_workspace

    folder = work / f"ws_{events}_{users}"
    meta_path = folder / "meta.json"
    meta = {"events": events, "users": users, "generator": GENERATOR_VERSION}
    if meta_path.exists():
        saved = json.loads(meta_path.read_text())
        if {k: saved.get(k) for k in meta} == meta:
            print(f"reusing {folder}")
            return folder / "landing" / "currents", saved
    shutil.rmtree(folder, ignore_errors=True)
    print(f"generating {events:,} events for {users:,} users under {folder} …", flush=True)
    summary = generate_workspace(folder, n_users=users, n_events=events)
    files = summary.currents_files
    saved = {
        **meta,
        "records": summary.n_records,
        "duplicates": summary.n_duplicates,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "generate_s": round(summary.seconds, 1),
    }
    meta_path.write_text(json.dumps(saved))
    print(f"generated in {summary.seconds:.1f} s")
    return folder / "landing" / "currents", saved


def run_once(work: Path, files: Path, mode: str, attempt: str) -> dict[str, object]:
    db = work / f"run_{mode}.duckdb"
    quarantine = work / f"quarantine_{mode}"
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(quarantine, ignore_errors=True)
    child_args = [mode, "--files", str(files), "--db", str(db)]
    if mode == "ours":
        child_args += ["--quarantine", str(quarantine)]
    print(f"running {mode} ({attempt}) …", flush=True)
    result = run_child(Path(__file__), child_args)
    result["db_mb"] = db.stat().st_size / 2**20
    db.unlink(missing_ok=True)
    shutil.rmtree(quarantine, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "data" / "bench_ingest")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run baseline and ours this many times, alternating; report the "
        "pair with the median ratio (other load on the machine varies)",
    )
    parser.add_argument("--write-results", action="store_true",
                        help="replace the '## ingest' section of benchmarks/RESULTS.md")  # fmt: skip
    parser.add_argument("--child", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--quarantine", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ours":
        child_ours(args.files, args.db, args.quarantine)
        return 0
    if args.child == "baseline":
        child_baseline(args.files, args.db)
        return 0

    work: Path = args.work_dir.resolve()
    files, meta = ensure_files(work, args.events, args.users)
    load_before = load_average()
    pairs: list[dict[str, dict[str, object]]] = []
    for attempt in range(1, args.repeat + 1):
        results: dict[str, dict[str, object]] = {}
        for mode in ("baseline", "ours"):
            results[mode] = run_once(work, files, mode, f"{attempt}/{args.repeat}")
        pairs.append(results)
    ratios = [float(p["ours"]["seconds"]) / float(p["baseline"]["seconds"]) for p in pairs]  # type: ignore[arg-type]
    results = sorted(zip(ratios, pairs, strict=True), key=lambda rp: rp[0])[len(pairs) // 2][1]
    ours, base = results["ours"], results["baseline"]
    o_s, b_s = float(ours["seconds"]), float(base["seconds"])  # type: ignore[arg-type]
    o_rss, b_rss = float(ours["rss_mb"]), float(base["rss_mb"])  # type: ignore[arg-type]
    records = int(ours["records"])  # type: ignore[call-overload]
    ratio = o_s / b_s
    rows = [
        ["wall time (in-process)", f"{o_s:.1f} s", f"{b_s:.1f} s", f"{ratio:.2f}",
         f"ratio ≤ {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)}"],
        ["records per second", f"{records / o_s:,.0f}", f"{int(base['records']) / b_s:,.0f}", "", ""],  # type: ignore[call-overload]
        ["peak RSS of the process", f"{o_rss:.0f} MB", f"{b_rss:.0f} MB", f"{o_rss / b_rss:.2f}",
         f"≤ 1.5 GB: {verdict(o_rss <= TARGET_RSS_MB)}"],
        ["records read / rows stored", f"{records:,} / {int(ours['stored']):,}",  # type: ignore[call-overload]
         f"{int(base['records']):,} / {int(base['stored']):,}", "", ""],  # type: ignore[call-overload]
        ["DuckDB file after CHECKPOINT", f"{float(ours['db_mb']):.0f} MB",  # type: ignore[arg-type]
         f"{float(base['db_mb']):.0f} MB", "", ""],  # type: ignore[arg-type]
    ]  # fmt: skip
    header = ["measure", "ours (`ingest_currents`)", "raw baseline", "ratio", "target"]
    text = table(header, rows)
    print()
    print(text)
    print(f"\nload average (1/5/15 min) before: {load_before}; after ours: {ours['load_after']}")
    print("ratios of the runs: " + ", ".join(f"{r:.2f}" for r in ratios))
    print(f"ratio {ratio:.2f} → {verdict(ratio <= TARGET_RATIO)}; "
          f"peak RSS {o_rss:.0f} MB → {verdict(o_rss <= TARGET_RSS_MB)}")  # fmt: skip
    if args.write_results:
        body = f"""## ingest

Command: `.venv/bin/python benchmarks/ingest.py --events {args.events} --users {args.users} --repeat {args.repeat} --write-results`
(baseline and ours alternate {args.repeat} time(s); the table shows the pair with the median
ratio; the ratios of all pairs: {", ".join(f"{r:.2f}" for r in ratios)}).
Run {now_utc()} on {machine_note()}. Load average (1/5/15 min) before the run {load_before},
after ours {ours["load_after"]} (other people's tests share these 2 cores: compare the ratio,
not the absolute times).

Input: {args.events:,} events ({int(meta["records"]):,} records incl. {int(meta["duplicates"]):,} redeliveries) for {args.users:,} users
in {meta["files"]} Currents Avro files ({int(meta["bytes"]) / 2**20:.0f} MB, deflate/snappy/null codecs), written by
`generate_workspace` and cached under `{work.relative_to(ROOT) if work.is_relative_to(ROOT) else work}`.

{text}

Ours: `ingest_currents(con, [currents_dir], …)` on a fresh hot store (`hot_connection`), batches
of its default size ({INGEST_BATCH_ROWS:,} events; files read, validated and typed ahead on two worker
threads), one transaction each: the ledger check (de-duplication), hot rows, `event_ledger`, the
batch's per-user / per-keyword / per-item aggregates into the `*_pending` tables,
`ingested_files`; the last batch also folds the pending aggregates into `user_summaries`,
`user_items_received`, `user_inbound_keywords` and `item_analytics`. Baseline: `pl.read_avro` of each file (event type from the `event_type=` folder),
`pl.concat` per {BATCH_ROWS:,} rows and `INSERT INTO raw_events BY NAME` into one plain table
of a fresh DuckDB file; no validation, no de-duplication, no derived tables. Each runs in its
own child process; times are measured inside the child (open to close, CHECKPOINT included),
peak RSS is that process's `VmHWM`.
"""  # noqa: E501  # type: ignore[call-overload]
        write_section("ingest", body)
        print("wrote benchmarks/RESULTS.md (## ingest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
