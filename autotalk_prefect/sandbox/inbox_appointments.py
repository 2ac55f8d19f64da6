"""The inbox's Appointments page: book, move and cancel one, and see each reminder's fate.

The buttons call the same ``AppointmentBook`` as ``/_sandbox/appointments`` (so each fires its
webhook), and the reminders come from the Prefect API the flows use (sandbox/reminder_runs.py):
scheduled with their times, then sent, skipped, moved or cancelled. ``GET
/_sandbox/inbox/appointments`` is the page's JSON twin.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autotalk_prefect.sandbox.admin import ADMIN_PREFIX
from autotalk_prefect.sandbox.appointments import book_of
from autotalk_prefect.sandbox.http import endpoint, json_response
from autotalk_prefect.sandbox.inbox_forms import FormRefused, read_form
from autotalk_prefect.sandbox.inbox_queries import summary
from autotalk_prefect.sandbox.pages import page, redirect, render
from autotalk_prefect.sandbox.problems import ApiProblem
from autotalk_prefect.sandbox.reminder_runs import prefect_api_url, read_reminder_runs
from autotalk_prefect.sandbox.runtime import SandboxRuntime

DEFAULT_ZONE = "UTC"

__all__ = ["appointment_page_routes", "appointments_view", "starts_at_from_form"]


def starts_at_from_form(form: Mapping[str, str], zone_name: str | None) -> str:
    """An ISO 8601 time with its offset from the form's ``startsAt``: a browser's
    ``datetime-local`` value is read in ``zone_name`` (the form's ``timeZone``, else UTC)."""
    text = form.get("startsAt", "").strip()
    if not text:
        raise FormRefused("startsAt is required")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FormRefused(f"startsAt must be a date and time, got {text!r}") from None
    if when.utcoffset() is None:
        name = zone_name or DEFAULT_ZONE
        try:
            when = when.replace(tzinfo=ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise FormRefused(f"timeZone must be an IANA zone name, got {name!r}") from None
    return when.isoformat()


def _zone(form: Mapping[str, str]) -> str | None:
    return form.get("timeZone", "").strip() or None


def appointments_view(runtime: SandboxRuntime) -> dict[str, Any]:
    """Every appointment (newest first) with its contact's name and its reminder runs."""
    state = runtime.state
    booked = list(reversed(book_of(runtime).list()))
    reminders = read_reminder_runs(
        prefect_api_url(runtime.config.prefect_api_url), [a["_id"] for a in booked]
    )
    rows = []
    for appointment in booked:
        try:
            name = state.get_item("clients", appointment["contactId"]).get("name")
        except ApiProblem:  # the contact was deleted since
            name = None
        runs = reminders.runs.get(appointment["_id"], [])
        rows.append({**appointment, "contactName": name, "reminders": [r.as_json() for r in runs]})
    return {
        "data": rows,
        "total": len(rows),
        "prefect": {"apiUrl": reminders.api_url, "error": reminders.error},
    }


def appointment_page_routes(runtime: SandboxRuntime) -> list[Route]:
    """The page, its three forms and its JSON twin, bound to one runtime."""

    def view(*, error: str | None = None, form: dict[str, str] | None = None) -> Response:
        context = {
            "title": "Appointments",
            "summary": summary(runtime),
            "error": error,
            "data": appointments_view(runtime),
            "form": form or {},
            "contacts": runtime.state.contact_ids()[:200],
        }
        return render(
            "appointments.html", context, status=422 if error else 200, active="/appointments"
        )

    @page
    async def appointments_page(request: Request) -> Response:
        return view()

    @page
    async def book(request: Request) -> Response:
        form = await read_form(request)
        try:
            contact = form.get("contactId", "").strip()
            if not contact:
                raise FormRefused("contactId is required")
            body = {"contactId": contact, "startsAt": starts_at_from_form(form, _zone(form))}
            if _zone(form):
                body["timeZone"] = _zone(form) or ""
            book_of(runtime).book(body)
        except FormRefused as exc:
            return view(error=f"not booked: {exc}", form=form)
        except ApiProblem as problem:
            return view(error=f"not booked: {_reason(problem)}", form=form)
        return redirect("/appointments")

    @page
    async def move(request: Request) -> Response:
        form = await read_form(request)
        book = book_of(runtime)
        appointment_id = request.path_params["id"]
        try:
            current = next((a for a in book.list() if a["_id"] == appointment_id), None)
            zone = _zone(form) or (current or {}).get("timeZone")
            book.move(appointment_id, {"startsAt": starts_at_from_form(form, zone)})
        except FormRefused as exc:
            return view(error=f"not moved: {exc}", form=form)
        except ApiProblem as problem:
            return view(error=f"not moved: {_reason(problem)}", form=form)
        return redirect("/appointments")

    @page
    async def cancel(request: Request) -> Response:  # a button: nothing in the form to read
        try:
            book_of(runtime).cancel(request.path_params["id"])
        except ApiProblem as problem:
            return view(error=f"not cancelled: {_reason(problem)}")
        return redirect("/appointments")

    @endpoint
    async def appointments_json(request: Request) -> Response:
        return json_response(appointments_view(runtime), headers={"cache-control": "no-store"})

    return [
        Route("/appointments", appointments_page, methods=["GET"]),
        Route("/appointments", book, methods=["POST"]),
        Route("/appointments/{id}/move", move, methods=["POST"]),
        Route("/appointments/{id}/cancel", cancel, methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/inbox/appointments", appointments_json, methods=["GET"]),
    ]


def _reason(problem: ApiProblem) -> str:
    parts = [f"{i.get('path')} {i.get('message')}" for i in problem.issues or ()]
    return "; ".join(parts) or problem.message
