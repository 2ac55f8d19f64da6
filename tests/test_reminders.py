"""The reminder flows on the session's Prefect API and the sandbox: the scheduled runs a booking
makes, what a move, a cancellation, a redelivery and a late older update do to them, and what
``send_reminder`` sends (or why not) when its time comes. Runs are started by calling the flows;
the worker that starts scheduled runs is in tests/test_e2e.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun

from autotalk_prefect.flows.reminders.engine import (
    APPOINTMENT,
    FOLLOW_UP,
    ReminderEventError,
    subject_tag,
)
from autotalk_prefect.flows.reminders.flow import (
    SEND_DEPLOYMENT,
    schedule_follow_up,
    schedule_reminders,
    send_reminder,
)
from autotalk_prefect.ledger.optouts import Identity, OptOutList
from autotalk_prefect.sandbox import SandboxHandle

TEMPLATE = "Hi {{ name }}, see you on {{ date }} at {{ time }} ({{ zone }})."


@pytest.fixture(scope="module", autouse=True)
def send_deployment() -> Iterator[None]:
    """The send_reminder deployment the scheduling flows make runs of (never started here)."""
    send_reminder.to_deployment(name=SEND_DEPLOYMENT.split("/")[1]).apply()
    yield


def _runs(kind: str, subject: str) -> list[FlowRun]:
    """The subject's send_reminder runs (the scheduling runs carry its tag too)."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[subject_tag(kind, subject)]))
        )
    return [r for r in runs if r.deployment_id is not None]


def _scheduled(kind: str, subject: str) -> dict[str, datetime]:
    """{label: scheduled time} of the subject's runs still scheduled."""
    return {
        r.parameters["label"]: r.expected_start_time
        for r in _runs(kind, subject)
        if r.state_type is not None
        and r.state_type.value == "SCHEDULED"
        and r.expected_start_time is not None
    }


def _booking(
    appointment: str, starts: datetime, *, event: str, occurred: datetime, **extra: Any
) -> dict[str, Any]:
    return {
        "id": event,
        "occurredAt": occurred.isoformat(),
        "client": {"_id": extra.pop("contact", "c1"), "name": "Ana", "timeZone": "Europe/Madrid"},
        "appointment": {"_id": appointment, "startsAt": starts.isoformat(), **extra},
    }


NOW = datetime.now(timezone.utc).replace(microsecond=0)
T1 = NOW + timedelta(days=3)
T2 = NOW + timedelta(days=4)


@pytest.mark.floor
def test_a_booking_schedules_one_run_per_offset_at_the_right_times(tmp_path: Path) -> None:
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    outcome = schedule_reminders(
        _booking(apt, T1, event="b1", occurred=NOW), ledger_storage=str(tmp_path)
    )
    assert outcome.applied == "new" and outcome.status == "scheduled"
    assert _scheduled(APPOINTMENT, apt) == {
        "24h": T1 - timedelta(hours=24),
        "1h": T1 - timedelta(hours=1),
    }
    (run,) = [r for r in _runs(APPOINTMENT, apt) if r.parameters["label"] == "24h"]
    assert run.parameters["basis"] == T1.isoformat() and run.idempotency_key


def test_offsets_already_past_are_skipped_and_said(tmp_path: Path) -> None:
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    soon = NOW + timedelta(hours=3)
    outcome = schedule_reminders(
        _booking(apt, soon, event="b1", occurred=NOW), ledger_storage=str(tmp_path)
    )
    assert list(_scheduled(APPOINTMENT, apt)) == ["1h"]
    assert len(outcome.skipped) == 1 and "24h reminder" in outcome.skipped[0]


def test_a_move_replaces_the_runs_and_an_older_update_arriving_late_does_not_win(
    tmp_path: Path,
) -> None:
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    store = str(tmp_path)
    schedule_reminders(_booking(apt, T1, event="b1", occurred=NOW), ledger_storage=store)
    newer = schedule_reminders(
        _booking(apt, T2, event="u2", occurred=NOW + timedelta(minutes=2)), ledger_storage=store
    )
    assert newer.applied == "newer" and len(newer.cancelled) == 2 and len(newer.scheduled) == 2
    late = schedule_reminders(  # an update made between the two, delivered last
        _booking(apt, T1 + timedelta(hours=5), event="u1", occurred=NOW + timedelta(minutes=1)),
        ledger_storage=store,
    )
    assert late.applied == "older" and not late.scheduled and not late.cancelled
    assert len(late.kept) == 2
    assert _scheduled(APPOINTMENT, apt) == {
        "24h": T2 - timedelta(hours=24),
        "1h": T2 - timedelta(hours=1),
    }
    states = sorted(r.state_type.value for r in _runs(APPOINTMENT, apt) if r.state_type)
    assert states == ["CANCELLED", "CANCELLED", "SCHEDULED", "SCHEDULED"]


def test_a_late_re_plan_leaves_a_reminder_that_came_due_to_run(tmp_path: Path) -> None:
    """An older update handled only after a reminder's time came (a busy machine, a slow
    webhook) finds it "already past": it must leave that run to the worker, not cancel it."""
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    store = str(tmp_path)
    starts = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=24, seconds=2)
    schedule_reminders(_booking(apt, starts, event="b1", occurred=NOW), ledger_storage=store)
    assert set(_scheduled(APPOINTMENT, apt)) == {"24h", "1h"}
    while datetime.now(timezone.utc) <= starts - timedelta(hours=24):  # the 24 h run is due
        time.sleep(0.2)
    late = schedule_reminders(  # made before the booking, delivered after the 24 h run's time
        _booking(apt, starts + timedelta(hours=3), event="u0", occurred=NOW - timedelta(minutes=1)),
        ledger_storage=store,
    )
    assert late.applied == "older" and not late.cancelled and not late.scheduled
    assert sorted(k["label"] for k in late.kept) == ["1h", "24h"]
    assert any("24h run came due meanwhile" in note for note in late.notes), late.notes
    assert not any("24h" in line for line in late.skipped), late.skipped
    assert _scheduled(APPOINTMENT, apt) == {  # both still scheduled: the worker starts the 24 h
        "24h": starts - timedelta(hours=24),
        "1h": starts - timedelta(hours=1),
    }


def test_a_redelivered_booking_schedules_nothing_twice(tmp_path: Path) -> None:
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    body = _booking(apt, T1, event="b1", occurred=NOW)
    applied = [schedule_reminders(body, ledger_storage=str(tmp_path)).applied for _ in range(3)]
    assert applied == ["new", "duplicate", "duplicate"]
    assert len(_runs(APPOINTMENT, apt)) == 2


def test_a_cancellation_cancels_every_run(tmp_path: Path) -> None:
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    store = str(tmp_path)
    schedule_reminders(_booking(apt, T1, event="b1", occurred=NOW), ledger_storage=store)
    by_status = schedule_reminders(
        _booking(apt, T1, event="c1", occurred=NOW + timedelta(minutes=1), status="cancelled"),
        ledger_storage=store,
    )
    assert by_status.status == "cancelled" and len(by_status.cancelled) == 2
    assert _scheduled(APPOINTMENT, apt) == {}
    # a cancellation event without a time works too, and a booking older than it stays dead
    apt2 = f"apt-{uuid.uuid4().hex[:8]}"
    schedule_reminders(_booking(apt2, T1, event="b2", occurred=NOW), ledger_storage=store)
    cancel = {"id": "x2", "occurredAt": (NOW + timedelta(minutes=5)).isoformat(),
              "client": {"_id": "c1"}, "appointment": {"_id": apt2}}  # fmt: skip
    out = schedule_reminders(
        cancel, event_name="autotalk.appointment.cancelled", ledger_storage=store
    )
    assert out.status == "cancelled" and _scheduled(APPOINTMENT, apt2) == {}


def test_a_body_missing_a_field_fails_the_run_naming_field_and_event(tmp_path: Path) -> None:
    body = _booking("apt-x", T1, event="bad-1", occurred=NOW)
    del body["appointment"]["startsAt"]
    state = schedule_reminders(body, ledger_storage=str(tmp_path), return_state=True)
    assert state.is_failed()
    with pytest.raises(ReminderEventError, match=r"Event bad-1: field 'appointment\.startsAt'"):
        state.result()


@pytest.mark.floor
def test_send_reminder_sends_once_in_the_contacts_local_time(
    autotalk_sandbox_env: SandboxHandle, tmp_path: Path
) -> None:
    contact = autotalk_sandbox_env.contact_ids()[0]
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    store = str(tmp_path)
    starts = datetime(2031, 12, 5, 9, 0, tzinfo=timezone.utc)  # 10:00 in Madrid (CET)
    body = _booking(apt, starts, event="b1", occurred=NOW, contact=contact)
    schedule_reminders(body, ledger_storage=store)
    args = {"kind": APPOINTMENT, "subject": apt, "label": "24h", "basis": starts.isoformat(),
            "message_template": TEMPLATE, "ledger_storage": store}  # fmt: skip
    first = send_reminder(**args)
    again = send_reminder(**args)
    assert (first.state, again.state) == ("sent", "already_sent")
    (sent,) = autotalk_sandbox_env.sent_messages(contact)
    assert sent["message"] == "Hi Ana, see you on Friday 5 December at 10:00 (Europe/Madrid)."
    assert again.message_id == first.message_id == sent["_id"]


def test_send_reminder_skips_an_opted_out_contact_unless_transactional(
    autotalk_sandbox_env: SandboxHandle, tmp_path: Path
) -> None:
    contact = autotalk_sandbox_env.contact_ids()[1]
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    store = str(tmp_path)
    starts = datetime(2031, 12, 5, 9, 0, tzinfo=timezone.utc)
    schedule_reminders(_booking(apt, starts, event="b1", occurred=NOW, contact=contact),
                       ledger_storage=store)  # fmt: skip
    OptOutList(store).add(Identity.of(contact), reason="STOP", source="test")
    args = {"kind": APPOINTMENT, "subject": apt, "basis": starts.isoformat(),
            "message_template": TEMPLATE, "ledger_storage": store}  # fmt: skip
    skipped = send_reminder(label="24h", **args)
    assert skipped.state == "skipped" and "opted out" in skipped.reason
    assert autotalk_sandbox_env.sent_messages(contact) == []
    override = send_reminder(label="1h", transactional=True, **args)
    assert override.state == "sent"
    assert len(autotalk_sandbox_env.sent_messages(contact)) == 1


def test_send_reminder_sends_nothing_for_a_moved_or_cancelled_appointment(
    autotalk_sandbox_env: SandboxHandle, tmp_path: Path
) -> None:
    contact = autotalk_sandbox_env.contact_ids()[0]
    apt = f"apt-{uuid.uuid4().hex[:8]}"
    store = str(tmp_path)
    schedule_reminders(
        _booking(apt, T1, event="b1", occurred=NOW, contact=contact), ledger_storage=store
    )
    schedule_reminders(
        _booking(apt, T2, event="u1", occurred=NOW + timedelta(minutes=1), contact=contact),
        ledger_storage=store,
    )
    args = {"kind": APPOINTMENT, "subject": apt, "label": "24h",
            "message_template": TEMPLATE, "ledger_storage": store}  # fmt: skip
    moved = send_reminder(basis=T1.isoformat(), **args)
    assert moved.state == "skipped" and f"moved to {T2.isoformat()}" in moved.reason
    schedule_reminders(
        _booking(apt, T2, event="c1", occurred=NOW + timedelta(minutes=2), contact=contact,
                 status="cancelled"),
        ledger_storage=store,
    )  # fmt: skip
    cancelled = send_reminder(basis=T2.isoformat(), **args)
    assert cancelled.state == "skipped" and "cancelled" in cancelled.reason
    unknown = send_reminder(**{**args, "subject": "never-booked"}, basis=T2.isoformat())
    assert unknown.state == "skipped"
    assert autotalk_sandbox_env.sent_messages(contact) == []


def test_a_follow_up_is_scheduled_after_the_silence_and_a_reply_cancels_it(
    autotalk_sandbox_env: SandboxHandle, tmp_path: Path
) -> None:
    contact = autotalk_sandbox_env.contact_ids()[1]
    store = str(tmp_path)
    opened = {"id": f"o-{uuid.uuid4().hex[:6]}", "occurredAt": NOW.isoformat(),
              "client": {"_id": contact, "name": "Bo"}}  # fmt: skip
    first = schedule_follow_up(opened, event_name="autotalk.conversation.opened", after="4h",
                               ledger_storage=store)  # fmt: skip
    assert first.status == "waiting" and _scheduled(FOLLOW_UP, contact) == {
        "4h": NOW + timedelta(hours=4)
    }
    ours = {**opened, "id": "s1", "occurredAt": (NOW + timedelta(minutes=1)).isoformat()}
    again = schedule_follow_up(
        ours, event_name="autotalk.message.sent", after="4h", ledger_storage=store
    )
    assert again.applied == "unchanged" and len(again.kept) == 1  # the silence is not restarted
    reply = {**opened, "id": "r1", "occurredAt": (NOW + timedelta(minutes=2)).isoformat()}
    answered = schedule_follow_up(reply, event_name="autotalk.message.received", after="4h",
                                  ledger_storage=store)  # fmt: skip
    assert answered.status == "answered" and len(answered.cancelled) == 1
    assert _scheduled(FOLLOW_UP, contact) == {}
    late = send_reminder(kind=FOLLOW_UP, subject=contact, label="4h", basis=opened["id"],
                         message_template="Can we help?", ledger_storage=store)  # fmt: skip
    assert late.state == "skipped" and "answered" in late.reason
    assert autotalk_sandbox_env.sent_messages(contact) == []
