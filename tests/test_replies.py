"""flows/replies.py:handle_reply against the sandbox: real webhook bodies, every action, redelivery."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import autotalk_prefect.flows.replies.flow as replies_flow
from autotalk_prefect.api.errors import InvalidRequestError
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.replies.engine import (
    DEFAULT_RULES,
    ReplyRule,
    RunFunction,
    SendAnswer,
    UnknownContactError,
    UpdateField,
    match_rule,
    parse_event,
)
from autotalk_prefect.flows.replies.flow import handle_reply
from autotalk_prefect.ledger.once import ledger_name
from autotalk_prefect.sandbox import SandboxHandle

CUSTOMER_TEXT_MARK = "PRIVATE-7731"


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    """A loopback webhook receiver that accepts everything (the sandbox records each body)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def sb(autotalk_sandbox: SandboxHandle, receiver: str) -> SandboxHandle:
    autotalk_sandbox.configure_webhook(receiver, "s3cret", events=["message.received"])
    return autotalk_sandbox


@pytest.fixture
def creds(sb: SandboxHandle) -> AutoTalkCredentials:
    return AutoTalkCredentials(api_key=sb.api_key, base_url=sb.base_url)


@pytest.fixture
def ledger_dir(tmp_path: Path) -> str:
    return str(tmp_path / "ledger")


def reply(sb: SandboxHandle, text: str, contact: int = 0) -> dict[str, Any]:
    """The real ``message.received`` webhook body the sandbox sends for an inbound message."""
    contact_id = sb.contact_ids()[contact]
    channel = sb.runtime.state.channels[0]["_id"]
    message = sb.simulate_reply(contact_id, text, channel_id=channel)
    assert sb.flush_webhooks()
    (body,) = [
        d["body"] for d in sb.webhook_deliveries() if d["body"]["message"]["_id"] == message["_id"]
    ]
    return body


def record(sb: SandboxHandle, contact_id: str) -> dict[str, Any]:
    return dict(sb.runtime.state.items["clients"][contact_id])


def run(creds: AutoTalkCredentials, ledger: str, event: Any, **kwargs: Any) -> Any:
    return handle_reply(event=event, ledger_storage=ledger, credentials=creds, **kwargs)


# ---- rule matching (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("STOP", "unsubscribe"),
        ("please stop.", "unsubscribe"),
        ("Unsubscribe me", "unsubscribe"),
        ("I want to OPT   OUT now", "unsubscribe"),
        ("stopwatch broken", "default"),  # whole words only
        ("Yes!", "confirm"),
        ("yesterday was fine", "default"),
        ("help?", "help"),
        ("", "default"),
    ],
)
def test_default_rules_match_whole_words_case_insensitively(text: str, rule: str) -> None:
    matched, _ = match_rule(DEFAULT_RULES, text)
    assert matched is not None and matched.name == rule


def test_all_match_first_match_wins_and_no_default() -> None:
    rules = [
        ReplyRule(name="both", keywords=["refund", "order"], match="all"),
        ReplyRule(name="any-order", keywords=["order"]),
    ]
    assert match_rule(rules, "Refund my ORDER")[0].name == "both"  # type: ignore[union-attr]
    assert match_rule(rules, "where is my order")[0].name == "any-order"  # type: ignore[union-attr]
    assert match_rule(rules, "refund please") == (None, [])


def test_rules_parse_from_plain_data_with_clear_errors() -> None:
    rule = ReplyRule.model_validate(
        {
            "name": "vip",
            "keywords": ["vip"],
            "action": {"kind": "run_function", "function": "addTag"},
        }
    )
    assert rule.actions == [RunFunction(function="addTag")]
    with pytest.raises(ValidationError, match="kind"):
        ReplyRule.model_validate({"name": "x", "actions": [{"kind": "explode"}]})
    with pytest.raises(ValidationError, match="blank"):
        ReplyRule(name="x", keywords=["  "])


def test_bad_event_payload_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"client"):
        parse_event({"id": "evt_1", "message": {"text": "hi"}})
    with pytest.raises(ValueError, match=r"event_id=\"\{\{ event\.id \| string \}\}\""):
        parse_event({"client": {"_id": "c1"}, "message": {"text": "hi"}})
    with pytest.raises(ValueError, match=r"no '_id', 'phone' or 'email'.*client\.phone"):
        parse_event({"client": {"name": "Ana", "phone": " "}, "message": {"text": "hi"}}, "e1")
    with pytest.raises(ValueError, match="not JSON"):
        parse_event("{nope")


def test_ledger_names_stay_readable_and_safe_for_any_contact_id() -> None:
    assert ledger_name("replies", "clients", "45f884347ff8210000000006") == (
        "replies-clients-45f884347ff8210000000006"
    )
    odd = ledger_name("replies", "clients", "../../etc/passwd")
    assert odd.startswith("replies-") and "/" not in odd and ".." not in odd
    assert odd != ledger_name("replies", "clients", "../../etc/shadow")


# ---- the flow against the sandbox ---------------------------------------------------------


@pytest.mark.floor
def test_stop_unsubscribes_and_confirms_in_the_same_conversation(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    body = reply(sb, f"STOP please {CUSTOMER_TEXT_MARK}")
    contact_id = body["client"]["_id"]
    outcome = run(creds, ledger_dir, body)

    assert outcome.rule == "unsubscribe" and outcome.matched_keywords == ["stop"]
    assert not outcome.duplicate
    assert [(a.kind, a.target, a.status) for a in outcome.actions] == [
        ("opt_out", "opt-out list", "done"),
        ("update_field", "status", "done"),
        ("send_answer", "answer", "done"),
    ]
    assert record(sb, contact_id)["status"] == "inactive"
    (answer,) = sb.sent_messages()
    assert answer["_id"] == outcome.actions[2].message_id
    assert answer["contactId"] == contact_id
    assert answer["conversationId"] == body["message"]["conversationId"]
    assert answer["channelId"] == body["trigger"]["channel"]
    assert answer["message"].startswith(f"You're unsubscribed, {record(sb, contact_id)['name']}.")


def test_yes_confirms_and_help_only_answers(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    contact_id = sb.contact_ids()[1]
    sb.runtime.state.items["clients"][contact_id]["status"] = "lead"
    yes = run(creds, ledger_dir, reply(sb, "yes, confirmed", contact=1))
    assert yes.rule == "confirm" and record(sb, contact_id)["status"] == "active"
    assert len(yes.answer_message_ids) == 1

    before = record(sb, contact_id)
    help_ = run(creds, ledger_dir, reply(sb, "Help", contact=1))
    assert help_.rule == "help" and [a.kind for a in help_.actions] == ["send_answer"]
    assert record(sb, contact_id) == before
    assert [
        m["_id"] for m in sb.sent_messages()
    ] == yes.answer_message_ids + help_.answer_message_ids


def test_run_function_rule_and_default_rule(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    rules = [
        {
            "name": "vip",
            "keywords": ["vip"],
            "action": {"kind": "run_function", "function": "addTag", "args": {"tag": "vip"}},
        },
        {"name": "fallback", "actions": []},
    ]
    contact_id = sb.contact_ids()[2]
    outcome = run(creds, ledger_dir, reply(sb, "I am a VIP", contact=2), rules=rules)
    assert outcome.rule == "vip" and outcome.actions[0].status == "done"
    assert "vip" in record(sb, contact_id)["tags"]

    before = record(sb, contact_id)
    other = run(creds, ledger_dir, reply(sb, "just chatting", contact=2), rules=rules)
    assert other.rule == "fallback" and other.actions == []
    assert record(sb, contact_id) == before and sb.sent_messages() == []


def test_redelivered_event_does_nothing_twice(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    body = reply(sb, "help")
    first = run(creds, ledger_dir, body)
    again = run(creds, ledger_dir, json.dumps(body))  # the payload may arrive as JSON text too
    assert not first.duplicate and again.duplicate
    assert again.actions == [] and again.rule is None
    assert len(sb.sent_messages()) == 1

    second_message = run(creds, ledger_dir, reply(sb, "help"))  # a new event is handled
    assert not second_message.duplicate and len(sb.sent_messages()) == 2


def test_crash_after_answer_is_not_resent_on_redelivery(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = reply(sb, "stop")
    real_send = replies_flow.send_message

    def send_then_die(*args: Any, **kwargs: Any) -> Any:
        real_send(*args, **kwargs)
        raise SystemExit("worker killed right after the answer")

    monkeypatch.setattr(replies_flow, "send_message", send_then_die)
    with pytest.raises(BaseException, match="worker killed"):
        run(creds, ledger_dir, body)
    monkeypatch.undo()
    assert len(sb.sent_messages()) == 1

    redelivered = run(creds, ledger_dir, body)
    assert [(a.target, a.status) for a in redelivered.actions] == [
        ("opt-out list", "already_done"),
        ("status", "already_done"),
        ("answer", "unknown"),
    ]
    assert len(sb.sent_messages()) == 1

    forced = run(creds, ledger_dir, body, resend_unknown=True)
    assert forced.actions[2].status == "done" and len(sb.sent_messages()) == 2
    assert run(creds, ledger_dir, body).duplicate
    assert len(sb.sent_messages()) == 2


def test_failed_action_fails_the_run_and_is_retried_on_redelivery(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    rules = [
        ReplyRule(
            name="bad",
            keywords=["hello"],
            actions=[UpdateField(field="status", value="unsubscribed"), SendAnswer(template="hi")],
        )
    ]
    body = reply(sb, "hello")
    with pytest.raises(InvalidRequestError, match="status"):
        run(creds, ledger_dir, body, rules=rules)
    assert sb.sent_messages() == []  # the answer after the failed update never went out

    fixed = [
        rules[0].model_copy(
            update={
                "actions": [UpdateField(field="status", value="active"), SendAnswer(template="hi")]
            }
        )
    ]
    outcome = run(creds, ledger_dir, body, rules=fixed)
    assert [a.status for a in outcome.actions] == ["done", "done"]
    assert len(sb.sent_messages()) == 1


def test_unknown_contact_fails_clearly_and_does_nothing(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    body = reply(sb, "STOP")
    body = {**body, "id": "evt_unknown_contact", "client": {"_id": "0" * 24, "name": "Ghost"}}
    with pytest.raises(UnknownContactError, match=r"0{24}.*no such item"):
        run(creds, ledger_dir, body)
    assert sb.sent_messages() == []


def placeholder_body(sb: SandboxHandle, text: str, phone: str) -> dict[str, Any]:
    """What a workflow HTTP step built from AutoTalk's documented placeholders sends: no ids."""
    return {
        "client": {"name": "Whoever AutoTalk says", "phone": phone, "email": ""},
        "message": {"text": text},
        "trigger": {"channel": sb.runtime.state.channels[0]["_id"]},
        "event": {"date": "2026-11-25"},
    }


def test_placeholder_only_body_finds_the_contact_by_phone_once_per_event_id(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    contact_id = sb.contact_ids()[3]
    other_id = sb.contact_ids()[4]
    others_before = record(sb, other_id)
    body = placeholder_body(sb, "STOP", record(sb, contact_id)["phone"])

    with pytest.raises(ValueError, match="event_id"):  # no key at all: says what to add
        run(creds, ledger_dir, body)
    assert sb.sent_messages() == []

    outcome = run(creds, ledger_dir, body, event_id="4b7e1c2a-prefect-event")
    assert outcome.contact_id == contact_id and outcome.event_id == "4b7e1c2a-prefect-event"
    assert outcome.rule == "unsubscribe"
    assert [a.status for a in outcome.actions] == ["done", "done", "done"]
    assert record(sb, contact_id)["status"] == "inactive"
    assert record(sb, other_id) == others_before
    (answer,) = sb.sent_messages()
    assert answer["contactId"] == contact_id
    assert answer["channelId"] == body["trigger"]["channel"]

    again = run(creds, ledger_dir, json.dumps(body), event_id="4b7e1c2a-prefect-event")
    assert again.duplicate and again.actions == [] and again.contact_id == contact_id
    assert len(sb.sent_messages()) == 1

    # Email is the fallback when the phone is missing; a new Prefect event is a new reply.
    by_email = {**body, "client": {"email": record(sb, contact_id)["email"], "phone": ""}}
    help_ = run(creds, ledger_dir, {**by_email, "message": {"text": "help"}}, event_id="e2")
    assert help_.contact_id == contact_id and help_.rule == "help"
    # the contact said STOP: no answer but the unsubscribe confirmation reaches them
    assert [a.status for a in help_.actions] == ["skipped"]
    assert len(sb.sent_messages()) == 1


def test_placeholder_body_with_unknown_or_shared_phone_fails_clearly_and_does_nothing(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    before = {i: record(sb, i) for i in sb.contact_ids()}
    body = placeholder_body(sb, f"STOP {CUSTOMER_TEXT_MARK}", "+19990000000")
    with pytest.raises(UnknownContactError) as unknown:
        run(creds, ledger_dir, body, event_id="evt-unknown-phone")
    message = str(unknown.value)
    assert "+19990000000" in message and "\n" not in message
    assert CUSTOMER_TEXT_MARK not in message

    first, second = sb.contact_ids()[5:7]
    shared = record(sb, first)["phone"]
    sb.runtime.state.items["clients"][second]["phone"] = shared
    before[second]["phone"] = shared
    with pytest.raises(UnknownContactError, match=r"2 'clients' items have phone .*ambiguous"):
        run(creds, ledger_dir, placeholder_body(sb, "STOP", shared), event_id="evt-shared")
    assert {i: record(sb, i) for i in sb.contact_ids()} == before
    assert sb.sent_messages() == []


async def test_artifact_and_logs_carry_no_customer_text(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    body = reply(sb, f"help {CUSTOMER_TEXT_MARK}")
    state = handle_reply(
        event=body, ledger_storage=ledger_dir, credentials=creds, return_state=True
    )
    outcome = await state.result()
    async with get_client() as prefect:
        # filtered on the server: a long session holds more artifacts than one unfiltered page
        run_id = state.state_details.flow_run_id
        only_this_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        (summary,) = await prefect.read_artifacts(artifact_filter=only_this_run)
    assert outcome.event_id in summary.data and "help" in summary.data
    for text in (summary.data, caplog.text):
        assert CUSTOMER_TEXT_MARK not in text
        assert creds.api_key.get_secret_value() not in text


def test_answer_template_that_does_not_fit_fails_before_any_action(
    sb: SandboxHandle, creds: AutoTalkCredentials, ledger_dir: str
) -> None:
    rules = [
        ReplyRule(
            name="greet",
            keywords=["hello"],
            actions=[
                UpdateField(field="status", value="blocked"),
                SendAnswer(template="Hi {{ nickname }}"),
            ],
        )
    ]
    body = reply(sb, "hello")
    before = record(sb, body["client"]["_id"])
    with pytest.raises(ValueError, match="nickname"):
        run(creds, ledger_dir, body, rules=rules)
    assert record(sb, body["client"]["_id"]) == before and sb.sent_messages() == []


@pytest.mark.parametrize(
    "entrypoint", ["flows/replies.py:handle_reply", "flows/onboarding.py:onboard_contact"]
)
def test_entrypoints_load_with_real_parameter_types(entrypoint: str) -> None:
    """A deployment's flow-run process validated ``event`` against the *string* annotation
    'InboundReplyEvent' and failed ("not fully defined") while postponed annotations were on;
    the entrypoint files keep their annotations as objects."""
    import inspect

    from prefect.flows import load_flow_from_entrypoint

    loaded = load_flow_from_entrypoint(entrypoint)
    annotations = [p.annotation for p in inspect.signature(loaded.fn).parameters.values()]
    assert annotations and not any(isinstance(a, str) for a in annotations)
    schema = loaded.parameters.model_dump()
    assert schema["required"]  # the UI form can be built
