"""Appointments in the sandbox: book, move and cancel one, and the webhook each fires.

AutoTalk's *Appointment scheduled/updated* hooks, offline: ``POST /_sandbox/appointments``
books (``appointment.scheduled``), ``PATCH /_sandbox/appointments/{id}`` moves
(``appointment.updated`` with the new ``startsAt``), ``POST /_sandbox/appointments/{id}/cancel``
cancels (``appointment.updated`` with ``status: cancelled``), ``GET /_sandbox/appointments``
lists them. The body is the one docs/reminders.md tells users to compose, so the
``schedule_reminders`` deployment reads it with its defaults. Appointments are forgotten when
the sandbox is reset.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autotalk_prefect.sandbox.http import endpoint, json_response, read_object
from autotalk_prefect.sandbox.problems import ApiProblem, not_found, validation_failed
from autotalk_prefect.sandbox.runtime import SandboxRuntime

__all__ = ["AppointmentBook", "appointment_routes", "book_of"]

Record = dict[str, Any]


def _invalid(message: str, path: str) -> ApiProblem:
    return validation_failed([{"path": path, "message": message}])


def _aware(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _invalid("must be an ISO 8601 time with its offset", path)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("must be an ISO 8601 time with its offset", path) from None
    if when.utcoffset() is None:
        raise _invalid("needs a UTC offset (e.g. +01:00 or Z)", path)
    return value


class AppointmentBook:
    """One sandbox's appointments; every change fires its webhook through the runtime."""

    def __init__(self, runtime: SandboxRuntime) -> None:
        self.runtime = runtime
        self.lock = threading.Lock()
        self.appointments: dict[str, Record] = {}

    def _fire(self, event: str, appointment: Record) -> None:
        state = self.runtime.state
        contact = state.get_item("clients", appointment["contactId"])
        client = {k: contact[k] for k in ("_id", "name", "phone") if k in contact}
        if appointment.get("clientTimeZone"):
            client["timeZone"] = appointment["clientTimeZone"]
        body = {
            "client": client,
            "appointment": {
                k: appointment[k]
                for k in ("_id", "startsAt", "timeZone", "status")
                if k in appointment
            },
        }
        self.runtime.webhooks.emit(event, body)

    def book(self, body: Record) -> Record:
        contact_id = body.get("contactId")
        if not isinstance(contact_id, str) or not contact_id:
            raise _invalid("is required", "contactId")
        self.runtime.state.get_item("clients", contact_id)  # 404 for a stranger
        appointment: Record = {
            "_id": "apt_" + self.runtime.state.ids.new(),
            "contactId": contact_id,
            "startsAt": _aware(body.get("startsAt"), "startsAt"),
            "status": "scheduled",
        }
        for name in ("timeZone", "clientTimeZone"):
            if isinstance(body.get(name), str) and body[name]:
                appointment[name] = body[name]
        with self.lock:
            self.appointments[appointment["_id"]] = appointment
        self._fire("appointment.scheduled", appointment)
        return dict(appointment)

    def _get(self, appointment_id: str) -> Record:
        found = self.appointments.get(appointment_id)
        if found is None:
            raise not_found(f"no appointment with _id {appointment_id!r}")
        return found

    def move(self, appointment_id: str, body: Record) -> Record:
        starts = _aware(body.get("startsAt"), "startsAt")
        with self.lock:
            moved = {**self._get(appointment_id), "startsAt": starts, "status": "scheduled"}
            self.appointments[appointment_id] = moved
        self._fire("appointment.updated", moved)
        return dict(moved)

    def cancel(self, appointment_id: str) -> Record:
        with self.lock:
            cancelled = {**self._get(appointment_id), "status": "cancelled"}
            self.appointments[appointment_id] = cancelled
        self._fire("appointment.updated", cancelled)
        return dict(cancelled)

    def list(self) -> list[Record]:
        with self.lock:
            return [dict(a) for a in self.appointments.values()]


_books: WeakKeyDictionary[SandboxRuntime, tuple[int, AppointmentBook]] = WeakKeyDictionary()


def book_of(runtime: SandboxRuntime) -> AppointmentBook:
    """The runtime's appointments (a fresh book after each reset of its webhook log)."""
    generation = runtime.webhooks.generation
    held = _books.get(runtime)
    if held is None or held[0] != generation:
        held = (generation, AppointmentBook(runtime))
        _books[runtime] = held
    return held[1]


def appointment_routes(runtime: SandboxRuntime) -> list[Route]:
    """The admin routes for appointments (mounted beside ``admin_routes``)."""

    @endpoint
    async def create(request: Request) -> Response:
        return json_response(book_of(runtime).book(await read_object(request)), status=201)

    @endpoint
    async def listing(request: Request) -> Response:
        return json_response({"data": book_of(runtime).list()})

    @endpoint
    async def move(request: Request) -> Response:
        body = await read_object(request)
        return json_response(book_of(runtime).move(request.path_params["id"], body))

    @endpoint
    async def cancel(request: Request) -> Response:
        return json_response(book_of(runtime).cancel(request.path_params["id"]))

    return [
        Route("/_sandbox/appointments", create, methods=["POST"]),
        Route("/_sandbox/appointments", listing, methods=["GET"]),
        Route("/_sandbox/appointments/{id}", move, methods=["PATCH"]),
        Route("/_sandbox/appointments/{id}/cancel", cancel, methods=["POST"]),
    ]
