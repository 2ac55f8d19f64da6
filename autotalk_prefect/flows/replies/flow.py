"""The prebuilt flow ``handle_reply`` (deployment entrypoint ``flows/replies.py``): act on one inbound customer message.

Meant for a deployment triggered by ``autotalk.message.received`` events (emitted by the webhook
receiver) with ``parameters={"event": "{{ event.payload }}", "event_id": "{{ event.id | string }}"}``
(a Prefect server older than 3.6 needs the payload spelled as in ``deployments/prefect.yaml``).
Four named steps: find the contact (``client._id``, else by phone, then email) and its record,
decide (the first matching rule of ``autotalk_prefect.flows.replies.engine``, every answer
rendered), act (each action once, as a Prefect task), publish (an artifact and an event). A redelivered event (same id) changes nothing: each action and the event itself
are recorded in the ledger, and an action already done is never repeated.
"""

# No ``from __future__ import annotations`` here: a deployment's flow-run process must see
# the parameter types as objects (string annotations broke its parameter validation).

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from autotalk_prefect.api.errors import AutoTalkError, NotFoundError
from autotalk_prefect.api.models import DynadataItem, Message
from autotalk_prefect.api.outcomes import SENT
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.common import unknown_type_error
from autotalk_prefect.flows.replies.engine import (
    DEFAULT_RULES,
    ActionOutcome,
    AnyAction,
    InboundReplyEvent,
    OptIn,
    OptOut,
    ReplyOutcome,
    ReplyRule,
    RunFunction,
    SendAnswer,
    UnknownContactError,
    UpdateField,
    describe_action,
    match_rule,
    parse_event,
    reply_headline,
    summary_markdown,
)
from autotalk_prefect.flows.runinfo import (
    artifact_key,
    emit_completed,
    label_run,
    resource,
    run_parameters,
    slug,
)
from autotalk_prefect.flows.templating import compile_template
from autotalk_prefect.ledger.consent import Consent
from autotalk_prefect.ledger.once import OnceLedger, done, ledger_name, unresolved
from autotalk_prefect.ledger.optout_tasks import opt_in, opt_out
from autotalk_prefect.ledger.optouts import Identity
from autotalk_prefect.ledger.store import ContactStatus
from autotalk_prefect.tasks import (
    execute_dynadata_item_function,
    get_dynadata_item,
    list_dynadata_items,
    list_dynadata_types,
    send_message,
    update_dynadata_item,
)


@dataclass(frozen=True)
class _Who:
    """The contact an action is about: its ids for the opt-out list, and where it lives."""

    identity: Identity
    event_key: str
    keywords: tuple[str, ...]
    ledger_storage: str | None


def _perform(
    action: AnyAction,
    dynadata_type: str,
    contact: DynadataItem,
    event: InboundReplyEvent,
    answer: str | None,
    credentials: AutoTalkCredentials | None,
    who: _Who,
) -> Message | None:
    """Run one action with its task; returns the answer for ``send_answer``."""
    if isinstance(action, OptOut):
        said = f" ({', '.join(who.keywords)})" if who.keywords else ""
        i = who.identity
        opt_out(
            contact_id=i.contact_id,
            phone=i.phone,
            email=i.email,
            reason=f"{action.reason}{said}",
            source=f"handle_reply event {who.event_key}",
            ledger_storage=who.ledger_storage,
        )
        return None
    if isinstance(action, OptIn):
        i = who.identity
        opt_in(
            contact_id=i.contact_id,
            phone=i.phone,
            email=i.email,
            ledger_storage=who.ledger_storage,
        )
        return None
    if isinstance(action, UpdateField):
        update_dynadata_item(
            dynadata_type, contact.id, {action.field: action.value}, credentials=credentials
        )
        return None
    if isinstance(action, RunFunction):
        execute_dynadata_item_function(
            dynadata_type, contact.id, action.function, action.args, credentials=credentials
        )
        return None
    assert answer is not None
    fields = {"conversationId": event.conversation_id, "channelId": event.channel_id}
    fields = {k: v for k, v in fields.items() if v}
    sent: Message = send_message(contact.id, answer, credentials=credentials, **fields)
    return sent  # classified by THE outcome rule (a refusal in a 2xx fails), then its id


def _act_once(
    steps: OnceLedger,
    step: str,
    status: ContactStatus | None,
    action: AnyAction,
    resend_unknown: bool,
    perform: Callable[[], Message | None],
    identity: Identity | None = None,
    consent: Consent | None = None,
) -> ActionOutcome:
    """Run one action unless the ledger says it was done (or may have been); an answer only
    if the consent check (inside its claim) lets it through."""
    logger = get_run_logger()
    target = describe_action(action)
    if done(status) and status:
        return ActionOutcome(
            kind=action.kind, target=target, status="already_done", message_id=status.message_id
        )
    # Setting a field or the opt-out list twice is harmless; a function or an answer may not be.
    harmless = isinstance(action, (UpdateField, OptOut, OptIn))
    if unresolved(status) and not resend_unknown and not harmless:
        logger.warning("Action %s (%s) has an unknown outcome: not repeated", step, target)
        return ActionOutcome(
            kind=action.kind,
            target=target,
            status="unknown",
            detail="an earlier attempt may have applied it; not repeated",
        )
    ran = steps.run(
        step,
        perform,
        resend_unknown=resend_unknown or harmless,
        ref=lambda sent: sent.id if sent is not None else None,
        identity=identity,
        consent=consent,
    )
    if ran.blocked is not None:
        logger.info("Action %s (%s) skipped: the contact is on the opt-out list", step, target)
        return ActionOutcome(
            kind=action.kind,
            target=target,
            status="skipped",
            detail=f"skipped: {ran.blocked.value}",
        )
    if not ran.claimed:  # another delivery of this event is acting right now
        return ActionOutcome(
            kind=action.kind,
            target=target,
            status="unknown",
            detail="another run holds this action; not repeated",
        )
    assert ran.outcome is not None
    if ran.outcome.state is not SENT:
        assert ran.error is not None
        raise ran.error
    message_id = ran.outcome.ref
    logger.info("Did %s %s%s", action.kind, target, f" ({message_id})" if message_id else "")
    return ActionOutcome(kind=action.kind, target=target, status="done", message_id=message_id)


def _missing_type(dynadata_type: str, credentials: AutoTalkCredentials | None) -> ValueError | None:
    """The clear error for a ``dynadata_type`` the account does not have (``None``: it has it)."""
    type_names = [t.name for t in list_dynadata_types(credentials=credentials)]
    if dynadata_type in type_names:
        return None
    return unknown_type_error("dynadata_type", dynadata_type, type_names, "nothing was done.")


def _find_contact(
    evt: InboundReplyEvent,
    event_key: str,
    dynadata_type: str,
    credentials: AutoTalkCredentials | None,
) -> DynadataItem:
    """The one record whose phone (else email) is the event's: a body from AutoTalk's
    placeholders names the contact only by these. None or several fail the run, nothing done."""
    tried: list[str] = []
    for field, value in evt.client.lookup:
        try:
            filters: dict[str, Any] = {field: value}
            found: list[DynadataItem] = list_dynadata_items(
                dynadata_type, credentials=credentials, **filters
            )
        except NotFoundError:
            raise (
                _missing_type(dynadata_type, credentials)
                or UnknownContactError(
                    f"Event {event_key}: listing {dynadata_type!r} items failed: nothing was done."
                )
            ) from None
        # Filtered again here: an API that ignored the filter must not pick a stranger.
        matches = [item for item in found if str(item.data.get(field, "")).strip() == value]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UnknownContactError(
                f"Event {event_key}: {len(matches)} {dynadata_type!r} items have {field} "
                f"{value!r}, so the contact is ambiguous: nothing was done."
            )
        tried.append(f"{field} {value!r}")
    raise UnknownContactError(
        f"Event {event_key}: no {dynadata_type!r} item has {' or '.join(tried)}: nothing was done."
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _run_name() -> str:
    """``reply-ana-demo`` at the start (the rule is known later: the run is renamed then)."""
    try:
        evt = parse_event(run_parameters().get("event"), "-")  # type: ignore[arg-type]
    except Exception:
        return "reply"
    return f"reply-{slug(evt.client.name or evt.client.id or 'contact').lower()}"


@flow(
    name="autotalk-handle-reply",
    flow_run_name=_run_name,
    description="Act on one inbound customer message by the first matching rule, once per event.",
    log_prints=False,
)
def handle_reply(
    event: InboundReplyEvent | dict[str, Any] | str,
    event_id: str | None = None,
    rules: list[ReplyRule] | None = None,
    dynadata_type: str = "clients",
    resend_unknown: bool = False,
    ledger_storage: str | None = None,
    credentials: AutoTalkCredentials | None = None,
) -> ReplyOutcome:
    """Decide what an inbound message asks for and do it, once per event.

    Args:
        event: The ``message.received`` webhook body (``client``, ``message``, ``trigger``,
            ``id``); a deployment trigger passes ``{{ event.payload }}`` (spelled as in
            ``deployments/prefect.yaml`` for servers before 3.6). JSON text is accepted.
            Without ``client._id`` the contact is found by ``client.phone``, then
            ``client.email``: exactly one record of ``dynadata_type`` must match.
        event_id: The Prefect event's id (a trigger passes ``{{ event.id | string }}``): the dedupe key
            when the body has neither ``id`` nor ``message._id``, as a body built from
            AutoTalk's documented placeholders never has.
        rules: The rule table; first match wins (default: STOP/unsubscribe, YES/confirm, HELP,
            then a no-op default).
        dynadata_type: The Dynadata type holding contacts.
        resend_unknown: Repeat an action whose earlier attempt's outcome is unknown (a crash or
            a lost answer): may send a second answer.
        ledger_storage: The claim ledger recording handled events: a SQLAlchemy URL
            (``postgresql://...`` shared by all workers) or a directory (a SQLite file inside
            it), or ``secret/<name>``: a Prefect Secret block holding the URL. Default:
            ``$AUTOTALK_LEDGER_URL``, else ``.autotalk/ledger``.
        credentials: The AutoTalk credentials block (default: ``AUTOTALK_*`` settings).
    """
    evt = parse_event(event, event_id)
    event_key = evt.dedupe_key(event_id)
    label_run(tags=["replies", slug(dynadata_type)])
    contact_id, looked_up = _who_wrote(evt, event_key, dynadata_type, credentials)
    with OnceLedger(ledger_name("replies", dynadata_type, contact_id), ledger_storage) as steps:
        outcome = ReplyOutcome(
            event_id=event_key,
            contact_id=contact_id,
            contact_name=evt.client.name,
            dynadata_type=dynadata_type,
            rule=None,
            duplicate=done(steps.statuses([event_key]).get(event_key)),
            ledger=steps.describe(),
        )
        if outcome.duplicate:
            get_run_logger().info("Event %s was handled before: nothing to do", event_key)
        else:
            contact = looked_up or _load_contact(
                evt, event_key, contact_id, dynadata_type, credentials
            )
            decision = _decide(
                outcome, DEFAULT_RULES if rules is None else rules, evt, contact, ledger_storage
            )
            _act(steps, decision, outcome, evt, contact, dynadata_type, resend_unknown, credentials)
    _publish(outcome)
    return outcome


# ---- the steps: find, decide, act, publish ------------------------------------------------


def _who_wrote(
    evt: InboundReplyEvent,
    event_key: str,
    dynadata_type: str,
    credentials: AutoTalkCredentials | None,
) -> tuple[str, DynadataItem | None]:
    """The contact's id; and its record when it had to be looked up (by phone or email: a body
    without ``client._id``), so it is not read twice. The ledger is per contact: this comes
    first."""
    if evt.client.id:
        return evt.client.id, None
    found = _find_contact(evt, event_key, dynadata_type, credentials)
    return found.id, found


def _load_contact(
    evt: InboundReplyEvent,
    event_key: str,
    contact_id: str,
    dynadata_type: str,
    credentials: AutoTalkCredentials | None,
) -> DynadataItem:
    """The contact's record; a missing type or item fails the run with nothing done."""
    try:
        item: DynadataItem = get_dynadata_item(dynadata_type, contact_id, credentials=credentials)
    except NotFoundError:
        missing = _missing_type(dynadata_type, credentials)
        if missing:
            raise missing from None
        raise UnknownContactError(
            f"Event {event_key} names contact {contact_id!r}, but the {dynadata_type!r} "
            "type has no such item: nothing was done."
        ) from None
    return item


@dataclass(frozen=True)
class _Decision:
    """What the matched rule asks for: its actions, each answer rendered, who it is about, and
    the consent check its answers go through (``None``: the confirmation of an opt-out)."""

    actions: list[AnyAction]
    answers: list[str | None]
    who: _Who
    consent: Consent | None


def _decide(
    outcome: ReplyOutcome,
    table: list[ReplyRule],
    evt: InboundReplyEvent,
    contact: DynadataItem,
    ledger_storage: str | None,
) -> _Decision:
    """The first matching rule (named in ``outcome`` and the run's name), with every answer
    rendered before any action runs: a template that does not fit the record fails the run
    with nothing done."""
    rule, found = match_rule(table, evt.message.text)
    outcome.rule, outcome.matched_keywords = (rule.name if rule else None), found
    if outcome.contact_name is None and isinstance(contact.data.get("name"), str):
        outcome.contact_name = contact.data["name"]
    who = outcome.contact_name or outcome.contact_id
    label_run(
        tags=[f"rule:{slug(outcome.rule or 'none')}"],
        name=f"reply-{slug(outcome.rule or 'none')}-{slug(who).lower()}",
    )
    get_run_logger().info(
        "Event %s from contact %s: rule %r%s",
        outcome.event_id,
        outcome.contact_id,
        outcome.rule,
        f" (keywords {found})" if found else "",
    )
    actions = list(rule.actions) if rule else []
    record = {**contact.data, "_id": contact.id}
    identity = Identity.of(
        outcome.contact_id,
        _text(contact.data.get("phone")) or evt.client.phone,
        _text(contact.data.get("email")) or evt.client.email,
    )
    return _Decision(
        actions=actions,
        answers=[
            compile_template(a.template).render(record) if isinstance(a, SendAnswer) else None
            for a in actions
        ],
        who=_Who(
            identity=identity,
            event_key=outcome.event_id,
            keywords=tuple(found),
            ledger_storage=ledger_storage,
        ),
        # answers check the opt-out list inside their claim, except the confirmation of an
        # opt-out rule (the one message allowed after STOP)
        consent=None if rule is None or rule.opts_out else Consent(),
    )


def _act(
    steps: OnceLedger,
    decision: _Decision,
    outcome: ReplyOutcome,
    evt: InboundReplyEvent,
    contact: DynadataItem,
    dynadata_type: str,
    resend_unknown: bool,
    credentials: AutoTalkCredentials | None,
) -> None:
    """Each action once (its own ledger step); the event is recorded as handled when no
    action's outcome is unknown. An AutoTalk error fails the run, after logging which action."""
    event_key = outcome.event_id
    for index, (action, answer) in enumerate(zip(decision.actions, decision.answers, strict=True)):
        step = f"{event_key}#{index}"
        answering = isinstance(action, SendAnswer)
        perform = partial(
            _perform, action, dynadata_type, contact, evt, answer, credentials, decision.who
        )
        try:
            result = _act_once(
                steps,
                step,
                steps.status(step),
                action,
                resend_unknown,
                perform,
                identity=decision.who.identity if answering else None,
                consent=decision.consent if answering else None,
            )
        except AutoTalkError as exc:
            get_run_logger().error(
                "Rule %r action %d (%s %s) failed: %s",
                outcome.rule,
                index + 1,
                action.kind,
                describe_action(action),
                exc,
            )
            raise
        outcome.actions.append(result)
    if not any(a.status == "unknown" for a in outcome.actions):
        steps.mark(event_key, None)


def _publish(outcome: ReplyOutcome) -> None:
    """The run's artifact and its ``autotalk.reply.handled`` event."""
    create_markdown_artifact(
        markdown=summary_markdown(outcome),
        key=artifact_key("reply", outcome.event_id),
        description=reply_headline(outcome),
    )
    emit_completed(
        "autotalk.reply.handled",
        "reply",
        outcome.event_id,
        payload={
            "event_id": outcome.event_id,
            "contact_id": outcome.contact_id,
            "rule": outcome.rule,
            "duplicate": outcome.duplicate,
            "actions_done": sum(a.status == "done" for a in outcome.actions),
        },
        related=[resource("contact", outcome.contact_id, outcome.contact_name)],
    )
