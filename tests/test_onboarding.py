"""flows/onboarding.py:onboard_contact end to end: the sandbox, the Prefect harness, the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client

import autotalk_prefect.flows.onboarding.flow as onboarding_flow
from autotalk_prefect.api.errors import OutcomeUnknownError
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.onboarding.engine import STEP_LOG, item_id_for_key
from autotalk_prefect.flows.onboarding.flow import onboard_contact
from autotalk_prefect.flows.templating import TemplateInvalidError
from autotalk_prefect.ledger.once import OnceLedger
from autotalk_prefect.sandbox import FaultConfig, SandboxHandle

TEMPLATE = "Hi {{ name }}, welcome aboard! Your id is {{ _id }}."
SECRET_PHONE = "+15550001234"


@pytest.fixture
def creds(autotalk_sandbox: SandboxHandle) -> AutoTalkCredentials:
    return AutoTalkCredentials(api_key=autotalk_sandbox.api_key, base_url=autotalk_sandbox.base_url)


@pytest.fixture
def ledger_dir(tmp_path: Path) -> str:
    return str(tmp_path / "ledger")


def _client(name: str = "Ada Lovelace", **extra: Any) -> dict[str, Any]:
    return {"name": name, "phone": SECRET_PHONE, "email": "ada@example.com", **extra}


def _items(sb: SandboxHandle, type_name: str) -> dict[str, dict[str, Any]]:
    return dict(sb.runtime.state.items[type_name])


def _run(creds: AutoTalkCredentials, ledger: str, **kwargs: Any) -> Any:
    params: dict[str, Any] = {
        "dynadata_type": "clients",
        "record": _client(),
        "message_template": TEMPLATE,
        "ledger_storage": ledger,
        "credentials": creds,
    }
    params.update(kwargs)
    return onboard_contact(**params)


@pytest.mark.floor
def test_new_client_is_created_messaged_and_logged(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    before = len(_items(autotalk_sandbox, "clients"))
    result = _run(creds, ledger_dir)

    assert result.created and result.sent and result.logged
    assert (result.send_state, result.log_state) == ("sent", "logged")
    items = _items(autotalk_sandbox, "clients")
    assert len(items) == before + 1
    assert items[result.item_id]["name"] == "Ada Lovelace"
    assert result.item_id == item_id_for_key(result.idempotency_key)
    assert result.contact_id == result.item_id  # a new client is its own contact

    sent = autotalk_sandbox.sent_messages()
    assert len(sent) == 1
    assert sent[0]["_id"] == result.message_id
    assert sent[0]["contactId"] == result.item_id
    assert sent[0]["message"] == f"Hi Ada Lovelace, welcome aboard! Your id is {result.item_id}."
    assert sent[0]["conversationId"] == result.conversation_id

    # the exchange is logged as a system note in the conversation the message landed in
    conversation = autotalk_sandbox.runtime.state.conversations[result.conversation_id]
    assert conversation["contactId"] == result.item_id
    with creds.get_client() as client:
        messages = list(client.list_messages(result.conversation_id))
    notes = [m for m in messages if m.role == "system"]
    assert len(notes) == 1
    assert result.message_id in notes[0].message and result.item_id in notes[0].message


def test_rerun_with_same_inputs_changes_nothing(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    first = _run(creds, ledger_dir)
    items_after_first = _items(autotalk_sandbox, "clients")
    with creds.get_client() as client:
        messages_after_first = len(list(client.list_messages(first.conversation_id)))

    second = _run(creds, ledger_dir)

    assert _items(autotalk_sandbox, "clients") == items_after_first
    assert len(autotalk_sandbox.sent_messages()) == 1
    with creds.get_client() as client:
        assert len(list(client.list_messages(first.conversation_id))) == messages_after_first
    assert not second.created and not second.sent and not second.logged
    assert (second.send_state, second.log_state) == ("already_sent", "already_logged")
    assert (second.item_id, second.message_id, second.conversation_id) == (
        first.item_id,
        first.message_id,
        first.conversation_id,
    )


def test_different_inputs_or_key_onboard_separately(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    a = _run(creds, ledger_dir)
    b = _run(creds, ledger_dir, record=_client("Grace Hopper"))
    c = _run(creds, ledger_dir, idempotency_key="crm-lead-42")
    again = _run(creds, ledger_dir, idempotency_key="crm-lead-42")
    assert len({a.item_id, b.item_id, c.item_id}) == 3
    assert c.idempotency_key == "crm-lead-42" and c.item_id == item_id_for_key("crm-lead-42")
    assert again.item_id == c.item_id and not again.sent
    assert len(autotalk_sandbox.sent_messages()) == 3


def test_invalid_record_is_refused_naming_every_bad_field_and_creates_nothing(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    """A refusal is the designed outcome: a completed run whose result says why."""
    before = _items(autotalk_sandbox, "clients")
    bad = {"name": "", "phone": "12345", "status": "vip", "shoeSize": 44}
    result = _run(creds, ledger_dir, record=bad)
    assert result.refused and not result.created and not result.sent
    assert result.send_state == "refused"
    fields = {problem.split(":")[0] for problem in result.problems}
    assert fields >= {"name", "phone", "status", "shoeSize"}
    assert "refused by validation" in result.headline
    assert _items(autotalk_sandbox, "clients") == before
    assert autotalk_sandbox.sent_messages() == []


def test_template_missing_field_fails_before_anything_is_created(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    before = _items(autotalk_sandbox, "clients")
    with pytest.raises(ValueError, match="nickname"):
        _run(creds, ledger_dir, message_template="Hi {{ nickname }}!")
    with pytest.raises(TemplateInvalidError, match="line 1"):
        _run(creds, ledger_dir, message_template="Hi {{ name ")
    assert _items(autotalk_sandbox, "clients") == before
    assert autotalk_sandbox.sent_messages() == []


def test_order_messages_the_client_named_by_contact_field(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    client_id = autotalk_sandbox.contact_ids()[0]
    order = {"clientId": client_id, "items": [{"sku": "A1", "quantity": 2, "unitPrice": 9.5}]}
    result = _run(
        creds,
        ledger_dir,
        dynadata_type="orders",
        record=order,
        message_template="Thanks! Order {{ _id }}: {{ items | length }} line(s).",
        contact_field="clientId",
    )
    assert result.contact_id == client_id and result.created and result.sent
    assert result.item_id in _items(autotalk_sandbox, "orders")
    (sent,) = autotalk_sandbox.sent_messages()
    assert sent["contactId"] == client_id
    assert sent["message"] == f"Thanks! Order {result.item_id}: 1 line(s)."

    with pytest.raises(ValueError, match="contactId"):  # the default field is absent
        _run(creds, ledger_dir, dynadata_type="orders", record=order, message_template="Hi")
    assert len(autotalk_sandbox.sent_messages()) == 1


def test_lost_send_answer_is_not_resent_unless_asked(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    autotalk_sandbox.set_faults(
        FaultConfig(drop_after_processing=1.0, methods=("POST",), path_pattern="send_message")
    )
    with pytest.raises(OutcomeUnknownError):
        _run(creds, ledger_dir)
    autotalk_sandbox.clear_faults()
    assert len(autotalk_sandbox.sent_messages()) == 1  # it did go out

    rerun = _run(creds, ledger_dir)
    assert rerun.send_state == "unknown" and not rerun.sent and rerun.message_id is None
    assert rerun.log_state == "skipped" and not rerun.created
    assert len(autotalk_sandbox.sent_messages()) == 1

    forced = _run(creds, ledger_dir, resend_unknown=True)
    assert forced.sent and forced.send_state == "sent"
    assert len(autotalk_sandbox.sent_messages()) == 2
    after = _run(creds, ledger_dir)
    assert after.send_state == "already_sent" and after.message_id == forced.message_id
    assert len(autotalk_sandbox.sent_messages()) == 2


def test_crash_between_send_and_confirmation_is_reported_not_resent(
    autotalk_sandbox: SandboxHandle,
    creds: AutoTalkCredentials,
    ledger_dir: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_send = onboarding_flow.send_message

    def send_then_die(*args: Any, **kwargs: Any) -> Any:
        real_send(*args, **kwargs)
        raise SystemExit("worker killed right after the send")

    monkeypatch.setattr(onboarding_flow, "send_message", send_then_die)
    with pytest.raises(BaseException, match="worker killed"):
        _run(creds, ledger_dir)
    monkeypatch.undo()
    assert len(autotalk_sandbox.sent_messages()) == 1

    rerun = _run(creds, ledger_dir)
    assert rerun.send_state == "unknown" and not rerun.sent and not rerun.created
    assert len(autotalk_sandbox.sent_messages()) == 1


def test_crash_after_send_before_note_logs_on_rerun_without_resending(
    autotalk_sandbox: SandboxHandle,
    creds: AutoTalkCredentials,
    ledger_dir: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_claim = OnceLedger.claim

    def die_before_note(self: OnceLedger, step: str, *args: Any, **kwargs: Any) -> str | None:
        if step == STEP_LOG:
            raise SystemExit("worker killed before the note")
        return real_claim(self, step, *args, **kwargs)

    monkeypatch.setattr(OnceLedger, "claim", die_before_note)
    with pytest.raises(BaseException, match="before the note"):
        _run(creds, ledger_dir)
    monkeypatch.undo()

    rerun = _run(creds, ledger_dir)
    assert rerun.send_state == "already_sent" and rerun.log_state == "logged" and rerun.logged
    (sent,) = autotalk_sandbox.sent_messages()
    assert rerun.message_id == sent["_id"] and rerun.conversation_id == sent["conversationId"]


def test_crash_during_note_is_not_repeated(
    autotalk_sandbox: SandboxHandle,
    creds: AutoTalkCredentials,
    ledger_dir: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def die(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("worker killed during the note")

    monkeypatch.setattr(onboarding_flow, "process_messages", die)
    with pytest.raises(BaseException, match="during the note"):
        _run(creds, ledger_dir)
    monkeypatch.undo()

    rerun = _run(creds, ledger_dir)
    assert (rerun.send_state, rerun.log_state) == ("already_sent", "unknown")
    assert len(autotalk_sandbox.sent_messages()) == 1


async def test_run_shows_one_task_per_step_and_an_artifact_without_customer_data(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    state = onboard_contact(
        dynadata_type="clients",
        record=_client(),
        message_template=TEMPLATE,
        ledger_storage=ledger_dir,
        credentials=creds,
        return_state=True,
    )
    result = await state.result()
    from prefect.client.schemas.filters import (
        ArtifactCollectionFilter,
        ArtifactCollectionFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )

    # filtered on the server: a long session holds more runs and artifacts than one page
    this_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    key = ArtifactCollectionFilterKey(any_=[f"onboarding-{result.item_id}"])
    async with get_client() as prefect:
        names = [r.name for r in await prefect.read_task_runs(flow_run_filter=this_run)]
        artifact = await prefect.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=key)
        )
    for step in ("validate", "create_dynadata_item", "send_message", "process_messages"):
        assert any(step in name for name in names), (step, names)
    (summary,) = artifact
    assert result.message_id in summary.data and result.conversation_id in summary.data
    assert "welcome aboard" not in summary.data and SECRET_PHONE not in summary.data
    assert creds.api_key.get_secret_value() not in summary.data


def test_lost_ledger_falls_back_to_what_autotalk_shows(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, tmp_path: Path
) -> None:
    first = _run(creds, str(tmp_path / "worker-1"))
    # another worker with an empty ledger (ephemeral storage): AutoTalk is the record
    second = _run(creds, str(tmp_path / "worker-2"))
    assert (second.send_state, second.log_state) == ("already_sent", "already_logged")
    assert (second.message_id, second.conversation_id) == (first.message_id, first.conversation_id)
    assert len(autotalk_sandbox.sent_messages()) == 1
    # ... and it was written down, so a third run needs no search
    third = _run(creds, str(tmp_path / "worker-2"))
    assert third.send_state == "already_sent" and len(autotalk_sandbox.sent_messages()) == 1


def test_existing_item_never_messaged_gets_its_message(
    autotalk_sandbox: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    # the crash window between create and send: the item exists, nothing was sent
    item_id = item_id_for_key("crm-7")
    with creds.get_client() as client:
        client.create_dynadata_item("clients", {"_id": item_id, **_client()})
    result = _run(creds, ledger_dir, idempotency_key="crm-7")
    assert result.item_id == item_id and not result.created
    assert result.sent and result.logged
    assert [m["contactId"] for m in autotalk_sandbox.sent_messages()] == [item_id]
