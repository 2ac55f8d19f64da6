"""The prebuilt flow ``onboard_contact`` (deployment entrypoint ``flows/onboarding.py``): onboard one record.

validate -> create the Dynadata item -> render the message -> send it -> log the exchange in the
conversation. One Prefect task per AutoTalk call, so the run's graph shows each step. Re-running
with the same inputs creates no second item and sends no second message (see
``autotalk_prefect.flows.onboarding.engine`` for how).
"""

# No ``from __future__ import annotations`` here: a deployment's flow-run process must see
# the parameter types as objects (string annotations broke its parameter validation).

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from autotalk_prefect.api.errors import AutoTalkError, ConflictError, NotFoundError
from autotalk_prefect.api.models import DynadataItem, Message
from autotalk_prefect.api.outcomes import find_field, from_exception
from autotalk_prefect.credentials import AutoTalkCredentials, resolve_credentials
from autotalk_prefect.flows.onboarding.engine import (
    STEP_CONVERSATION,
    STEP_LOG,
    STEP_SEND,
    LogState,
    OnboardingResult,
    SendState,
    check_inputs,
    default_idempotency_key,
    differing_fields,
    item_id_for_key,
    resolve_contact_id,
    summary_markdown,
)
from autotalk_prefect.flows.runinfo import (
    emit_completed,
    label_run,
    resource,
    run_parameters,
    slug,
)
from autotalk_prefect.flows.templating import compile_template
from autotalk_prefect.ledger.consent import Consent
from autotalk_prefect.ledger.once import OnceLedger, done, ledger_name, unresolved
from autotalk_prefect.ledger.optouts import Identity
from autotalk_prefect.tasks import (
    create_conversation,
    list_conversations,
    list_messages,
    process_messages,
    send_message,
    validate_dynadata_item,
)


@task(
    name="autotalk-create-or-reuse-item",
    task_run_name="create_dynadata_item-{dynadata_type}",
    retries=0,  # HTTP retries live in the client, which knows a create is not idempotent
    cache_policy=NO_CACHE,
)
def _create_or_reuse(
    dynadata_type: str,
    data: dict[str, Any],
    credentials: AutoTalkCredentials | None,
) -> tuple[DynadataItem, bool, list[str]]:
    """Create the item under its derived ``_id``; a 409 means an earlier run made it.

    One task for both outcomes: an item that exists already is an expected result of a re-run
    (logged at INFO), not a failed task.
    """
    logger = get_run_logger()
    item_id = data["_id"]
    notes: list[str] = []
    with resolve_credentials(credentials).get_client() as client:
        try:
            item = client.create_dynadata_item(dynadata_type, data)
            logger.info("Created %r item %s", dynadata_type, item.id)
            return item, True, notes
        except ConflictError:
            item = client.get_dynadata_item(dynadata_type, item_id)
            logger.info(
                "%r item %s exists already (an earlier run): reusing it", dynadata_type, item_id
            )
            changed = differing_fields(data, item.data)
            if changed:
                notes.append(
                    f"The existing item differs from the record in {', '.join(changed)} (changed "
                    "since it was created, or the idempotency key was reused for another "
                    "record); it was left as it is."
                )
            return item, False, notes
        except AutoTalkError as exc:
            if from_exception(exc, create=True).state == "failed":
                raise
            # Applied (an accepted answer we could not read) or maybe applied: the
            # deterministic id tells us for sure.
            try:
                item = client.get_dynadata_item(dynadata_type, item_id)
            except NotFoundError:
                raise exc from None
            notes.append(
                "The create call's answer was lost or unreadable, but the item exists: it was "
                "created."
            )
            return item, True, notes


def _find_in_autotalk(
    contact_id: str,
    text: str,
    note_for: Callable[[str], str],
    credentials: AutoTalkCredentials | None,
) -> tuple[Message | None, Message | None]:
    """The welcome message (and the onboarding note) if the contact's conversations hold them.

    Used only when the item already existed but the ledger knows no send (a ledger that was
    lost, e.g. local storage on an ephemeral worker): AutoTalk itself is then the record.
    """
    for conversation in list_conversations(credentials=credentials, contactId=contact_id):
        messages = list_messages(conversation.id, credentials=credentials)
        sent = next((m for m in messages if m.direction == "outbound" and m.message == text), None)
        if sent is not None:
            note = note_for(sent.id)
            return sent, next(
                (m for m in messages if m.role == "system" and m.message == note), None
            )
    return None, None


def _note(dynadata_type: str, item_id: str, message_id: str | None) -> str:
    """The system note logged in the conversation (deterministic, so a re-run can find it)."""
    return f"Onboarding: {dynadata_type} item {item_id}; welcome message {message_id} sent."


@dataclass
class _Sent:
    state: SendState
    message_id: str | None = None
    conversation_id: str | None = None


def _recover_from_autotalk(
    steps: OnceLedger,
    dynadata_type: str,
    item_id: str,
    contact: str,
    text: str,
    credentials: AutoTalkCredentials | None,
    notes: list[str],
) -> None:
    """The item existed but the ledger knows no send: write down what AutoTalk shows, if any."""
    found, found_note = _find_in_autotalk(
        contact, text, lambda mid: _note(dynadata_type, item_id, mid), credentials
    )
    if found is None:
        return  # the earlier run stopped between create and send: the send is still to do
    steps.mark(STEP_CONVERSATION, found.conversationId)
    steps.mark(STEP_SEND, found.id)
    if found_note is not None:
        steps.mark(STEP_LOG, found_note.id)
    notes.append(
        "The ledger had no record of this onboarding, but AutoTalk shows the message "
        f"({found.id}) in the contact's conversation: not sent again."
    )


def _send_once(
    steps: OnceLedger,
    contact: str,
    text: str,
    channel_id: str | None,
    resend_unknown: bool,
    credentials: AutoTalkCredentials | None,
    notes: list[str],
    identity: Identity | None = None,
    consent: Consent | None = None,
) -> _Sent:
    """Send the message unless the ledger says it was sent (or may have been), or the consent
    check inside its claim finds the contact on the opt-out list."""
    logger = get_run_logger()
    state = steps.statuses([STEP_SEND, STEP_CONVERSATION])
    send, conv = state.get(STEP_SEND), state.get(STEP_CONVERSATION)
    if done(send) and send:
        logger.info("Message %s was sent by an earlier run: not sending again", send.message_id)
        known_conversation = conv.message_id if done(conv) and conv else None
        return _Sent("already_sent", send.message_id, known_conversation)
    if unresolved(send) and not resend_unknown:
        logger.warning("An earlier send has an unknown outcome: not sending again")
        notes.append(
            "An earlier run started the send but never confirmed it (it crashed or lost the "
            "answer): the contact may have the message. Not sent again; pass "
            "resend_unknown=True to send anyway."
        )
        return _Sent("unknown")
    fields = {"channelId": channel_id} if channel_id else {}
    done_send = steps.run(
        STEP_SEND,
        lambda: send_message(contact, text, credentials=credentials, **fields),
        text=text,
        resend_unknown=resend_unknown,
        identity=identity,
        consent=consent,
    )
    if done_send.blocked is not None:
        logger.info("The contact is on the opt-out list: no welcome sent")
        notes.append(
            "The contact's id, phone or email is on the opt-out list: the welcome was not "
            "sent (pass transactional=True for a message they must get)."
        )
        return _Sent("opted_out")
    if not done_send.claimed:  # another run of the same onboarding holds the send right now
        notes.append("Another run of this onboarding holds the send: not sent again.")
        return _Sent("unknown")
    outcome = done_send.outcome
    assert outcome is not None
    if outcome.state != "sent":
        assert done_send.error is not None
        raise done_send.error
    message = done_send.value
    if message is not None:
        conversation_id: str | None = message.conversationId
    else:  # accepted, but the answer was not a Message we could read
        conversation_id = find_field(outcome.raw, "conversationId") if outcome.raw else None
        notes.append(f"The send was accepted with an unexpected answer: {outcome.reason}")
    if conversation_id is not None:
        steps.mark(STEP_CONVERSATION, conversation_id)
    return _Sent("sent", outcome.ref, conversation_id)


def _log_once(
    steps: OnceLedger,
    sent: _Sent,
    dynadata_type: str,
    item_id: str,
    contact: str,
    channel_id: str | None,
    resend_unknown: bool,
    credentials: AutoTalkCredentials | None,
) -> LogState:
    """Process the onboarding note into the message's conversation, once."""
    if sent.state in ("unknown", "opted_out"):
        return "skipped"
    log = steps.status(STEP_LOG)
    if done(log):
        return "already_logged"
    if unresolved(log) and not resend_unknown:
        return "unknown"
    if sent.conversation_id is None:  # only when the ledger lost the conversation id
        fields = {"channelId": channel_id} if channel_id else {}
        sent.conversation_id = create_conversation(
            credentials=credentials, contactId=contact, **fields
        ).id
    note = _note(dynadata_type, item_id, sent.message_id)
    conversation_id = sent.conversation_id
    logged = steps.run(
        STEP_LOG,
        lambda: process_messages(
            conversation_id, [{"role": "system", "message": note}], credentials=credentials
        ),
        text=note,
        resend_unknown=resend_unknown,
        ref=lambda processed: processed.messages[0].id if processed.messages else None,
    )
    if not logged.claimed:
        return "unknown"
    assert logged.outcome is not None
    if logged.outcome.state != "sent":
        assert logged.error is not None
        raise logged.error
    return "logged"


def _run_name() -> str:
    """``onboard-clients-ana-demo``: the type and the record's name (or its ``_id``)."""
    params = run_parameters()
    record = params.get("record")
    record = record if isinstance(record, dict) else {}
    who = record.get("name") or record.get("_id") or params.get("idempotency_key") or "record"
    return f"onboard-{slug(params.get('dynadata_type', '?'))}-{slug(who).lower()}"


@flow(
    name="autotalk-onboard-contact",
    flow_run_name=_run_name,
    description="Validate a record, create its Dynadata item, welcome its contact, log it; once.",
    log_prints=False,
)
def onboard_contact(
    dynadata_type: str,
    record: dict[str, Any],
    message_template: str,
    contact_id: str | None = None,
    contact_field: str = "contactId",
    channel_id: str | None = None,
    idempotency_key: str | None = None,
    resend_unknown: bool = False,
    ledger_storage: str | None = None,
    credentials: AutoTalkCredentials | None = None,
    transactional: bool = False,
) -> OnboardingResult:
    """Create a Dynadata item, send its contact a templated message, and log it in a conversation.

    Args:
        dynadata_type: The Dynadata type of the record (``clients``, ``orders``, ...).
        record: The new item's fields, checked with the type's validate endpoint first.
        message_template: Jinja2 text rendered over the record (``{{ name }}``; ``{{ _id }}`` is
            the item's id); sandboxed, and a missing field fails before anything is created.
        contact_id: Who gets the message. Default: the new item itself for ``clients``, else
            ``record[contact_field]``.
        contact_field: The record field holding the contact's ``_id`` (for non-``clients`` types).
        channel_id: The channel to send on (default: the contact's conversation's channel).
        idempotency_key: Re-runs with the same key do nothing twice. Default: a hash of the type,
            record, template and contact.
        resend_unknown: Send again when an earlier send's outcome is unknown (a crash or a lost
            answer right after sending): may message the contact twice.
        ledger_storage: The claim ledger guarding the send and the note: a SQLAlchemy URL
            (``postgresql://...`` shared by all workers) or a directory (a SQLite file inside
            it), or ``secret/<name>``: a Prefect Secret block holding the URL. Default:
            ``$AUTOTALK_LEDGER_URL``, else ``.autotalk/ledger``.
        credentials: The AutoTalk credentials block (default: ``AUTOTALK_*`` settings).
        transactional: Send the message even if the contact (its id, or the record's
            ``phone`` / ``email``) is on the opt-out list. Default: an opted-out contact is
            created but not messaged (``send_state="opted_out"``).
    """
    logger = get_run_logger()
    label_run(tags=["onboarding", slug(dynadata_type)])
    check_inputs(dynadata_type, record, idempotency_key)
    for name, value in (("contact_id", contact_id), ("channel_id", channel_id)):
        if value is not None and not value.strip():
            raise ValueError(f"{name} is empty: give an id, or leave it unset")
    template = compile_template(message_template)
    key = idempotency_key or default_idempotency_key(
        dynadata_type, record, message_template, contact_id, contact_field
    )
    derived_id = item_id_for_key(key)
    item_id = record.get("_id") or derived_id
    data = {k: v for k, v in record.items() if k != "_id"}

    record_name = data.get("name") if isinstance(data.get("name"), str) else None
    validation = validate_dynadata_item(dynadata_type, data, credentials=credentials)
    if not validation.valid:
        # A refusal is the designed outcome for a bad record: a result, not a failed run.
        refused = OnboardingResult(
            idempotency_key=key,
            dynadata_type=dynadata_type,
            item_id=item_id,
            contact_id=contact_id or "",
            message_id=None,
            conversation_id=None,
            created=False,
            sent=False,
            send_state="refused",
            logged=False,
            log_state="skipped",
            ledger="",
            name=record_name,
            refused=True,
            problems=[f"{issue.path}: {issue.message}" for issue in validation.errors],
        )
        logger.info("%s. Nothing was created and no message was sent.", refused.headline)
        _publish(refused, derived_id, [])
        return refused
    contact = resolve_contact_id(dynadata_type, data, item_id, contact_id, contact_field)
    text = template.render({**data, "_id": item_id})

    item, created, notes = _create_or_reuse(dynadata_type, {"_id": item_id, **data}, credentials)

    with OnceLedger(ledger_name("onboarding", derived_id), ledger_storage) as steps:
        if not created and steps.status(STEP_SEND) is None:
            _recover_from_autotalk(steps, dynadata_type, item.id, contact, text, credentials, notes)
        identity = Identity.of(contact, data.get("phone"), data.get("email"))
        sent = _send_once(
            steps,
            contact,
            text,
            channel_id,
            resend_unknown,
            credentials,
            notes,
            identity=identity,
            consent=Consent(transactional=transactional),
        )
        log_state = _log_once(
            steps, sent, dynadata_type, item.id, contact, channel_id, resend_unknown, credentials
        )
        if log_state == "unknown":
            notes.append("An earlier run's conversation note has an unknown outcome: not repeated.")
        result = OnboardingResult(
            idempotency_key=key,
            dynadata_type=dynadata_type,
            item_id=item.id,
            contact_id=contact,
            message_id=sent.message_id,
            conversation_id=sent.conversation_id,
            created=created,
            sent=sent.state == "sent",
            send_state=sent.state,
            logged=log_state == "logged",
            log_state=log_state,
            ledger=steps.describe(),
            name=record_name,
        )
    _publish(result, derived_id, notes)
    logger.info(
        "Onboarding of %s item %s: created=%s, send=%s, note=%s",
        dynadata_type,
        item.id,
        created,
        result.send_state,
        result.log_state,
    )
    return result


def _publish(result: OnboardingResult, derived_id: str, notes: list[str]) -> None:
    """The run's artifact (keyed, described with its headline) and its completion event."""
    create_markdown_artifact(
        markdown=summary_markdown(result, notes),
        key=f"onboarding-{derived_id}",
        description=result.headline,
    )
    emit_completed(
        "autotalk.onboarding.completed",
        "onboarding",
        derived_id,
        name=result.name or result.item_id,
        payload={
            "dynadata_type": result.dynadata_type,
            "item_id": result.item_id,
            "contact_id": result.contact_id,
            "created": int(result.created),
            "sent": int(result.sent),
            "refused": int(result.refused),
            "send_state": result.send_state,
            "log_state": result.log_state,
        },
        related=[_contact_resource(result)] if result.contact_id else [],
    )


def _contact_resource(result: OnboardingResult) -> dict[str, str]:
    """The contact the welcome went to (its name is the record's for ``clients``)."""
    name = result.name if result.dynadata_type == "clients" else None
    return resource("contact", result.contact_id, name)
