"""Concurrent `ix` processes with injected crashes on a generated workspace: nothing lost,
nothing twice, every transition audited, nothing left mid-operation (see stress.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ix_pipeline_tests.reliability.stress import StressConfig, run_stress

# The test configuration: about 25 s of load on two CPUs, longer (up to 50 s) when a loaded
# machine has not yet run two ingests, an expiry and a restore by then; bounded to 120 s in
# all. The cycles in StressConfig start with a crash, so these few runs still inject each
# kind of fault.
TEST_CONFIG = StressConfig(duration_s=25.0, max_duration_s=50.0, reader_pause_s=6.0)


@pytest.mark.slow
def test_concurrent_ingest_expiry_restore_and_reads_with_crashes_lose_nothing(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    figures = run_stress(tmp_path / "data", TEST_CONFIG, log=lines.append)
    report = "\n".join(lines)
    assert figures.failures == [], report
    # Every event id delivered (the workspace's and those written during the load) is hot or
    # archived, once; the ledger agrees.
    assert figures.rows_lost == 0 and figures.written_ids_missing == 0, report
    assert figures.duplicate_ids == 0, report
    assert figures.events_ingested == figures.events_generated + figures.events_written, report
    assert figures.visible_rows_of_hidden_items == 0
    # Every item's audit log replays to its current state; nothing is left mid-operation.
    assert figures.audit_problems == [] and figures.audit_rows > 0, report
    assert figures.items_in_flight == [] and figures.runs_left_started == 0, report
    # The load really was concurrent and really crashed processes.
    ops = figures.operations
    assert ops.get("ingest", 0) >= 2 and ops.get("expire", 0) >= 1, ops
    assert ops.get("restore_by_id", 0) + ops.get("restore_by_tag", 0) >= 1, ops
    assert figures.faults_fired >= 2, (figures.faults_injected, report)
    assert figures.seconds < 120, report
    print(f"\nstress: {figures}")
