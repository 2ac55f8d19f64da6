"""outreach_campaign against the real sandbox and Prefect API: once per contact, whatever happens."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
)
from prefect.settings import PREFECT_API_URL
from pydantic import SecretStr

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.outreach import quiet
from autotalk_prefect.flows.outreach.engine import Audience, QuietHours
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.flows.templating import TemplateInvalidError
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle, run_sandbox

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-outreach-test-5f1c"
TEMPLATE = "Hi {{ name }}, our offer is live."


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with run_sandbox(api_key=KEY, seed=3, contacts=600) as handle:
        yield handle


@pytest.fixture
def creds(sandbox: SandboxHandle) -> AutoTalkCredentials:
    sandbox.reset()
    sandbox.clear_faults()
    return AutoTalkCredentials(api_key=SecretStr(KEY), base_url=sandbox.base_url)


def _counts(sandbox: SandboxHandle) -> collections.Counter[str]:
    return collections.Counter(str(m["contactId"]) for m in sandbox.sent_messages())


def _run(creds: AutoTalkCredentials, ledger: Path, **params: Any) -> Any:
    params.setdefault("campaign_id", "spring")
    params.setdefault("message_template", TEMPLATE)
    return outreach_campaign(ledger_storage=str(ledger), credentials=creds, **params)


@pytest.mark.floor
def test_everyone_once_under_429s_and_503s_and_a_rerun_sends_nothing(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    sandbox.set_faults(
        FaultConfig(
            rate_429=0.08,
            error_rate=0.05,
            error_statuses=(503,),
            retry_after_on_503=True,
            retry_after_seconds=0.01,
            seed=5,
        )
    )
    audience = set(sandbox.contact_ids())
    first = _run(creds, tmp_path, chunk_size=150)
    counts = _counts(sandbox)
    assert set(counts) == audience and set(counts.values()) == {1}
    assert (first.total, first.sent, first.failed, first.unknown) == (600, 600, 0, 0)
    assert "429" in str(sandbox.stats()) and "503" in str(sandbox.stats())  # faults happened

    second = _run(creds, tmp_path, chunk_size=150)
    assert (second.sent, second.skipped_already_sent) == (0, 600)
    assert _counts(sandbox) == counts


def test_2000_contacts_under_faults_once_each_and_artifacts_agree(tmp_path: Path) -> None:
    faults = FaultConfig(
        rate_429=0.05,
        error_rate=0.05,
        error_statuses=(503,),
        retry_after_on_503=True,
        retry_after_seconds=0.01,
        seed=12,
    )
    with run_sandbox(api_key=KEY, seed=8, contacts=2000, faults=faults) as big:
        creds = AutoTalkCredentials(api_key=SecretStr(KEY), base_url=big.base_url)
        summary = _run(creds, tmp_path, campaign_id="Artifacts_1", chunk_size=400)
        counts = _counts(big)
        assert set(counts) == set(big.contact_ids()) and set(counts.values()) == {1}
    assert (summary.total, summary.sent, summary.failed, summary.unknown) == (2000, 2000, 0, 0)

    async def read(key: str) -> Any:
        async with get_client() as client:
            found = await client.read_latest_artifacts(
                artifact_filter=ArtifactCollectionFilter(
                    key=ArtifactCollectionFilterKey(any_=[key])
                )
            )
            return found[0]

    markdown = asyncio.run(read("outreach-artifacts-1-summary"))
    progress = asyncio.run(read("outreach-artifacts-1-progress"))
    assert "| 2000 | 2000 | 0 | 0 | 0 | 0 |" in markdown.data
    assert markdown.description.startswith("2000 sent, 0 failed, 0 unknown of 2000; ")
    assert "retried" in markdown.description and "Retries absorbed" in markdown.data
    assert float(progress.data) == 100.0
    assert KEY not in str(markdown.data) + str(markdown.description)


def test_dropped_answers_are_unknown_not_resent_unless_asked(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    sandbox.set_faults(FaultConfig(drop_after_processing=0.1, seed=9))
    first = _run(creds, tmp_path, campaign_id="drops", reconcile_unknown=False)
    assert first.unknown > 0 and first.sent + first.unknown == 600
    assert first.reconciliation is None
    counts = _counts(sandbox)
    assert set(counts.values()) == {1}  # the dropped ones were applied once, never twice
    unknown_ids = {p.contact_id for p in first.unknowns}

    sandbox.clear_faults()
    second = _run(creds, tmp_path, campaign_id="drops", reconcile_unknown=False)
    assert second.sent == 0 and second.unknown == first.unknown
    assert {p.contact_id for p in second.unknowns} == unknown_ids
    assert _counts(sandbox) == counts

    third = _run(creds, tmp_path, campaign_id="drops", resend_unknown=True, reconcile_unknown=False)
    assert third.sent == first.unknown
    assert all(_counts(sandbox)[c] == 2 for c in unknown_ids)


def test_dropped_answers_are_reconciled_to_sent_and_never_resent(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    sandbox.set_faults(
        FaultConfig(
            drop_after_processing=0.1, methods=("POST",), path_pattern="send_message", seed=9
        )
    )
    first = _run(creds, tmp_path, campaign_id="drops-rec")  # reconcile_unknown=True by default
    sandbox.clear_faults()
    counts = _counts(sandbox)
    assert set(counts) == set(sandbox.contact_ids()) and set(counts.values()) == {1}
    rec = first.reconciliation
    assert rec is not None and rec.unknown_before > 0
    assert (rec.found_sent, rec.marked_failed, rec.still_unknown) == (rec.unknown_before, 0, 0)
    assert first.unknown == 0 and first.sent + rec.found_sent == 600

    again = _run(creds, tmp_path, campaign_id="drops-rec", resend_unknown=True)
    assert (again.sent, again.skipped_already_sent, again.unknown) == (0, 600, 0)
    assert _counts(sandbox) == counts


def test_grace_period_turns_unfound_unknowns_into_failed_and_the_next_run_sends_them(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    """A send cut off before it reached AutoTalk (a 5xx the server answers without applying):
    not found by reconciliation; with a grace period of 0 it becomes failed, and the next run
    sends it, once."""
    from autotalk_prefect.ledger.reconcile import reconcile
    from autotalk_prefect.ledger.store import ClaimLedger, LedgerState

    ids = sandbox.contact_ids()[:20]
    sandbox.set_faults(
        FaultConfig(error_rate=0.3, error_statuses=(500,), path_pattern="send_message", seed=3)
    )
    first = _run(creds, tmp_path, campaign_id="grace", audience=Audience(contact_ids=ids))
    sandbox.clear_faults()
    assert first.unknown > 0 and first.reconciliation is not None
    assert first.reconciliation.still_unknown == first.unknown  # a 500 applied nothing
    ledger = ClaimLedger("grace", str(tmp_path))
    with creds.get_client() as client:
        report = reconcile(ledger, client, grace_minutes=0)
    assert report.marked_failed == first.unknown
    assert ledger.counts()[LedgerState.FAILED.value] == first.unknown
    second = _run(creds, tmp_path, campaign_id="grace", audience=Audience(contact_ids=ids))
    assert second.sent == first.unknown
    assert set(_counts(sandbox).values()) == {1} and len(_counts(sandbox)) == 20


def test_a_stale_claim_of_a_stopped_run_becomes_unknown_and_is_reported_as_such(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    """A run killed between its claim and its send leaves ``pending`` rows. Reconciliation does
    not find those messages; once the claim is older than any send can stay in flight it says
    "its run stopped" (unknown, never re-sent), and the next run reports that, not "claimed by
    another run"; a recent pending claim (a run still sending) is left alone."""
    import time

    from autotalk_prefect.ledger.reconcile import STALE_PENDING_SECONDS, STOPPED_REASON, reconcile
    from autotalk_prefect.ledger.store import Claim, ClaimLedger, LedgerState

    stale, fresh = sandbox.contact_ids()[:2]
    ledger = ClaimLedger("stale-claims", str(tmp_path))
    ledger.claim([Claim(stale, "Hi, never sent"), Claim(fresh, "Hi, in flight")], "killed-run")
    with creds.get_client() as client:
        later = time.time() + STALE_PENDING_SECONDS + 1
        report = reconcile(ledger, client, keys={stale}, now=later)
        kept = reconcile(ledger, client, keys={fresh})
    assert (report.unknown_before, report.still_unknown, report.stale_claims) == (1, 1, 1)
    assert "1 left by a run that stopped" in report.line()
    assert (kept.still_unknown, kept.stale_claims) == (1, 0)
    status = ledger.statuses([stale, fresh])
    assert status[stale].state is LedgerState.UNKNOWN and status[stale].reason == STOPPED_REASON
    assert status[fresh].state is LedgerState.PENDING
    summary = _run(
        creds,
        tmp_path,
        campaign_id="stale-claims",
        audience=Audience(contact_ids=[stale, fresh]),
        reconcile_unknown=False,
    )
    assert (summary.sent, summary.unknown, summary.skipped_claimed) == (0, 1, 1)
    assert sandbox.sent_messages(stale) == [] and sandbox.sent_messages(fresh) == []


def test_a_field_missing_fails_those_contacts_and_a_rerun_retries_them(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    ids = sandbox.contact_ids()[:5]
    bad = _run(
        creds,
        tmp_path,
        campaign_id="typo",
        message_template="Hi {{ nickname }}",
        audience=Audience(contact_ids=ids),
    )
    assert bad.failed == 5 and bad.sent == 0
    assert "nickname" in bad.failures[0].reason
    assert sandbox.sent_messages() == []
    fixed = _run(creds, tmp_path, campaign_id="typo", audience=Audience(contact_ids=ids))
    assert fixed.sent == 5  # failed means definitely not sent: safe to retry


def test_a_broken_template_fails_before_anything_is_sent(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    with pytest.raises(TemplateInvalidError, match="syntax error"):
        _run(creds, tmp_path, message_template="Hi {{ name ")
    assert sandbox.sent_messages() == []


def test_bad_parameters_are_refused_with_their_names(
    creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    with pytest.raises(Exception, match="chunk_size"):
        _run(creds, tmp_path, chunk_size=0)
    with pytest.raises(ValueError, match="campaign_id"):
        _run(creds, tmp_path, campaign_id="../etc")
    with pytest.raises(Exception, match="contact_ids"):
        Audience(contact_ids=["ok", ""])
    with pytest.raises(Exception, match="time zone"):
        QuietHours(start=dt.time(21), end=dt.time(8), timezone="Mars/Olympus")


def test_quiet_hours_skip_sends_nothing(
    sandbox: SandboxHandle,
    creds: AutoTalkCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    night = dt.datetime(2026, 11, 25, 23, 30, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(quiet, "now", lambda: night)
    window = QuietHours(start=dt.time(21), end=dt.time(8), timezone="UTC")
    assert window.seconds_left(night) == 8.5 * 3600
    assert window.seconds_left(night.replace(hour=12)) == 0
    summary = _run(creds, tmp_path, quiet_hours=window, on_quiet_hours="skip")
    assert summary.quiet_hours_skipped and summary.sent == 0
    assert sandbox.sent_messages() == []


def test_orders_audience_messages_each_contact_once(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    contact = sandbox.contact_ids()[0]
    sandbox.seed_items("orders", 3, clientId=contact, status="paid")
    summary = _run(
        creds,
        tmp_path,
        campaign_id="orders",
        message_template="Your order ({{ status }}) has shipped.",
        audience=Audience(
            dynadata_type="orders", filters={"clientId": contact}, contact_field="clientId"
        ),
    )
    assert (summary.total, summary.sent) == (1, 1)
    assert _counts(sandbox) == {contact: 1}


def test_killed_midway_then_rerun_reaches_everyone_exactly_once(
    sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    sandbox.set_faults(FaultConfig(latency_ms=15, seed=1))
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "AUTOTALK_API_KEY": KEY,
        "AUTOTALK_BASE_URL": sandbox.base_url,
    }
    code = (
        "from autotalk_prefect.flows.outreach.flow import outreach_campaign\n"
        f"outreach_campaign(campaign_id='crash', message_template={TEMPLATE!r}, "
        f"ledger_storage={str(tmp_path)!r}, chunk_size=100)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(sandbox.sent_messages()) < 150:
            assert process.poll() is None, "the campaign ended before it could be killed"
            assert time.monotonic() < deadline, "the campaign never got going"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    before = _counts(sandbox)
    assert 0 < sum(before.values()) < 600

    sandbox.clear_faults()
    rerun = _run(creds, tmp_path, campaign_id="crash")
    counts = _counts(sandbox)
    # the killed run's claims in flight: skipped as claimed, and reconciliation finds the ones
    # that reached AutoTalk
    held = {p.contact_id for p in rerun.unknowns + rerun.claimed}
    assert all(n == 1 for n in counts.values()), "somebody got the campaign twice"
    missing = set(sandbox.contact_ids()) - set(counts)
    assert missing <= held  # only a send cut off mid-flight may be missing, and it is reported
    total = rerun.skipped_already_sent + rerun.sent + rerun.unknown + rerun.skipped_claimed
    assert total == 600
    if rerun.skipped_claimed:
        assert rerun.reconciliation is not None
        assert rerun.reconciliation.unknown_before >= rerun.skipped_claimed


def test_ledger_reconcile_command_resolves_unknowns_found_in_autotalk(
    sandbox: SandboxHandle,
    creds: AutoTalkCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from autotalk_prefect.cli import app
    from autotalk_prefect.ledger.store import ClaimLedger

    ids = sandbox.contact_ids()[:40]
    sandbox.set_faults(
        FaultConfig(
            drop_after_processing=0.3, methods=("POST",), path_pattern="send_message", seed=4
        )
    )
    first = _run(
        creds,
        tmp_path,
        campaign_id="cli-rec",
        audience=Audience(contact_ids=ids),
        reconcile_unknown=False,
    )
    sandbox.clear_faults()
    assert first.unknown > 0
    monkeypatch.setenv("AUTOTALK_API_KEY", KEY)
    monkeypatch.setenv("AUTOTALK_BASE_URL", sandbox.base_url)
    runner = CliRunner()
    done = runner.invoke(app, ["ledger", "reconcile", "cli-rec", "--ledger", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert f"{first.unknown} unknown -> {first.unknown} found sent" in done.output
    assert ClaimLedger("cli-rec", str(tmp_path)).counts()["sent"] == 40
    shown = runner.invoke(app, ["ledger", "show", "cli-rec", "--ledger", str(tmp_path)])
    assert "sent     40" in shown.output
    exported = runner.invoke(
        app, ["ledger", "export", "cli-rec", "--ledger", str(tmp_path), "--format", "csv"]
    )
    rows = exported.output.strip().splitlines()
    assert len(rows) == 41 and all(",sent," in row for row in rows[1:])
