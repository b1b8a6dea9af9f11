"""A real `dagster dev` on loopback over a small `ix demo` workspace, for the browser tests.

Everything runs as the operator would run it: the `ix` CLI builds the workspace, `dagster dev`
serves the UI from the repo root with `workspace.yaml`, mail goes to a real SMTP server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
LOCATION = "ix_pipeline"
REPOSITORY = "__repository__"  # the name Dagster gives the repository behind a `Definitions`

# Small enough to build in ~20 s on two cores, big enough that the nightly expiry archives a few
# campaigns (the demo's generator ages some of them past the policy).
DEMO_ARGS = ["--users", "2000", "--events", "40000", "--campaigns", "30", "--canvases", "8"]


@dataclass
class UiServer:
    url: str
    port: int
    env: dict[str, str]
    data_dir: Path
    mails: list[Message]
    log: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return graphql(self.url, query, variables)

    def ix(self, *args: str) -> Any:
        """Run the `ix` CLI against the test workspace and parse its --json output."""
        return ix_json(self.env, *args)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def ix_json(env: dict[str, str], *args: str) -> Any:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ix")), *args, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, f"ix {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback only)
        document = json.loads(response.read())
    assert "errors" not in document, document["errors"]
    return document["data"]


def workspace_env(data_dir: Path, smtp_port: int) -> dict[str, str]:
    """The developer's own IX_* and DAGSTER_HOME must not leak into the test workspace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IX_") and k != "DAGSTER_HOME"}
    env.update(
        IX_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(data_dir / "dagster_home"),
        IX_SMTP_HOST="127.0.0.1",
        IX_SMTP_PORT=str(smtp_port),
        IX_SMTP_STARTTLS="false",
        IX_SMTP_USER="ix-ui-test",
        IX_SMTP_PASSWORD="not-a-real-secret",
    )
    return env


def stop_sensors(dagster_home: Path, sensor_names: list[str]) -> None:
    """Record every sensor as STOPPED before `dagster dev` starts.

    The sensors default to RUNNING, and on a fresh instance their first tick re-ingests the
    demo's landing files and refreshes the catalog: about 2.5 minutes of runs in the `hot_db`
    pool that a UI-launched restore would queue behind (and the auto-restore could race it).
    The daemon ticks before the webserver answers, so stopping them through the UI or GraphQL
    would be too late. Dagster matches stored state to a sensor by location, repository and
    name, so a registered-location origin is enough. Internal API: dagster is pinned exactly.
    """
    import dagster as dg
    from dagster._core.remote_origin import (
        RegisteredCodeLocationOrigin,
        RemoteInstigatorOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
    )

    repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(LOCATION), REPOSITORY)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for name in sensor_names:
            instance.add_instigator_state(
                InstigatorState(
                    RemoteInstigatorOrigin(repository, name),
                    InstigatorType.SENSOR,
                    InstigatorStatus.STOPPED,
                )
            )


def _default_signals() -> None:
    # Background processes on these machines may start with SIGINT/SIGTERM ignored, which
    # `dagster dev` and its children inherit; then os.killpg would not stop them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def dagster_dev(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """`dagster dev` in its own session (webserver, daemon and code server share the process
    group), so one os.killpg stops all of them."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-w", "workspace.yaml",
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_default_signals,  # noqa: PLW1509
        )  # fmt: skip
        try:
            yield proc
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    # The leader may exit before its children (or not at all): whatever is left of the group
    # goes now, so no webserver, daemon or code server outlives the test.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_until_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Wait for /server_info, then for the code location to load (the UI answers earlier)."""
    deadline = time.monotonic() + timeout

    def check_alive() -> None:
        if proc.poll() is not None:
            raise AssertionError(
                f"dagster dev exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
            )

    while True:
        check_alive()
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5):  # noqa: S310
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, (
            f"no /server_info after {timeout} s:\n{log.read_text(errors='replace')[-4000:]}"
        )
        time.sleep(0.5)
    query = """{ workspaceOrError { ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    while True:
        check_alive()
        entries = graphql(url, query)["workspaceOrError"]["locationEntries"]
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED":
            loaded = entry["locationOrLoadError"]
            assert loaded["__typename"] == "RepositoryLocation", (
                f"code location failed to load: {loaded}"
            )
            return
        assert time.monotonic() < deadline, f"code location not loaded after {timeout} s: {entries}"
        time.sleep(0.5)
