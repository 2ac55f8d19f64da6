"""The Prefect UI after two outreach runs, in a real browser (issue 17): what a user sees.

A real ``prefect server start`` (SQLite, its UI on) records two runs of ``outreach_campaign``
made by a child process against a sandbox of its own (so the session's Prefect harness is
left alone); the browser (tests/browser.py) then opens the flow-runs list, the first run's
page and its summary artifact. Set ``AUTOTALK_UPDATE_SCREENSHOTS=1`` to refresh
docs/img/ui-*.png from what it saw.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.client.schemas.sorting import FlowRunSort

from tests.prefect_processes import PATIENCE_S, clean_env, log_tail, prefect_server, server_log

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "docs" / "img"
CAMPAIGN = "winter-2026"
RUN_NAME = f"outreach-{CAMPAIGN}"
SUMMARY_KEY = f"outreach-{CAMPAIGN}-summary"
CONTACTS = 40
FLOWS_TIMEOUT_S = PATIENCE_S
UI_TIMEOUT_MS = 30_000

# Runs in the child process: a sandbox of its own, the campaign twice (the second sends nothing).
RUN_TWICE = f"""
import sys
from pydantic import SecretStr
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows import outreach_campaign
from autotalk_prefect.sandbox import run_sandbox

KEY = "sk-ui-screenshots-7b2e"
with run_sandbox(api_key=KEY, seed=5, contacts={CONTACTS}) as sandbox:
    credentials = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url)
    for _ in range(2):
        outreach_campaign(
            {CAMPAIGN!r},
            "Hi {{{{ name }}}}, our winter offer is live: 20% off until Sunday.",
            ledger_storage=sys.argv[1],
            credentials=credentials,
        )
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups (POSIX)")


def _shot(page: Page, name: str, tmp_path: Path, *, full_page: bool = False) -> None:
    """Save a screenshot to tmp_path; also over docs/img/<name> when asked to refresh them."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("AUTOTALK_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, IMG / name)


def test_the_prefect_ui_shows_the_outreach_runs_their_state_tags_and_summary(
    browser_page: Page, tmp_path: Path
) -> None:
    home = tmp_path / "server"
    # task runs reach the UI as events the task-run recorder stores
    with prefect_server(home, {"task_run_recorder"}, ui=True) as api:
        flows_log = tmp_path / "flows.log"
        with flows_log.open("wb") as out:
            ran = subprocess.run(
                [sys.executable, "-c", RUN_TWICE, str(tmp_path / "ledger")],
                env=clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "client")),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=FLOWS_TIMEOUT_S,
                check=False,
            )
        assert ran.returncode == 0, f"{log_tail(flows_log)}\n{log_tail(server_log(home))}"

        with SyncPrefectClient(api) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[RUN_NAME])),
                sort=FlowRunSort.START_TIME_ASC,
            )
            assert len(runs) == 2 and all(r.state and r.state.is_completed() for r in runs)
            first = runs[0]
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[first.id]),
                    key=ArtifactFilterKey(any_=[SUMMARY_KEY]),
                )
            )
        assert len(artifacts) == 1
        summary = artifacts[0]
        headline = f"{CONTACTS} sent, 0 failed, 0 unknown of {CONTACTS}"
        assert summary.description is not None and summary.description.startswith(headline)

        ui = api.removesuffix("/api")
        page = browser_page
        page.set_default_timeout(UI_TIMEOUT_MS)  # the UI's scripts are large for a busy machine

        # The flow-runs list: both runs, by name, completed (the list is below the chart).
        page.goto(f"{ui}/runs")
        expect(page.get_by_text(RUN_NAME).first).to_be_visible()
        expect(page.get_by_text(RUN_NAME)).to_have_count(2)
        expect(page.get_by_text("Completed").first).to_be_visible()
        page.get_by_text(RUN_NAME).last.scroll_into_view_if_needed()
        _shot(page, "ui-flow-runs.png", tmp_path)

        # The first run's page: its name, state and tags; its artifacts tab lists the summary
        # by key, with the headline as its description.
        page.goto(f"{ui}/runs/flow-run/{first.id}")
        expect(page.get_by_text(RUN_NAME).first).to_be_visible()
        expect(page.get_by_text("Completed").first).to_be_visible()
        expect(page.get_by_text("autotalk", exact=True).first).to_be_visible()
        expect(page.get_by_text(CAMPAIGN, exact=True).first).to_be_visible()
        page.get_by_text("Artifacts", exact=True).click()
        expect(page.get_by_text(SUMMARY_KEY).first).to_be_visible()
        expect(page.get_by_text(headline).first).to_be_visible()
        _shot(page, "ui-outreach-run.png", tmp_path)

        # The summary artifact's own page: key, headline, and the markdown it renders.
        page.goto(f"{ui}/artifacts/artifact/{summary.id}")
        expect(page.get_by_text(SUMMARY_KEY).first).to_be_visible()
        expect(page.get_by_text(headline).first).to_be_visible()
        expect(page.get_by_text("Retries absorbed")).to_be_visible()
        _shot(page, "ui-outreach-artifact.png", tmp_path)
