"""The operator's walkthrough, in a real browser against a real `dagster dev`.

A small `ix demo` workspace, `dagster dev` on loopback, mail to a loopback SMTP server, and
Debian's chromium driven by Playwright: restore an expired campaign from the launchpad, see
the run succeed, find the item hot again and the notice delivered; then the asset graph.

Screenshots go to test-artifacts/ui/ (git-ignored). With IX_UPDATE_SCREENSHOTS=1 they also
replace the README's copies in docs/ui/.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dagster import DagsterRunStatus

from ix_pipeline.definitions import build_defs
from ix_pipeline.settings import load_settings
from ix_pipeline_tests.smtp import free_port, smtp_server
from ix_pipeline_tests.ui.server import (
    ARTIFACTS,
    DEMO_ARGS,
    LOCATION,
    REPOSITORY,
    ROOT,
    UiServer,
    dagster_dev,
    ix_json,
    stop_sensors,
    wait_until_ready,
    workspace_env,
)

if TYPE_CHECKING:  # the fixtures import playwright when a browser test runs
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.slow

DOCS = ROOT / "docs" / "ui"
# Generous: CI machines can be slow, and the first page load fetches megabytes of JavaScript.
TIMEOUT_MS = 60_000
RUN_TIMEOUT_S = 240
REQUESTER = "ops@example.com"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture(scope="module")
def chromium() -> str:
    """Fail, not skip: CI installs the browser, so a missing one is a broken setup."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed, so the UI cannot be tested: "
            "`apt-get update && apt-get install -y chromium` (CI's .ci/run does this). "
            "`playwright install` cannot download browsers on these machines."
        )
    return path


@pytest.fixture(scope="module")
def ui(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    data = tmp_path_factory.mktemp("ui") / "data"
    with smtp_server() as (smtp_port, mails):
        env = workspace_env(data, smtp_port)
        ix_json(env, "demo", *DEMO_ARGS)
        sensors = [s.name for s in build_defs(load_settings(data)).get_repository_def().sensor_defs]
        stop_sensors(data / "dagster_home", sensors)
        port = free_port()
        log = ARTIFACTS / "dagster-dev.log"
        with dagster_dev(env, port, log) as proc:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(url, proc, log)
            server = UiServer(url=url, port=port, env=env, data_dir=data, mails=mails, log=log)
            # The "Join the Dagster community" modal would cover the page on first load.
            assert server.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
            _assert_sensors_stopped(server, sensors)
            yield server


def _assert_sensors_stopped(ui: UiServer, names: list[str]) -> None:
    """If a Dagster upgrade changes how stored sensor state is matched, say so here rather
    than let the test wait minutes behind sensor-launched runs."""
    query = """query($loc: String!, $repo: String!) {
      sensorsOrError(repositorySelector: {repositoryLocationName: $loc, repositoryName: $repo}) {
        __typename ... on Sensors { results { name sensorState { status } } } } }"""
    found = ui.graphql(query, {"loc": LOCATION, "repo": REPOSITORY})["sensorsOrError"]
    assert found["__typename"] == "Sensors", found
    status = {s["name"]: s["sensorState"]["status"] for s in found["results"]}
    assert status == dict.fromkeys(names, "STOPPED"), status


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    from playwright.sync_api import expect, sync_playwright

    # expect() has its own 5 s default, separate from the page's; the UI can be slower.
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, ui: UiServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()


def _screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    # The README's copies change only on purpose, never as a side effect of running tests.
    if os.environ.get("IX_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / name)
    return path


def _type_config(page: Page, yaml_text: str) -> None:
    """Type into the launchpad's CodeMirror editor as a person would.

    CodeMirror auto-indents after Enter, so each new line first selects that indent
    (Shift+Home) and types over it with the line's own; Escape closes any completion popup
    first so Enter inserts a newline instead of accepting a suggestion.
    """
    page.locator(".CodeMirror-lines").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    for i, line in enumerate(yaml_text.splitlines()):
        if i:
            page.keyboard.press("Escape")
            page.keyboard.press("Enter")
            page.keyboard.press("Shift+Home")
        page.keyboard.type(line)
    page.keyboard.press("Escape")


def _editor_text(page: Page) -> str:
    return page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.getValue()")


def _wait_for_run(ui: UiServer, run_id: str) -> DagsterRunStatus:
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=ui.port)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (status := client.get_run_status(run_id)) not in TERMINAL:
        assert time.monotonic() < deadline, (
            f"run {run_id} still {status} after {RUN_TIMEOUT_S} s:\n{ui.log_tail()}"
        )
        time.sleep(1)
    return status


def _zoom_out_until_framed(page: Page, node: Locator) -> None:
    """The lineage opens zoomed in around one node and the top archive node sits under the
    toolbar; zoom out step by step until it clears the toolbar (with room for its tags)."""
    toolbar = page.locator("[class*=AssetGraphExplorer_topbarWrapper]").bounding_box()
    floor = (toolbar["y"] + toolbar["height"] if toolbar else 150) + 40
    for _ in range(8):
        box = node.bounding_box()
        if box and box["y"] >= floor:
            return
        page.locator("[aria-label=zoom_out]").click()
        page.wait_for_timeout(400)  # the zoom animates; the next check reads the settled box
    raise AssertionError(f"the archive node never cleared the toolbar: {node.bounding_box()}")


def test_restore_an_expired_campaign_from_the_launchpad(ui: UiServer, page: Page) -> None:
    from playwright.sync_api import expect

    expired = [
        r["id"] for r in ui.ix("status") if r["state"] == "expired" and r["type"] == "campaign"
    ]
    assert expired, "the demo workspace has no expired campaign to restore"
    item = expired[0]

    page.goto(f"{ui.url}/locations/{LOCATION}/jobs/restore_interaction_data/playground")
    page.wait_for_selector(".CodeMirror")
    # The pre-filled default config is valid as it stands.
    expect(page.get_by_text("No errors", exact=True)).to_be_visible()

    config = (
        "ops:\n"
        "  restore_items:\n"
        "    config:\n"
        "      campaign_ids:\n"
        f"        - {item}\n"
        f"      requested_by: {REQUESTER}\n"
    )
    _type_config(page, config)
    assert _editor_text(page).rstrip() == config.rstrip()
    expect(page.get_by_text("No errors", exact=True)).to_be_visible()
    # The config reference on the right documents the fields being filled in.
    expect(page.get_by_text("Campaign API ids to restore", exact=False).first).to_be_visible()
    # Validation is asynchronous; the button is greyed out until it answers.
    launch = page.get_by_role("button", name="Launch Run")
    expect(launch).to_be_enabled()
    _screenshot(page, "launchpad.png")

    launch.click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}"))
    run_id = re.search(r"/runs/([0-9a-f-]{36})", page.url).group(1)  # type: ignore[union-attr]
    status = _wait_for_run(ui, run_id)
    assert status == DagsterRunStatus.SUCCESS, f"run {run_id} ended {status}:\n{ui.log_tail()}"

    # The run page updates itself: the status tag and our op's summary line appear.
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    summary = page.get_by_text(re.compile(r"restored 1 items \(\d+ rows\)")).first
    expect(summary).to_be_visible()
    # The log scrolls to its end; filtering to our op's summary puts it on the screenshot.
    page.get_by_placeholder("Filter").fill("restored")
    expect(summary).to_be_in_viewport()
    _screenshot(page, "run.png")

    [row] = ui.ix("status", item)
    assert row["state"] == "hot", row
    assert row["hot_rows"] > 0, row

    notices = [m for m in ui.mails if "restore done" in m["Subject"]]
    assert len(notices) == 1, [m["Subject"] for m in ui.mails]
    assert notices[0]["To"] == REQUESTER


def test_asset_graph_shows_the_lifecycle(ui: UiServer, page: Page) -> None:
    from playwright.sync_api import expect

    # Lineage, as the README says: the four groups, then the lifecycle group opened up.
    page.goto(f"{ui.url}/asset-groups")
    for group in ("catalog", "hot_store", "lifecycle", "features"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()

    page.goto(f"{ui.url}/locations/{LOCATION}/asset-groups/lifecycle/lineage")
    expect(page.get_by_text("expiry_eligibility", exact=True).first).to_be_visible()
    # Full nodes (not the link stubs of upstream assets) carry a tooltip with their name.
    archive_node = page.locator("div[data-tooltip='campaign_interactions']")
    expect(archive_node).to_have_count(1)
    expect(page.locator("div[data-tooltip='expiry_eligibility']")).to_be_visible()
    _zoom_out_until_framed(page, archive_node)
    expect(page.get_by_text("Loading...")).to_have_count(0)
    _screenshot(page, "asset_graph.png")

    # Node labels show the last key part only; the sidebar names the whole key.
    archive_node.click()
    expect(page.get_by_text("archive / campaign_interactions", exact=True).first).to_be_visible()
