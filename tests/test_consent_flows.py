"""Consent through the real flows: the sandbox over loopback, the session's Prefect API, a SQLite
ledger file. One test per scenario: STOP then campaigns (default audience, explicit ids), the
onboarding welcome and a HELP answer skipped, START back in; a transactional campaign; a
frequency cap deferring and a later run sending."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.onboarding.flow import onboard_contact
from autotalk_prefect.flows.outreach.engine import Audience
from autotalk_prefect.flows.outreach.flow import outreach_campaign
from autotalk_prefect.flows.replies.flow import handle_reply
from autotalk_prefect.ledger.optouts import Identity, OptOutList
from autotalk_prefect.sandbox import SandboxHandle
from tests.test_client_sandbox import REFUSALS as EVERY_REFUSAL


@pytest.fixture
def sb(autotalk_sandbox: SandboxHandle) -> SandboxHandle:
    return autotalk_sandbox


@pytest.fixture
def creds(sb: SandboxHandle) -> AutoTalkCredentials:
    return AutoTalkCredentials(api_key=sb.api_key, base_url=sb.base_url)


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


def _event(contact_id: str, text: str, n: int) -> dict[str, Any]:
    return {
        "id": f"evt-{n}",
        "client": {"_id": contact_id},
        "message": {"_id": f"m-{n}", "text": text},
    }


def _received(sb: SandboxHandle) -> collections.Counter[str]:
    return collections.Counter(str(m["contactId"]) for m in sb.sent_messages())


def _campaign(creds: AutoTalkCredentials, ledger: str, campaign: str, **kwargs: Any) -> Any:
    return outreach_campaign(
        campaign_id=campaign,
        message_template="Spring sale, {{ name }}!",
        ledger_storage=ledger,
        credentials=creds,
        **{"reconcile_unknown": False, **kwargs},
    )


def test_stop_then_every_send_path_skips_the_contact_and_start_opts_back_in(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger: str
) -> None:
    ids = sb.contact_ids()
    stopper = ids[0]
    record = dict(sb.runtime.state.items["clients"][stopper])
    stop = handle_reply(event=_event(stopper, "STOP", 1), ledger_storage=ledger, credentials=creds)
    assert [(a.kind, a.status) for a in stop.actions] == [
        ("opt_out", "done"),
        ("update_field", "done"),
        ("send_answer", "done"),  # the confirmation: the one message allowed after STOP
    ]
    (entry,) = OptOutList(ledger).find(Identity(stopper))
    assert (entry.phone, entry.email) == (record["phone"], record["email"].lower())
    assert entry.source == "handle_reply event evt-1" and "stop" in (entry.reason or "")
    assert _received(sb) == {stopper: 1}

    default = _campaign(creds, ledger, "spring")
    assert (default.sent, default.skipped_opted_out, default.failed) == (len(ids) - 1, 1, 0)
    assert default.opted_out == [stopper]
    explicit = _campaign(creds, ledger, "spring-vip", audience=Audience(contact_ids=ids))
    assert (explicit.sent, explicit.skipped_opted_out, explicit.failed) == (len(ids) - 1, 1, 0)
    received = _received(sb)
    assert received[stopper] == 1 and all(received[c] == 2 for c in ids[1:])

    # a HELP answer is skipped; a new record with the stopper's phone is not welcomed
    helped = handle_reply(
        event=_event(stopper, "help", 2), ledger_storage=ledger, credentials=creds
    )
    assert [(a.kind, a.status) for a in helped.actions] == [("send_answer", "skipped")]
    welcome = onboard_contact(
        dynadata_type="clients",
        record={"name": "Ana Again", "phone": record["phone"], "status": "lead"},
        message_template="Welcome {{ name }}",
        ledger_storage=ledger,
        credentials=creds,
    )
    assert welcome.created and welcome.send_state == "opted_out" and not welcome.sent
    assert _received(sb)[stopper] == 1 and len(sb.sent_messages()) == 1 + 2 * (len(ids) - 1)

    # a re-run skips them (never failed, so never retried); the new record shares the phone
    again = _campaign(creds, ledger, "spring")
    assert (again.sent, again.skipped_already_sent, again.skipped_opted_out) == (0, 24, 2)
    assert sorted(again.opted_out) == sorted([stopper, welcome.item_id])

    start = handle_reply(
        event=_event(stopper, "START", 3), ledger_storage=ledger, credentials=creds
    )
    assert [a.kind for a in start.actions] == ["opt_in", "update_field", "send_answer"]
    assert all(a.status == "done" for a in start.actions)
    assert not OptOutList(ledger).is_opted_out(Identity(stopper))
    back = _campaign(creds, ledger, "spring")  # the entry held the phone too: both are back
    assert (back.sent, back.skipped_opted_out) == (2, 0)
    assert _received(sb)[stopper] == 3  # unsubscribe confirmation, START confirmation, campaign


def test_a_transactional_campaign_reaches_opted_out_contacts_and_counts_them(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger: str
) -> None:
    ids = sb.contact_ids()
    OptOutList(ledger).add(Identity(ids[1]), reason="STOP", source="test")
    record = sb.runtime.state.items["clients"][ids[2]]
    OptOutList(ledger).add(Identity.of(phone=record["phone"]), reason="imported", source="csv")
    summary = _campaign(creds, ledger, "order-updates", transactional=True)
    assert (summary.sent, summary.sent_transactional, summary.skipped_opted_out) == (
        len(ids),
        2,
        0,
    )
    marketing = _campaign(creds, ledger, "newsletter")
    assert (marketing.sent, marketing.skipped_opted_out) == (len(ids) - 2, 2)
    assert sorted(marketing.opted_out) == sorted(ids[1:3])  # the phone-only entry too


def test_a_frequency_cap_defers_contacts_and_a_later_run_sends_them(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger: str
) -> None:
    ids = sb.contact_ids()
    cap = {"messages": 1, "hours": 24}
    first = _campaign(creds, ledger, "week-1", audience=Audience(contact_ids=ids[:10]))
    assert first.sent == 10
    second = _campaign(creds, ledger, "week-2", frequency_cap=cap)
    assert (second.sent, second.deferred_frequency_cap) == (len(ids) - 10, 10)
    assert sorted(second.capped) == sorted(ids[:10])
    from autotalk_prefect.flows.outreach.report import headline

    assert "10 deferred: frequency cap" in headline(second)
    # the window has passed (the earlier claims are made 25 hours old): a later run sends them
    from sqlalchemy import text

    from autotalk_prefect.ledger.database import engine_for

    with engine_for(ledger).begin() as conn:
        conn.execute(text("UPDATE autotalk_ledger SET claimed_at = claimed_at - 90000"))
    later = _campaign(creds, ledger, "week-2", frequency_cap=cap)
    assert (later.sent, later.skipped_already_sent, later.deferred_frequency_cap) == (
        10,
        len(ids) - 10,
        0,
    )
    received = _received(sb)
    assert [received[c] for c in ids] == [2] * 10 + [1] * (len(ids) - 10)  # week-1 and week-2


# Two shapes through whole campaigns, one per outcome (a refusal fails the contact, a refusal
# with an id is unknown); every shape the sandbox speaks is read in tests/test_client_sandbox.py.
REFUSALS = {shape: EVERY_REFUSAL[shape] for shape in ("status_rejected", "error_with_id")}


def test_each_refusal_inside_a_200_fails_the_contacts_with_the_servers_message(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger: str
) -> None:
    import io

    from autotalk_prefect.ledger.report import write_export
    from autotalk_prefect.ledger.store import ClaimLedger

    ids = sb.contact_ids()[:3]
    for shape, (state, message) in REFUSALS.items():
        sb.set_faults(refusal_rate=1.0, refusal_body=shape, path_pattern="send_message")
        summary = _campaign(creds, ledger, f"refused-{shape}", audience=Audience(contact_ids=ids))
        assert summary.sent == 0, shape
        listed = summary.failures if state == "failed" else summary.unknowns
        assert (summary.failed if state == "failed" else summary.unknown) == 3, shape
        assert all(message in p.reason for p in listed), (shape, listed)
        out = io.StringIO()
        write_export(ClaimLedger(f"refused-{shape}", ledger), "csv", out)
        rows = out.getvalue().splitlines()[1:]
        assert len(rows) == 3 and all(f",{state}," in r and message in r for r in rows), rows
    assert sb.sent_messages() == []  # none went out
    sb.clear_faults()
    retried = _campaign(
        creds, ledger, "refused-status_rejected", audience=Audience(contact_ids=ids)
    )
    assert retried.sent == 3  # failed is retried by the next run


def _ledger_dump(ledger: str) -> list[tuple[object, ...]]:
    from sqlalchemy import text

    from autotalk_prefect.ledger.database import engine_for

    with engine_for(ledger).connect() as conn:
        rows = conn.execute(text("SELECT * FROM autotalk_ledger ORDER BY campaign, key")).all()
        optouts = conn.execute(text("SELECT * FROM autotalk_optouts ORDER BY kind, value")).all()
    return [tuple(r) for r in rows] + [tuple(r) for r in optouts]


def test_a_dry_run_counts_every_outcome_and_changes_nothing(
    sb: SandboxHandle,
    creds: AutoTalkCredentials,
    ledger: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from autotalk_prefect.cli import app
    from autotalk_prefect.flows.outreach.preview import CampaignPreview
    from autotalk_prefect.ledger.store import Claim, ClaimLedger

    ids = sb.contact_ids()
    _campaign(creds, ledger, "promo", audience=Audience(contact_ids=ids[:3]))  # already sent
    _campaign(creds, ledger, "other", audience=Audience(contact_ids=ids[3:5]))  # cap reached
    ClaimLedger("promo", ledger).claim([Claim(ids[5], "x")], "another-run")  # held elsewhere
    OptOutList(ledger).add(Identity(ids[6]), reason="STOP", source="test")
    before_sent, before_ledger = len(sb.sent_messages()), _ledger_dump(ledger)

    preview = _campaign(
        creds, ledger, "promo", dry_run=True, frequency_cap={"messages": 1, "hours": 24}
    )
    assert isinstance(preview, CampaignPreview)
    assert (preview.audience, preview.already_sent, preview.claimed_by_another_run) == (25, 3, 1)
    assert (preview.opted_out, preview.frequency_cap, preview.would_send) == (1, 2, 18)
    names = {c: sb.runtime.state.items["clients"][c]["name"] for c in ids}
    assert len(preview.samples) == 5
    assert all(s.message == f"Spring sale, {names[s.contact_id]}!" for s in preview.samples)
    assert len(sb.sent_messages()) == before_sent and _ledger_dump(ledger) == before_ledger

    # the same from the terminal
    monkeypatch.setenv("AUTOTALK_API_KEY", str(sb.api_key))
    monkeypatch.setenv("AUTOTALK_BASE_URL", sb.base_url)
    result = CliRunner().invoke(
        app,
        [
            "campaign",
            "preview",
            "promo",
            "--template",
            "Hi {{ name }}",
            "--ledger",
            ledger,
            "--frequency-cap",
            "1/24",
            "--samples",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "18 of 25 would be sent now, 1 opted out, 2 capped" in result.output
    assert (
        result.output.count(": Hi ") == 2
        and "nothing was claimed, written or sent" in result.output
    )
    assert len(sb.sent_messages()) == before_sent and _ledger_dump(ledger) == before_ledger


@pytest.mark.parametrize("ended", ["Crashed", "Cancelled"])
def test_claims_of_a_killed_flow_run_are_reconciled_at_once_not_after_the_lease(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger: str, ended: str
) -> None:
    import prefect.states
    from prefect import flow
    from prefect.client.orchestration import get_client

    from autotalk_prefect.ledger.store import Claim, ClaimLedger, LedgerState

    @flow(name="killed-campaign")
    def killed() -> None:
        """Stands for a campaign run that was killed while its claims were pending."""

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(killed, state=getattr(prefect.states, ended)())
        alive = client.create_flow_run(killed, state=prefect.states.Running())
    ids = sb.contact_ids()
    text = "Spring sale, {{ name }}!"
    names = {c: sb.runtime.state.items["clients"][c]["name"] for c in ids}
    store = ClaimLedger("killed", ledger)
    # the killed run claimed three contacts (claims made just now: well inside the lease)
    # and had sent the first before it died; a live run holds a fourth
    for contact in ids[:3]:
        store.claim(
            [Claim(contact, text.replace("{{ name }}", names[contact]))],
            "dead",
            flow_run_id=str(run.id),
        )
    store.claim([Claim(ids[3], "x")], "live", flow_run_id=str(alive.id))
    with creds.get_client() as client:
        client.send_message(ids[0], f"Spring sale, {names[ids[0]]}!")

    summary = _campaign(creds, ledger, "killed", reconcile_unknown=True)
    assert summary.skipped_claimed == 1  # the live run's claim is left alone
    assert summary.sent == len(ids) - 4
    assert summary.reconciliation is not None and summary.reconciliation.found_sent == 1
    assert store.status(ids[0]).state is LedgerState.SENT  # type: ignore[union-attr]
    for contact in ids[1:3]:  # unknown at once (not "claimed" for 15 minutes), never re-sent
        status = store.status(contact)
        assert status is not None and status.state is LedgerState.UNKNOWN
        assert f"flow run {run.id} is {ended.lower()}" in (status.reason or "")
    assert summary.unknown == 2 and {p.contact_id for p in summary.unknowns} == set(ids[1:3])
    assert store.status(ids[3]).state is LedgerState.PENDING  # type: ignore[union-attr]
    received = _received(sb)
    assert received[ids[0]] == 1 and received[ids[1]] == 0 and received[ids[3]] == 0


def _pg_ledger() -> Any:
    """A fresh PostgreSQL database for one test (dropped after), or a skip."""
    import contextlib
    import os
    import uuid

    import sqlalchemy as sa

    dsn = os.environ.get("AUTOTALK_TEST_POSTGRES_DSN")
    if not dsn:
        pytest.skip("AUTOTALK_TEST_POSTGRES_DSN not set")

    @contextlib.contextmanager
    def database() -> Any:
        name = f"consent_flow_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://", 1))
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        url = dsn.rsplit("/", 1)[0] + f"/{name}"
        try:
            yield url
        finally:
            from autotalk_prefect.ledger.database import engine_for

            engine_for(url).dispose()
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.dispose()

    return database()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_two_campaigns_at_the_same_time_with_a_1_per_24h_cap_send_nobody_two(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger: str, dialect: str
) -> None:
    import contextlib
    import threading

    ids = sb.contact_ids()
    sb.set_faults(latency_ms=5, path_pattern="send_message")  # the runs overlap
    with contextlib.ExitStack() as stack:
        url = ledger if dialect == "sqlite" else stack.enter_context(_pg_ledger())
        barrier = threading.Barrier(2)
        summaries: dict[str, Any] = {}
        errors: list[BaseException] = []

        def run(campaign: str) -> None:
            try:
                barrier.wait()
                summaries[campaign] = _campaign(
                    creds,
                    url,
                    campaign,
                    frequency_cap={"messages": 1, "hours": 24},
                    chunk_size=5,
                    max_concurrency=4,
                )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in ("flash-sale", "newsletter")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
    received = _received(sb)
    assert sorted(received) == sorted(ids) and set(received.values()) == {1}  # nobody got two
    a, b = summaries["flash-sale"], summaries["newsletter"]
    assert a.sent + b.sent == len(ids)
    assert a.deferred_frequency_cap + b.deferred_frequency_cap == len(ids)
    assert set(a.capped).isdisjoint(b.capped)
