"""The prebuilt flows ``schedule_reminders``, ``schedule_follow_up`` and ``send_reminder``
(deployment entrypoints ``flows/reminders.py``): messages for later, from AutoTalk events.

A scheduling flow runs on each appointment (or conversation) event: it records the event in the
last-known-state table (newest event wins; redeliveries and older events change nothing), then
makes Prefect's scheduled runs of the ``send_reminder`` deployment match that state: a run per
reminder still due (a future ``scheduled_time`` and an idempotency key, so a redelivered event
never makes a second one), every other scheduled run of the appointment cancelled. Nothing
sleeps: the worker starts each run when its time comes. ``send_reminder`` re-reads the state
before it sends (a moved or cancelled appointment, an answered conversation: nothing sent, the
run says why) and sends through the claim ledger, once per (appointment, reminder).
"""

# No ``from __future__ import annotations`` here: a deployment's flow-run process must see
# the parameter types as objects (string annotations broke its parameter validation).

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelled, Scheduled

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.reminders.engine import (
    APPOINTMENT,
    DEFAULT_CANCEL_EVENTS,
    DEFAULT_CANCEL_STATUSES,
    DEFAULT_REPLY_EVENTS,
    FOLLOW_UP,
    AppointmentFields,
    FollowUpFields,
    PlannedRun,
    ScheduleOutcome,
    SendOutcome,
    SendState,
    format_duration,
    get_path,
    local_time,
    map_appointment_event,
    map_follow_up_event,
    parse_duration,
    plan_runs,
    run_idempotency_key,
    subject_tag,
)
from autotalk_prefect.flows.runinfo import artifact_key, label_run, run_parameters, slug
from autotalk_prefect.flows.templating import compile_template
from autotalk_prefect.ledger.consent import Consent
from autotalk_prefect.ledger.once import OnceLedger, done, ledger_name, unresolved
from autotalk_prefect.ledger.optouts import Identity, default_region
from autotalk_prefect.ledger.schedule_state import ScheduleState, ScheduleStateStore
from autotalk_prefect.tasks import send_message

SEND_DEPLOYMENT = "autotalk-send-reminder/autotalk-reminders-send"
DEFAULT_REMINDER_TEMPLATE = (
    "Hi {{ name }}, a reminder: your appointment is on {{ date }} at {{ time }} ({{ zone }})."
)
DEFAULT_FOLLOW_UP_TEMPLATE = "Hi {{ name }}, we haven't heard back from you: can we help?"
#: statuses of the state table
SCHEDULED, CANCELLED, WAITING, ANSWERED = "scheduled", "cancelled", "waiting", "answered"
_OPEN = [StateType.SCHEDULED, StateType.PENDING]
#: states whose runs are wanted (an appointment booked, a silence waiting for its nudge)
_WANTS_RUNS = frozenset({SCHEDULED, WAITING})


# ---- the Prefect runs ----------------------------------------------------------------------


def _reconcile(
    outcome: ScheduleOutcome,
    deployment: str,
    version: str,
    wanted: list[PlannedRun],
    parameters: Callable[[PlannedRun], dict[str, Any]],
) -> None:
    """Make the subject's open scheduled runs of ``deployment`` exactly ``wanted``: keep the
    ones that match, create the missing ones (idempotency key per state version), cancel the
    rest."""
    logger = get_run_logger()
    kind, subject = outcome.kind, outcome.subject
    tag = subject_tag(kind, subject)
    with get_client(sync_client=True) as client:
        target = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[tag]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_OPEN)),
            ),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[target.id])),
        )
        pending = {(p.label, p.basis): p for p in wanted}
        for run in sorted(runs, key=lambda r: str(r.id)):
            params = run.parameters or {}
            pair = (str(params.get("label")), str(params.get("basis")))
            if params.get("subject") == subject and pair in pending:
                planned = pending.pop(pair)
                outcome.kept.append(_row(planned, str(run.id)))
                continue
            due = _came_due(run, pair[1], outcome)
            if params.get("subject") == subject and due is not None:
                _keep_due(outcome, PlannedRun(pair[0], due, pair[1]), str(run.id))
                continue
            why = f"{kind} {subject} is now {outcome.status}" + (
                f" for {outcome.basis}" if outcome.basis else ""
            )
            result: Any = client.set_flow_run_state(run.id, Cancelled(message=why))
            if result.status.value == "ACCEPT":
                outcome.cancelled.append(str(run.id))
                logger.info("Cancelled scheduled run %s (%s): %s", run.name, pair[0], why)
            else:  # it started meanwhile: send_reminder re-reads the state and sends nothing
                outcome.notes.append(f"run {run.id} could not be cancelled ({result.status.value})")
        for planned in pending.values():
            key = run_idempotency_key(kind, subject, planned.basis, planned.label, version)
            made = client.create_flow_run_from_deployment(
                target.id,
                parameters=parameters(planned),
                state=Scheduled(scheduled_time=planned.due),
                name=f"{kind}-{slug(subject, 40).lower()}-{planned.label}",
                tags=["autotalk", "reminders", kind, tag],
                idempotency_key=key,
            )
            state = made.state.type if made.state else None
            if state in _OPEN:
                outcome.scheduled.append(_row(planned, str(made.id)))
                logger.info(
                    "Scheduled %s %s at %s (run %s)", kind, planned.label, planned.due, made.name
                )
            else:  # the key's run exists and is done (a redelivery after it ran)
                outcome.notes.append(
                    f"the {planned.label} run {made.id} for this state exists already ({state})"
                )


def _came_due(run: FlowRun, basis: str, outcome: ScheduleOutcome) -> datetime | None:
    """When a run of the state that stands came due, if it has: it is left to the worker, never
    cancelled.

    A re-plan that runs late (a redelivery or an older event, on a busy machine) finds that
    reminder "already past" and does not want it; cancelling it then would lose a reminder the
    worker is about to start. ``send_reminder`` re-reads the state when it starts, as always.
    """
    due = run.expected_start_time
    if outcome.status not in _WANTS_RUNS or basis != outcome.basis or due is None:
        return None
    return due if due <= datetime.now(timezone.utc) else None


def _keep_due(outcome: ScheduleOutcome, run: PlannedRun, run_id: str) -> None:
    """Record a run kept by ``_came_due`` (and drop the plan's "already past" line for it)."""
    outcome.kept.append(_row(run, run_id))
    outcome.skipped = [line for line in outcome.skipped if not line.startswith(f"the {run.label} ")]
    outcome.notes.append(f"the {run.label} run came due meanwhile: left to run")


def _settle(
    outcome: ScheduleOutcome,
    store: ScheduleStateStore,
    state: ScheduleState,
    plan: Callable[[ScheduleState], list[PlannedRun]],
    parameters: Callable[[PlannedRun], dict[str, Any]],
    deployment: str,
) -> None:
    """Reconcile the runs with ``state``, then again while a concurrent event changed it.

    Two scheduling runs of one appointment may work at once (a booking and its update); the one
    that finishes with a stale state sees it here and reconciles once more, so the runs left
    are the newest state's (the later one reads the runs after the earlier one made them).
    """
    for _ in range(5):
        _reconcile(outcome, deployment, state.since, plan(state), parameters)
        latest = store.read(state.kind, state.subject)
        if latest is None or latest.event_key == state.event_key:
            return
        state = latest
        outcome.kept, outcome.scheduled = [], []
        outcome.status, outcome.basis = state.status, state.basis
        outcome.notes.append(f"a newer event ({state.event_key}) arrived meanwhile: followed it")


def _row(planned: PlannedRun, run_id: str) -> dict[str, str]:
    return {"label": planned.label, "due": planned.due.isoformat(), "flow_run_id": run_id}


def _publish(outcome: ScheduleOutcome) -> ScheduleOutcome:
    create_markdown_artifact(
        markdown=outcome.markdown(),
        key=artifact_key(outcome.kind, "schedule", outcome.subject),
        description=outcome.headline,
    )
    get_run_logger().info("%s", outcome.headline)
    return outcome


# ---- scheduling ----------------------------------------------------------------------------


def _appointment_run_name() -> str:
    event = run_parameters().get("event")
    found = get_path(event, "appointment._id") if isinstance(event, dict) else None
    return f"reminders-{slug(found).lower()}" if found else "reminders"


@flow(
    name="autotalk-schedule-reminders",
    flow_run_name=_appointment_run_name,
    description="Schedule (move, cancel) an appointment's reminder runs from its latest event.",
    log_prints=False,
)
def schedule_reminders(
    event: dict[str, Any] | str,
    event_id: str | None = None,
    event_name: str | None = None,
    occurred: str | None = None,
    offsets: list[str] | None = None,
    message_template: str = DEFAULT_REMINDER_TEMPLATE,
    fields: AppointmentFields | None = None,
    default_time_zone: str | None = None,
    cancel_statuses: list[str] | None = None,
    cancel_events: list[str] | None = None,
    reminder_deployment: str = SEND_DEPLOYMENT,
    ledger_storage: str | None = None,
) -> ScheduleOutcome:
    """Schedule one ``send_reminder`` run per offset before the appointment, from its event.

    Args:
        event: The appointment webhook body (a trigger passes ``{{ event.payload }}``).
        event_id: The Prefect event's id (``{{ event.id | string }}``): the dedupe key when
            the body has no ``id``.
        event_name: The event's name (``{{ event.event }}``): a name in ``cancel_events``
            cancels the appointment.
        occurred: The Prefect event's time (``{{ event.occurred | string }}``): orders events
            when the body has no ``occurredAt``.
        offsets: How long before the appointment each reminder goes ("24h", "1h", "30m").
            Default ``["24h", "1h"]``. One already past is skipped (the artifact says so).
        message_template: Jinja2 text: ``name``, ``date``, ``time``, ``zone``, ``starts_at``
            (the local time in the contact's zone), ``appointment_id``, ``reminder`` ("24h").
        fields: Where each part is in the body (``AppointmentFields``; dotted paths).
        default_time_zone: The account's IANA zone: reads an appointment time without offset
            when the body names no zone (else such a time is refused), and shows the time.
        cancel_statuses: Status values that mean cancelled (default: cancelled, canceled,
            deleted, no-show).
        cancel_events: Event names that cancel (default: appointment.cancelled/.canceled/
            .deleted).
        reminder_deployment: The ``send_reminder`` deployment, as ``flow/deployment``.
        ledger_storage: Where the state and the claim ledger live (see ``onboard_contact``).
    """
    steps = [parse_duration(o) for o in (offsets or ["24h", "1h"])]
    compile_template(message_template)  # a broken template fails now, not at send time
    evt = map_appointment_event(
        event,
        fields=fields,
        event_id=event_id,
        event_name=event_name,
        occurred=occurred,
        default_time_zone=default_time_zone,
        cancel_statuses=DEFAULT_CANCEL_STATUSES if cancel_statuses is None else cancel_statuses,
        cancel_events=DEFAULT_CANCEL_EVENTS if cancel_events is None else cancel_events,
    )
    label_run(tags=["reminders", subject_tag(APPOINTMENT, evt.appointment_id)])
    store = ScheduleStateStore(ledger_storage)
    recorded = store.record(
        APPOINTMENT,
        evt.appointment_id,
        event_key=evt.event_key,
        event_at=evt.occurred_at.timestamp(),
        status=CANCELLED if evt.cancelled else SCHEDULED,
        basis=evt.starts_at.astimezone(timezone.utc).isoformat() if evt.starts_at else None,
        data=evt.data(),
    )
    state = recorded.state
    outcome = ScheduleOutcome(
        kind=APPOINTMENT,
        subject=evt.appointment_id,
        event_id=evt.event_key,
        event_name=evt.event_name,
        applied=recorded.applied,
        status=state.status,
        basis=state.basis,
    )
    if recorded.applied == "older":
        outcome.notes.append(
            f"this event is older than the one that stands ({state.event_key}): ignored"
        )

    def parameters(planned: PlannedRun) -> dict[str, Any]:
        return {
            "kind": APPOINTMENT,
            "subject": state.subject,
            "label": planned.label,
            "basis": planned.basis,
            "message_template": message_template,
            "ledger_storage": ledger_storage,
        }

    def plan(current: ScheduleState) -> list[PlannedRun]:
        if current.status != SCHEDULED or not current.basis:
            return []
        starts = datetime.fromisoformat(current.basis)
        wanted, outcome.skipped = plan_runs(
            starts, [format_duration(s) for s in steps], datetime.now(timezone.utc)
        )
        return wanted

    _settle(outcome, store, state, plan, parameters, reminder_deployment)
    return _publish(outcome)


def _follow_up_run_name() -> str:
    event = run_parameters().get("event")
    found = get_path(event, "client.name") if isinstance(event, dict) else None
    return f"follow-up-{slug(found).lower()}" if found else "follow-up"


@flow(
    name="autotalk-schedule-follow-up",
    flow_run_name=_follow_up_run_name,
    description="Schedule a follow-up after a silence; a reply from the contact cancels it.",
    log_prints=False,
)
def schedule_follow_up(
    event: dict[str, Any] | str,
    event_id: str | None = None,
    event_name: str | None = None,
    occurred: str | None = None,
    after: str = "24h",
    message_template: str = DEFAULT_FOLLOW_UP_TEMPLATE,
    fields: FollowUpFields | None = None,
    reply_events: list[str] | None = None,
    reminder_deployment: str = SEND_DEPLOYMENT,
    ledger_storage: str | None = None,
) -> ScheduleOutcome:
    """Nudge a contact ``after`` their conversation went silent, unless they answer first.

    A conversation-opened or message-sent event starts the silence (a later one while it lasts
    does not restart it: our own nudge does not re-arm it); a reply (``reply_events``, default
    ``message.received``) ends it and cancels the scheduled follow-up.

    Args:
        event: The webhook body (``{{ event.payload }}``); the contact is ``client._id``.
        event_id: The Prefect event's id (``{{ event.id | string }}``).
        event_name: The event's name (``{{ event.event }}``): a reply, or a silence start.
        occurred: The Prefect event's time (``{{ event.occurred | string }}``).
        after: How long the silence lasts before the nudge ("24h", "4h", "30m").
        message_template: Jinja2 text (``name``).
        fields: Where each part is in the body (``FollowUpFields``; dotted paths).
        reply_events: Event names that are the contact's answer.
        reminder_deployment: The ``send_reminder`` deployment, as ``flow/deployment``.
        ledger_storage: Where the state and the claim ledger live.
    """
    wait = parse_duration(after)
    compile_template(message_template)
    evt = map_follow_up_event(
        event,
        fields=fields,
        event_id=event_id,
        event_name=event_name,
        occurred=occurred,
        reply_events=DEFAULT_REPLY_EVENTS if reply_events is None else reply_events,
    )
    label_run(tags=["follow-up", subject_tag(FOLLOW_UP, evt.contact_id)])
    store = ScheduleStateStore(ledger_storage)
    recorded = store.record(
        FOLLOW_UP,
        evt.contact_id,
        event_key=evt.event_key,
        event_at=evt.occurred_at.timestamp(),
        status=ANSWERED if evt.answered else WAITING,
        basis=None if evt.answered else evt.event_key,
        data=evt.data(),
        keep_basis_for=frozenset({WAITING}),
    )
    state = recorded.state
    outcome = ScheduleOutcome(
        kind=FOLLOW_UP,
        subject=evt.contact_id,
        event_id=evt.event_key,
        event_name=evt.event_name,
        applied=recorded.applied,
        status=state.status,
        basis=state.basis,
    )

    def plan(current: ScheduleState) -> list[PlannedRun]:
        if current.status != WAITING or not current.basis:
            return []
        due = datetime.fromtimestamp(current.event_at, timezone.utc) + wait
        label = format_duration(wait)
        if due > datetime.now(timezone.utc):
            return [PlannedRun(label, due, current.basis)]
        outcome.skipped = [f"the {label} follow-up was due at {due.isoformat()}: skipped"]
        return []

    def parameters(planned: PlannedRun) -> dict[str, Any]:
        return {
            "kind": FOLLOW_UP,
            "subject": state.subject,
            "label": planned.label,
            "basis": planned.basis,
            "message_template": message_template,
            "ledger_storage": ledger_storage,
        }

    _settle(outcome, store, state, plan, parameters, reminder_deployment)
    return _publish(outcome)


# ---- sending -------------------------------------------------------------------------------


def _why_not(kind: str, state: ScheduleState | None, basis: str) -> str | None:
    """Why the reminder must not go (None: it may)."""
    if state is None:
        return "no event for it is known (the state table holds none)"
    if kind == APPOINTMENT:
        if state.status == CANCELLED:
            return f"the appointment was cancelled (event {state.event_key})"
        if state.basis != basis:
            return f"the appointment moved to {state.basis} (event {state.event_key})"
        return None
    if state.status == ANSWERED:
        return f"the contact answered (event {state.event_key})"
    if state.basis != basis:
        return f"a later message started another wait (event {state.event_key})"
    return None


def _context(
    kind: str, subject: str, label: str, basis: str, data: dict[str, Any]
) -> dict[str, Any]:
    name = data.get("contact_name") or ""
    context: dict[str, Any] = {"name": name, "contact_name": name, "reminder": label}
    if kind == APPOINTMENT:
        when = local_time(datetime.fromisoformat(basis), data.get("time_zone"))
        context.update(
            appointment_id=subject,
            starts_at=when,
            date=f"{when:%A} {when.day} {when:%B}",
            time=f"{when:%H:%M}",
            zone=data.get("time_zone") or when.tzname() or "",
        )
    return context


def _send_run_name() -> str:
    params = run_parameters()
    return f"send-{params.get('kind', 'reminder')}-{slug(params.get('subject', '-'), 40).lower()}-{params.get('label', '')}"


@flow(
    name="autotalk-send-reminder",
    flow_run_name=_send_run_name,
    description="Send one scheduled reminder or follow-up, once, if it still stands.",
    log_prints=False,
)
def send_reminder(
    kind: str,
    subject: str,
    label: str,
    basis: str,
    message_template: str,
    resend_unknown: bool = False,
    ledger_storage: str | None = None,
    credentials: AutoTalkCredentials | None = None,
    transactional: bool = False,
) -> SendOutcome:
    """Re-read the appointment's (or silence's) last known state; send if it still stands.

    Made by ``schedule_reminders`` / ``schedule_follow_up`` as a scheduled run; not meant to be
    started by hand. A moved or cancelled appointment, or an answered conversation, sends
    nothing and the run ends Completed saying why. The send goes through the claim ledger
    (``reminders-<kind>-<subject>``, key ``<label>@<basis>``): once, across retries and reruns.

    Args:
        kind: ``appointment`` or ``follow-up``.
        subject: The appointment id, or the contact id of a silence.
        label: Which reminder ("24h").
        basis: The appointment time (UTC ISO 8601) or the silence's event id it was made for.
        message_template: Jinja2 text (see ``schedule_reminders``).
        resend_unknown: Send again when an earlier attempt's outcome is unknown.
        ledger_storage: Where the state and the claim ledger live.
        credentials: The AutoTalk credentials block (default: ``AUTOTALK_*`` settings).
        transactional: Send even to a contact on the opt-out list (docs/consent.md); by
            default an opted-out contact gets no reminder (checked inside the claim).
    """
    logger = get_run_logger()
    label_run(tags=["reminders", kind, subject_tag(kind, subject)])
    state = ScheduleStateStore(ledger_storage).read(kind, subject)
    contact = str(state.data.get("contact_id") or "") if state else ""

    def finish(result: SendState, reason: str, message_id: str | None = None) -> SendOutcome:
        outcome = SendOutcome(
            kind=kind,
            subject=subject,
            label=label,
            state=result,
            reason=reason,
            message_id=message_id,
            contact_id=contact or None,
        )
        create_markdown_artifact(
            markdown=f"# {outcome.headline}\n\n- Contact: `{outcome.contact_id or '-'}`\n"
            f"- Message: `{outcome.message_id or '-'}`\n",
            key=artifact_key(kind, "send", subject, label),
            description=outcome.headline,
        )
        logger.info("%s", outcome.headline)
        return outcome

    why = _why_not(kind, state, basis)
    if why is not None or state is None:
        return finish("skipped", why or "no state")
    text = compile_template(message_template).render(
        _context(kind, subject, label, basis, state.data)
    )
    key = f"{label}@{basis}"
    with OnceLedger(ledger_name("reminders", kind, subject), ledger_storage) as ledger:
        before = ledger.status(key)
        if before is not None and done(before):
            return finish("already_sent", "sent by an earlier run", before.message_id)
        if unresolved(before) and not resend_unknown:
            return finish("unknown", "an earlier attempt may have sent it: not repeated")
        conversation = state.data.get("conversation_id")
        extra = {"conversationId": conversation} if conversation else {}
        sent = ledger.run(
            key,
            lambda: send_message(contact, text, credentials=credentials, **extra),
            text=text,
            resend_unknown=resend_unknown,
            identity=Identity.of(
                contact, state.data.get("phone"), state.data.get("email"), region=default_region()
            ),
            consent=Consent(transactional=transactional),  # the list; no campaign cap
        )
    if sent.blocked is not None:
        return finish("skipped", f"the contact is {sent.blocked.value}: not sent")
    if not sent.claimed:
        reason = sent.status.reason if sent.status else None
        return finish("held", reason or "another run holds this send")
    assert sent.outcome is not None
    if sent.outcome.state != "sent":
        assert sent.error is not None
        logger.error("The %s %s send for %s: %s", kind, label, subject, sent.outcome.reason)
        raise sent.error
    return finish("sent", "it still stands", sent.outcome.ref)


__all__ = [
    "DEFAULT_FOLLOW_UP_TEMPLATE",
    "DEFAULT_REMINDER_TEMPLATE",
    "SEND_DEPLOYMENT",
    "schedule_follow_up",
    "schedule_reminders",
    "send_reminder",
]
