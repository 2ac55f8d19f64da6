"""Reminders without Prefect runs: reading appointment and conversation events out of webhook
payloads (zones, DST, naive times, missing fields), durations, planning, and the last-known-state
table (newest event wins, redeliveries and older events change nothing)."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from autotalk_prefect.flows.reminders.engine import (
    AppointmentFields,
    ReminderEventError,
    format_duration,
    local_time,
    map_appointment_event,
    map_follow_up_event,
    parse_duration,
    parse_time,
    plan_runs,
    run_idempotency_key,
)
from autotalk_prefect.ledger.schedule_state import ScheduleStateStore

PG_DSN = os.environ.get("AUTOTALK_TEST_POSTGRES_DSN")
PG_DATABASE = "autotalk_issue24_reminders"

MADRID = ZoneInfo("Europe/Madrid")


def body(**appointment: Any) -> dict[str, Any]:
    """The workflow body docs/reminders.md tells users to compose."""
    return {
        "id": "evt-1",
        "occurredAt": "2026-12-01T09:00:00Z",
        "client": {"_id": "c1", "name": "Ana", "timeZone": "Europe/Madrid"},
        "appointment": {
            "_id": "apt-1",
            "startsAt": "2026-12-04T10:00:00+01:00",
            "status": "scheduled",
            **appointment,
        },
    }


# ---- mapping ---------------------------------------------------------------------------------


def test_the_documented_body_maps_to_an_appointment() -> None:
    evt = map_appointment_event(body(), event_name="autotalk.appointment.scheduled")
    assert evt.appointment_id == "apt-1" and evt.contact_id == "c1" and evt.contact_name == "Ana"
    assert evt.starts_at == datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
    assert evt.occurred_at == datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    assert evt.event_key == "evt-1" and evt.event_name == "appointment.scheduled"
    assert not evt.cancelled and evt.display_zone == "Europe/Madrid"


def test_a_utc_time_is_shown_in_the_contacts_zone() -> None:
    evt = map_appointment_event(body(startsAt="2026-12-04T09:00:00Z"))
    assert evt.starts_at is not None
    shown = local_time(evt.starts_at, evt.display_zone)
    assert (shown.hour, shown.tzname()) == (10, "CET")


def test_user_field_paths_are_followed() -> None:
    payload = {
        "id": 42,
        "booking": {"ref": "B-9", "when": "2026-07-01T15:30:00+02:00", "state": "confirmed"},
        "customer": {"id": "c9"},
    }
    fields = AppointmentFields(
        appointment_id="booking.ref",
        starts_at="booking.when",
        status="booking.state",
        contact_id="customer.id",
    )
    evt = map_appointment_event(payload, fields=fields)
    assert (evt.appointment_id, evt.contact_id, evt.event_key) == ("B-9", "c9", "42")
    assert evt.starts_at == datetime(2026, 7, 1, 13, 30, tzinfo=timezone.utc)


def test_a_naive_time_is_read_in_the_appointments_zone_across_dst() -> None:
    summer = map_appointment_event(
        body(startsAt="2026-07-01T10:00:00", timeZone="Europe/Madrid")
    ).starts_at
    winter = map_appointment_event(
        body(startsAt="2026-12-01T10:00:00", timeZone="Europe/Madrid")
    ).starts_at
    assert summer == datetime(2026, 7, 1, 8, 0, tzinfo=timezone.utc)  # CEST, +02:00
    assert winter == datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)  # CET, +01:00


def test_a_naive_time_falls_back_to_the_accounts_zone() -> None:
    evt = map_appointment_event(
        body(startsAt="2026-12-04T10:00:00"), default_time_zone="America/New_York"
    )
    assert evt.starts_at == datetime(2026, 12, 4, 15, 0, tzinfo=timezone.utc)


def test_a_naive_time_without_any_zone_is_refused_naming_the_field_and_event() -> None:
    with pytest.raises(ReminderEventError) as caught:
        map_appointment_event(body(startsAt="2026-12-04T10:00:00"))
    message = str(caught.value)
    assert "Event evt-1" in message and "'appointment.startsAt'" in message
    assert "default_time_zone" in message and "nothing was scheduled" in message


def test_a_local_time_the_clocks_skip_is_refused() -> None:
    with pytest.raises(ReminderEventError, match="does not exist in Europe/Madrid"):
        map_appointment_event(body(startsAt="2026-03-29T02:30:00", timeZone="Europe/Madrid"))


def test_a_repeated_local_time_is_its_first_occurrence() -> None:
    when = parse_time("2026-10-25T02:30:00", "t", "Europe/Madrid")
    assert when.astimezone(timezone.utc) == datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)


def test_offsets_are_exact_durations_across_a_dst_change() -> None:
    # 10:00 CET (09:00 UTC) the Monday after the clocks went back (Sunday 03:00 CEST): 24 h
    # before is Sunday 09:00 UTC = 10:00 CET; 25 h before is Sunday 08:00 UTC = 09:00 CET.
    starts = datetime(2026, 10, 26, 10, 0, tzinfo=MADRID)
    planned, _ = plan_runs(starts, ["24h", "25h"], datetime(2026, 10, 1, tzinfo=timezone.utc))
    due = {p.label: p.due.astimezone(MADRID) for p in planned}
    assert (due["24h"].day, due["24h"].hour) == (25, 10)
    assert (due["25h"].day, due["25h"].hour, due["25h"].tzname()) == (25, 9, "CET")


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("appointment._id", "appointment_id"),
        ("client._id", "contact_id"),
        ("appointment.startsAt", "starts_at"),
    ],
)
def test_a_missing_field_is_named_with_the_parameter_to_fix_it(path: str, parameter: str) -> None:
    payload = body()
    head, field = path.split(".")
    payload[head] = {k: v for k, v in payload[head].items() if k != field}
    with pytest.raises(ReminderEventError) as caught:
        map_appointment_event(payload)
    assert f"'{path}'" in str(caught.value) and parameter in str(caught.value)
    assert str(caught.value).startswith("Event evt-1:")


def test_a_blank_placeholder_counts_as_missing() -> None:
    with pytest.raises(ReminderEventError, match=r"'client\._id'"):
        map_appointment_event({**body(), "client": {"_id": "  "}})


def test_an_event_without_any_id_asks_for_event_id() -> None:
    payload = body()
    del payload["id"]
    with pytest.raises(ReminderEventError, match=r"event\.id"):
        map_appointment_event(payload)
    assert map_appointment_event(payload, event_id="uuid-7").event_key == "uuid-7"


def test_bad_zones_and_times_are_named() -> None:
    with pytest.raises(ReminderEventError, match=r"'appointment\.timeZone'.*IANA"):
        map_appointment_event(body(timeZone="Mars/Olympus"))
    with pytest.raises(ReminderEventError, match="not an ISO 8601 time"):
        map_appointment_event(body(startsAt="tomorrow at ten"))
    with pytest.raises(ReminderEventError, match="must be the webhook payload"):
        map_appointment_event([1, 2])  # type: ignore[arg-type]


def test_cancellation_by_status_or_by_event_name() -> None:
    assert map_appointment_event(body(status="Cancelled")).cancelled
    by_name = body()
    del by_name["appointment"]["startsAt"]  # a cancellation needs no time
    evt = map_appointment_event(by_name, event_name="autotalk.appointment.cancelled")
    assert evt.cancelled and evt.starts_at is None
    assert not map_appointment_event(body(status="confirmed")).cancelled
    custom = map_appointment_event(body(status="void"), cancel_statuses=["void"])
    assert custom.cancelled


def test_the_event_time_falls_back_to_the_prefect_events_time() -> None:
    payload = body()
    del payload["occurredAt"]
    evt = map_appointment_event(payload, occurred="2026-12-02 08:00:00+00:00")
    assert evt.occurred_at == datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)


def test_follow_up_events_start_or_end_a_silence() -> None:
    opened = {"id": "e1", "client": {"_id": "c1", "name": "Ana"}, "conversation": {"_id": "k1"}}
    start = map_follow_up_event(opened, event_name="autotalk.conversation.opened")
    assert not start.answered and start.conversation_id == "k1" and start.contact_id == "c1"
    reply = {"id": "e2", "client": {"_id": "c1"}, "message": {"conversationId": "k1"}}
    end = map_follow_up_event(reply, event_name="autotalk.message.received")
    assert end.answered and end.conversation_id == "k1"
    with pytest.raises(ReminderEventError, match="event_name"):
        map_follow_up_event(opened)


# ---- durations and planning --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("1h30m", 5400), ("90m", 5400), ("45s", 45), ("2d", 172800), (30, 30)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "24", "h", "1 week", "-1h", "0s", True])
def test_bad_durations_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration() -> None:
    assert [format_duration(parse_duration(t)) for t in ("24h", "90m", "45s", "1d")] == [
        "24h",
        "1h30m",
        "45s",
        "24h",
    ]


def test_past_offsets_are_skipped_and_said() -> None:
    now = datetime(2026, 12, 4, 9, 30, tzinfo=timezone.utc)
    planned, skipped = plan_runs(now + timedelta(hours=2), ["24h", "1h"], now)
    assert [p.label for p in planned] == ["1h"]
    assert len(skipped) == 1 and "24h reminder" in skipped[0] and "already past" in skipped[0]


def test_idempotency_keys_differ_by_state_version() -> None:
    a = run_idempotency_key("appointment", "apt-1", "t", "24h", "evt-1")
    assert a == run_idempotency_key("appointment", "apt-1", "t", "24h", "evt-1")
    assert a != run_idempotency_key("appointment", "apt-1", "t", "24h", "evt-3")


# ---- the last known state ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the state table lives: a SQLite file, or a PostgreSQL database of this test file's
    own (created once; each test uses its own subjects)."""
    if request.param == "sqlite":
        return str(tmp_path)
    if not PG_DSN:
        pytest.skip("AUTOTALK_TEST_POSTGRES_DSN is not set")
    import sqlalchemy as sa

    from autotalk_prefect.ledger.database import engine_for

    admin = engine_for(PG_DSN).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": PG_DATABASE}
        ).first()
        if exists is None:
            conn.execute(sa.text(f"CREATE DATABASE {PG_DATABASE}"))
    url = sa.engine.make_url(PG_DSN).set(database=PG_DATABASE)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def subject() -> str:
    return f"apt-{uuid.uuid4().hex[:10]}"


def _record(
    store: ScheduleStateStore, subject: str, key: str, at: float, basis: str, **kw: Any
) -> str:
    return store.record(
        "appointment",
        subject,
        event_key=key,
        event_at=at,
        status=kw.pop("status", "scheduled"),
        basis=basis,
        data={},
        **kw,
    ).applied


def test_newest_event_stands_whatever_the_arrival_order(storage: str, subject: str) -> None:
    store = ScheduleStateStore(storage)
    assert _record(store, subject, "e1", 100.0, "10:00") == "new"
    assert _record(store, subject, "e1", 100.0, "10:00") == "duplicate"
    assert _record(store, subject, "e3", 300.0, "15:00") == "newer"
    assert _record(store, subject, "e2", 200.0, "12:00") == "older"  # arrived late
    state = store.read("appointment", subject)
    assert state is not None and (state.basis, state.event_key, state.since) == (
        "15:00",
        "e3",
        "e3",
    )
    assert store.read("appointment", "other") is None


def test_an_update_that_keeps_the_time_keeps_the_event_that_set_it(
    storage: str, subject: str
) -> None:
    store = ScheduleStateStore(storage)
    _record(store, subject, "e1", 100.0, "10:00")
    _record(store, subject, "e2", 200.0, "10:00")  # e.g. only a note changed
    state = store.read("appointment", subject)
    assert state is not None and (state.event_key, state.since) == ("e2", "e1")
    _record(store, subject, "e3", 300.0, "11:00")
    _record(store, subject, "e4", 400.0, "10:00")  # moved back: a new version of 10:00
    state = store.read("appointment", subject)
    assert state is not None and state.since == "e4"


def test_a_waiting_silence_is_not_restarted(storage: str, subject: str) -> None:
    store = ScheduleStateStore(storage)
    keep = frozenset({"waiting"})
    assert (
        _record(store, subject, "m1", 100.0, "m1", status="waiting", keep_basis_for=keep) == "new"
    )
    assert (
        _record(store, subject, "m2", 200.0, "m2", status="waiting", keep_basis_for=keep)
        == "unchanged"
    )
    assert (
        _record(store, subject, "r1", 300.0, "", status="answered", keep_basis_for=keep) == "newer"
    )
    state = store.read("appointment", subject)
    assert state is not None and state.status == "answered"


def test_concurrent_events_leave_the_newest(storage: str, subject: str) -> None:
    results: list[str] = []

    def deliver(i: int) -> None:
        store = ScheduleStateStore(storage)
        results.append(_record(store, subject, f"e{i:02}", float(i), str(i)))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("new") == 1 and len(results) == 12
    state = ScheduleStateStore(storage).read("appointment", subject)
    assert state is not None and state.basis == "11"
