"""The inbox's Appointments page over HTTP, with the session's Prefect API: book, move and
cancel through its forms (each fires its webhook), and each reminder run's time and fate as the
reminder flows leave them (scheduled, moved, sent, cancelled). The forms in a real browser are
in tests/sandbox/test_inbox_browser.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_API_URL
from prefect.states import Scheduled
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from autotalk_prefect.flows.reminders.engine import subject_tag
from autotalk_prefect.flows.reminders.flow import SEND_DEPLOYMENT, schedule_reminders, send_reminder
from autotalk_prefect.sandbox import SandboxConfig, SandboxHandle, run_sandbox
from autotalk_prefect.serving import serve_in_thread

KEY = "sk-inbox-appointments-5b2e"
MADRID = ZoneInfo("Europe/Madrid")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    """A sandbox whose inbox reads the session's Prefect API, its webhooks to a receiver."""

    async def accept(request: Request) -> JSONResponse:
        return JSONResponse({"accepted": True}, status_code=202)

    send_reminder.to_deployment(name=SEND_DEPLOYMENT.split("/")[1]).apply()
    config = SandboxConfig(api_key=KEY, seed=3, contacts=6, prefect_api_url=PREFECT_API_URL.value())
    receiver = Starlette(routes=[Route("/autotalk/{event:path}", accept, methods=["POST"])])
    with (
        serve_in_thread(receiver, name="appointments-receiver") as port,
        run_sandbox(config=config) as handle,
    ):
        handle.configure_webhook(f"http://127.0.0.1:{port}", "appointments-secret")
        yield handle


def _fired(sandbox: SandboxHandle) -> list[str]:
    """The appointment webhooks delivered (the reminder's send also opens a conversation)."""
    assert sandbox.flush_webhooks()
    return [d["event"] for d in sandbox.webhook_deliveries() if "appointment" in d["event"]]


@pytest.fixture
def inbox(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.root_url, timeout=30) as client:
        yield client


def _listed(inbox: httpx.Client) -> dict[str, Any]:
    answer = inbox.get("/_sandbox/inbox/appointments")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _event(appointment: dict[str, Any], occurred: datetime) -> dict[str, Any]:
    """The body the sandbox's webhook carries (docs/reminders.md), with its time and an id."""
    return {
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "occurredAt": occurred.isoformat(),
        "client": {"_id": appointment["contactId"], "name": "Ana"},
        "appointment": {
            k: appointment[k] for k in ("_id", "startsAt", "timeZone", "status") if k in appointment
        },
    }


def _fates(view: dict[str, Any], appointment_id: str) -> list[tuple[str, str]]:
    (row,) = [a for a in view["data"] if a["_id"] == appointment_id]
    return sorted((r["label"], r["fate"]) for r in row["reminders"])


def test_book_move_and_cancel_show_each_reminders_time_and_fate(
    sandbox: SandboxHandle,
    inbox: httpx.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOTALK_API_KEY", KEY)
    monkeypatch.setenv("AUTOTALK_BASE_URL", sandbox.base_url)
    store = str(tmp_path / "ledger")
    contact = sandbox.contact_ids()[2]
    now = datetime.now(timezone.utc)
    first = (now + timedelta(days=3)).astimezone(MADRID).replace(second=0, microsecond=0)
    booked = inbox.post(
        "/appointments",
        data={
            "contactId": contact,
            "startsAt": first.strftime("%Y-%m-%dT%H:%M"),  # what a datetime-local input posts
            "timeZone": "Europe/Madrid",
        },
    )
    assert booked.status_code == 303, booked.text
    view = _listed(inbox)
    (row,) = view["data"]
    assert row["contactId"] == contact and row["status"] == "scheduled"
    assert datetime.fromisoformat(row["startsAt"]) == first  # read in the form's zone
    assert row["contactName"] == sandbox.runtime.state.get_item("clients", contact)["name"]
    assert row["reminders"] == [] and view["prefect"]["error"] is None
    assert _fired(sandbox) == ["appointment.scheduled"]

    schedule_reminders(_event(row, now), ledger_storage=store)
    view = _listed(inbox)
    assert _fates(view, row["_id"]) == [("1h", "scheduled"), ("24h", "scheduled")]
    (listed,) = view["data"]
    due = {r["label"]: datetime.fromisoformat(r["due"]) for r in listed["reminders"]}
    assert due == {"24h": first - timedelta(hours=24), "1h": first - timedelta(hours=1)}

    # Moved an hour later through the page: the old runs read "moved", two new ones scheduled.
    later = first + timedelta(hours=1)
    moved = inbox.post(
        f"/appointments/{row['_id']}/move", data={"startsAt": later.strftime("%Y-%m-%dT%H:%M")}
    )
    assert moved.status_code == 303, moved.text
    (row,) = _listed(inbox)["data"]
    assert datetime.fromisoformat(row["startsAt"]) == later  # in the appointment's own zone
    schedule_reminders(_event(row, now + timedelta(seconds=1)), ledger_storage=store)
    view = _listed(inbox)
    assert _fates(view, row["_id"]) == [
        ("1h", "moved"),
        ("1h", "scheduled"),
        ("24h", "moved"),
        ("24h", "scheduled"),
    ]
    moved_detail = {r["detail"] for r in view["data"][0]["reminders"] if r["fate"] == "moved"}
    assert all("is now scheduled" in d for d in moved_detail), moved_detail

    # The new 24 h run, started now as a worker would at its time: sent, and the page says so.
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[subject_tag("appointment", row["_id"])])
            )
        )
        (due_now,) = [
            r
            for r in runs
            if r.deployment_id
            and r.parameters.get("label") == "24h"
            and r.state_type is not None
            and r.state_type.value == "SCHEDULED"
        ]
        # due now, not in a day (else the engine waits for its scheduled time)
        client.set_flow_run_state(due_now.id, Scheduled(scheduled_time=now), force=True)
        due_now = client.read_flow_run(due_now.id)
    run_flow(send_reminder, flow_run=due_now, parameters=due_now.parameters)
    (sent,) = sandbox.sent_messages(contact)
    assert "reminder" in sent["message"]

    cancelled = inbox.post(f"/appointments/{row['_id']}/cancel", data={})
    assert cancelled.status_code == 303, cancelled.text
    (row,) = _listed(inbox)["data"]
    assert row["status"] == "cancelled"
    schedule_reminders(_event(row, now + timedelta(seconds=2)), ledger_storage=store)
    view = _listed(inbox)
    assert _fates(view, row["_id"]) == [
        ("1h", "cancelled"),
        ("1h", "moved"),
        ("24h", "moved"),
        ("24h", "sent"),
    ]
    assert _fired(sandbox) == [
        "appointment.scheduled",
        "appointment.updated",
        "appointment.updated",
    ]
    html = inbox.get("/appointments").text
    for word in ("moved", "cancelled", "sent", row["_id"], "Appointments"):
        assert word in html
    assert "move-appointment" not in html  # a cancelled appointment has no buttons left


@pytest.mark.parametrize(
    ("path", "form", "reason"),
    [
        ("/appointments", {"startsAt": "2030-01-01T10:00"}, "contactId is required"),
        ("/appointments", {"contactId": "{contact}"}, "startsAt is required"),
        (
            "/appointments",
            {"contactId": "{contact}", "startsAt": "tomorrow"},
            "startsAt must be a date and time, got &#39;tomorrow&#39;",
        ),
        (
            "/appointments",
            {"contactId": "{contact}", "startsAt": "2030-01-01T10:00", "timeZone": "Mars/Base"},
            "timeZone must be an IANA zone name, got &#39;Mars/Base&#39;",
        ),
        (
            "/appointments",
            {"contactId": "000000000000000000000000", "startsAt": "2030-01-01T10:00Z"},
            "not booked: no ",
        ),
        ("/appointments/apt_nope/move", {"startsAt": "2030-01-01T10:00Z"}, "not moved: no "),
        ("/appointments/apt_nope/cancel", {}, "not cancelled: no appointment with _id"),
    ],
)
def test_bad_forms_say_what_was_wrong_and_change_nothing(
    sandbox: SandboxHandle, inbox: httpx.Client, path: str, form: dict[str, str], reason: str
) -> None:
    before = _listed(inbox)["data"]
    events = len(_fired(sandbox))
    contact = sandbox.contact_ids()[0]
    answer = inbox.post(path, data={k: v.format(contact=contact) for k, v in form.items()})
    assert answer.status_code == 422, answer.text
    assert reason in answer.text
    assert _listed(inbox)["data"] == before
    assert len(_fired(sandbox)) == events


def test_without_a_reachable_prefect_api_the_page_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for url, says in [
        (None, "no Prefect API known"),
        ("http://127.0.0.1:9/api", "the Prefect API at http://127.0.0.1:9/api did not answer"),
    ]:
        with run_sandbox(config=SandboxConfig(api_key=KEY, contacts=2, prefect_api_url=url)) as sb:
            contact = sb.contact_ids()[0]
            booked = httpx.post(
                f"{sb.root_url}/_sandbox/appointments",
                json={"contactId": contact, "startsAt": "2030-01-01T10:00:00+01:00"},
            )
            assert booked.status_code == 201, booked.text
            page = httpx.get(f"{sb.root_url}/appointments")
            assert page.status_code == 200 and says in page.text
            (row,) = httpx.get(f"{sb.root_url}/_sandbox/inbox/appointments").json()["data"]
            assert row["reminders"] == []
