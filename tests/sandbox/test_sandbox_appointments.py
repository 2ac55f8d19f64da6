"""The sandbox's appointments: book, move and cancel through the admin API, each firing the
appointment webhook whose body ``schedule_reminders`` reads with its default field paths."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx

from autotalk_prefect.flows.reminders.engine import map_appointment_event
from autotalk_prefect.sandbox import SandboxHandle
from tests.sandbox import test_sandbox_webhooks
from tests.sandbox.test_sandbox_webhooks import Receiver

receiver = test_sandbox_webhooks.receiver  # the loopback receiver fixture, shared


def test_book_move_cancel_fire_webhooks_the_reminder_flow_reads(
    sb: SandboxHandle, api: httpx.Client, admin: httpx.Client, receiver: Receiver
) -> None:
    sb.configure_webhook(receiver.url, "s3cret")
    contact = sb.contact_ids()[0]
    booked = admin.post(
        "/appointments",
        json={"contactId": contact, "startsAt": "2026-12-04T10:00:00+01:00",
              "timeZone": "Europe/Madrid", "clientTimeZone": "Europe/Madrid"},
    )  # fmt: skip
    assert booked.status_code == 201, booked.text
    apt = booked.json()["_id"]
    moved = admin.patch(f"/appointments/{apt}", json={"startsAt": "2026-12-04T12:00:00+01:00"})
    assert moved.status_code == 200 and moved.json()["startsAt"].startswith("2026-12-04T12")
    assert admin.post(f"/appointments/{apt}/cancel").json()["status"] == "cancelled"
    assert [a["status"] for a in admin.get("/appointments").json()["data"]] == ["cancelled"]
    assert sb.flush_webhooks()
    deliveries = sb.webhook_deliveries()
    assert [d["event"] for d in deliveries] == [
        "appointment.scheduled", "appointment.updated", "appointment.updated",
    ]  # fmt: skip
    read = [map_appointment_event(d["body"], event_name=d["event"]) for d in deliveries]
    assert {e.appointment_id for e in read} == {apt} and {e.contact_id for e in read} == {contact}
    assert [e.starts_at for e in read] == [
        datetime(2026, 12, 4, 9, tzinfo=timezone.utc),
        datetime(2026, 12, 4, 11, tzinfo=timezone.utc),
        datetime(2026, 12, 4, 11, tzinfo=timezone.utc),
    ]
    assert [e.cancelled for e in read] == [False, False, True]
    assert read[0].display_zone == "Europe/Madrid"
    assert len({e.event_key for e in read}) == 3  # each delivery is its own event


def test_bad_appointment_requests_name_the_field(
    sb: SandboxHandle, api: httpx.Client, admin: httpx.Client
) -> None:
    contact = sb.contact_ids()[0]
    naive = admin.post("/appointments", json={"contactId": contact, "startsAt": "2026-12-04T10:00"})
    assert naive.status_code == 422 and "startsAt" in naive.text
    assert admin.post("/appointments", json={"startsAt": "2026-12-04T10:00Z"}).status_code == 422
    stranger = admin.post(
        "/appointments", json={"contactId": "nobody", "startsAt": "2026-12-04T10:00Z"}
    )
    assert stranger.status_code == 404
    assert (
        admin.patch("/appointments/apt_none", json={"startsAt": "2026-12-04T10:00Z"}).status_code
        == 404
    )
