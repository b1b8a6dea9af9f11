"""Shared helpers of `benchmarks/ingest.py` and `benchmarks/lifecycle.py`.

Each measured step runs in a fresh child process (``python SCRIPT --child …``) so that its
peak RSS (``VmHWM``) is its own; the child prints one JSON document as its last line.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    ``VmHWM`` (the high-water mark of this process's own address space), not ``ru_maxrss``:
    on Linux ``ru_maxrss`` survives ``fork`` + ``exec``, so a child started by a big parent
    reports the parent's RSS at fork time as its own peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine_note() -> str:
    import duckdb
    import polars as pl

    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}, polars {pl.__version__}"
    )


def now_utc() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def run_child(
    script: Path, args: Sequence[str], *, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script --child ARGS`` in a fresh interpreter; returns its last stdout line as JSON
    plus ``wall_s`` (the parent's view, interpreter start included) and the load average."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), "--child", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise RuntimeError(f"child {' '.join(args)} failed with exit code {proc.returncode}")
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_s"] = wall
    result["load_after"] = load_average()
    return result


def emit(doc: Mapping[str, Any]) -> None:
    """A child's answer: one JSON line, peak RSS added."""
    print(json.dumps({**doc, "rss_mb": peak_rss_mb()}), flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (also readable on a terminal)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the ``## name`` section of RESULTS.md, keeping every other one."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    lines = text.splitlines(keepends=True)
    heading = f"## {name}"
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    section = body.rstrip("\n") + "\n"
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        rest = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + rest if rest else "")
    path.write_text(new, encoding="utf-8")
