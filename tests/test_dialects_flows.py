"""The package's flows against every sandbox dialect: the same outcome, whatever the wire shape.

tests/test_dialects_client.py shows the client reads and writes the same in each dialect
(docs/sandbox.md); here the prebuilt flows run end to end in each, against the session's
Prefect API: onboarding twice, an outreach campaign run twice, a STOP reply taken from the
real receiver's event (and redelivered), and a warehouse sync. Each flow runs a few times per
dialect with a handful of contacts: the flow's own tests cover the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from prefect.events import Event
from pydantic import SecretStr

from autotalk_prefect.flows import (
    handle_reply,
    onboard_contact,
    outreach_campaign,
    sync_to_warehouse,
)
from autotalk_prefect.flows.outreach.engine import Audience
from autotalk_prefect.ledger.optouts import Identity, OptOutList
from autotalk_prefect.sandbox import SandboxHandle
from autotalk_prefect.serving import serve_in_thread
from autotalk_prefect.webhooks import WebhookSettings, create_webhook_app

SECRET = "whsec-dialects-5e2f"
AUDIENCE = 5


class Recorder:
    """The receiver's emitter, in-process: keeps every event it is given (as Prefect would)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Recorder]]:
    """The real webhook receiver app on loopback, recording the Prefect events it emits.

    One per test: every dialect's reset sandbox numbers its events alike, and a receiver that
    had seen ``evt_...01`` would rightly refuse it as a redelivery (409)."""
    recorder = Recorder()
    settings = WebhookSettings(secret=SecretStr(SECRET), _env_file=None)  # type: ignore[call-arg]
    with serve_in_thread(create_webhook_app(settings, recorder), name="dialect-receiver") as port:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz").status_code == 200
        yield url, recorder


def test_onboarding_twice_creates_and_welcomes_once_in_every_dialect(
    autotalk_sandbox_each_dialect: SandboxHandle, tmp_path: Path
) -> None:
    sandbox = autotalk_sandbox_each_dialect
    clients = sandbox.runtime.state.items["clients"]
    before = set(clients)
    params: dict[str, Any] = {
        "dynadata_type": "clients",
        "record": {"name": "Ada Dialect", "phone": "+15550001234", "email": "ada@example.com"},
        "message_template": "Hi {{ name }}, welcome aboard! Your id is {{ _id }}.",
        "ledger_storage": str(tmp_path / "ledger"),
        "credentials": sandbox.credentials(),
    }

    first = onboard_contact(**params)
    second = onboard_contact(**params)

    assert (first.send_state, first.log_state) == ("sent", "logged"), first
    assert first.created and first.sent and first.logged
    assert set(clients) - before == {first.item_id}  # one item, whatever the id key is called
    assert clients[first.item_id]["name"] == "Ada Dialect"
    (welcome,) = sandbox.sent_messages()
    assert welcome["contactId"] == first.item_id == first.contact_id
    assert welcome["message"] == f"Hi Ada Dialect, welcome aboard! Your id is {first.item_id}."
    assert not second.created and not second.sent and not second.logged
    assert (second.send_state, second.log_state) == ("already_sent", "already_logged")
    assert second.item_id == first.item_id
    assert len(sandbox.sent_messages()) == 1


def test_outreach_run_twice_messages_each_contact_once_in_every_dialect(
    autotalk_sandbox_each_dialect: SandboxHandle, tmp_path: Path
) -> None:
    sandbox = autotalk_sandbox_each_dialect
    contacts = sandbox.contact_ids()[:AUDIENCE]
    params: dict[str, Any] = {
        "campaign_id": "dialects",
        "message_template": "Hello {{ name }}, once.",
        "audience": Audience(contact_ids=contacts),
        "ledger_storage": str(tmp_path / "ledger"),
        "credentials": sandbox.credentials(),
    }

    first = outreach_campaign(**params)
    after_first = sandbox.sent_messages()
    second = outreach_campaign(**params)

    assert (first.total, first.sent, first.failed, first.unknown) == (AUDIENCE, AUDIENCE, 0, 0), (
        first.failures,
        first.unknowns,
    )
    assert sorted(m["contactId"] for m in after_first) == sorted(contacts)
    names = {c: sandbox.runtime.state.items["clients"][c]["name"] for c in contacts}
    assert all(m["message"] == f"Hello {names[m['contactId']]}, once." for m in after_first)
    assert (second.sent, second.failed, second.unknown) == (0, 0, 0)
    assert second.skipped_already_sent == AUDIENCE
    assert sandbox.sent_messages() == after_first


def test_stop_reply_through_the_receiver_unsubscribes_once_in_every_dialect(
    autotalk_sandbox_each_dialect: SandboxHandle,
    receiver: tuple[str, Recorder],
    tmp_path: Path,
) -> None:
    sandbox = autotalk_sandbox_each_dialect
    url, recorder = receiver
    sandbox.configure_webhook(url, SECRET, events=["message.received"])
    contact = sandbox.contact_ids()[0]
    sandbox.runtime.state.items["clients"][contact]["status"] = "active"

    try:
        inbound = sandbox.simulate_reply(contact, "STOP")
        assert sandbox.flush_webhooks()
    finally:
        sandbox.clear_webhook()
    (delivery,) = sandbox.webhook_deliveries()
    assert delivery["statusCode"] == 202, delivery
    (event,) = recorder.events
    assert event.event == "autotalk.message.received"
    assert event.payload["message"]["_id"] == inbound["_id"]

    ledger = str(tmp_path / "ledger")
    outcome = handle_reply(
        event=event.payload, ledger_storage=ledger, credentials=sandbox.credentials()
    )
    again = handle_reply(
        event=event.payload, ledger_storage=ledger, credentials=sandbox.credentials()
    )

    assert outcome.rule == "unsubscribe" and not outcome.duplicate
    assert [(a.kind, a.status) for a in outcome.actions] == [
        ("opt_out", "done"),
        ("update_field", "done"),
        ("send_answer", "done"),
    ], outcome.actions
    record = sandbox.runtime.state.items["clients"][contact]
    assert record["status"] == "inactive"
    assert OptOutList(ledger).is_opted_out(Identity.of(contact))  # every later send skips them
    (answer,) = sandbox.sent_messages()
    assert answer["contactId"] == contact
    assert answer["message"].startswith(f"You're unsubscribed, {record['name']}.")
    assert again.duplicate and sandbox.sent_messages() == [answer]

    # AutoTalk redelivering the same webhook: the receiver refuses it, no second event
    redelivered = httpx.post(
        delivery["url"], json=delivery["body"], headers={"x-autotalk-secret": SECRET}
    )
    assert redelivered.status_code == 409 and recorder.events == [event]


def test_sync_loads_every_record_once_in_every_dialect(
    autotalk_sandbox_each_dialect: SandboxHandle, tmp_path: Path
) -> None:
    sandbox = autotalk_sandbox_each_dialect
    sandbox.seed_items("orders", 45)  # several pages of every page style
    with sandbox.credentials().get_client() as client:
        for n, contact in enumerate(sandbox.contact_ids()[:3]):
            client.send_message(contact, f"hello {n}")
    state = sandbox.runtime.state
    expected = {
        "clients": len(state.items["clients"]),
        "orders": len(state.items["orders"]),
        "conversations": len(state.conversations),
        "messages": sum(len(m) for m in state.messages.values()),
        "channels": len(state.list_channels()),
        "assistants": len(state.list_assistants()),
    }
    assert all(expected.values()), expected
    database = str(tmp_path / "wh" / "warehouse.duckdb")

    summary = sync_to_warehouse(
        destination_credentials=database,
        pipelines_dir=str(tmp_path / "pipelines"),
        types=["clients", "orders"],
        credentials=sandbox.credentials(),
    )

    assert {table: summary.rows(table) for table in expected} == expected
    with duckdb.connect(database, read_only=True) as con:
        for table, count in expected.items():
            loaded = con.sql(f"select count(*), count(distinct _id) from autotalk.{table}")
            assert loaded.fetchall() == [(count, count)], table
