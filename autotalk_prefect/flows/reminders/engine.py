"""The pieces of the reminder flows (``flows/reminders.py``) that are not I/O: reading an
appointment or conversation event out of a webhook payload, the offsets, the runs to schedule,
and the outcomes.

Times. An appointment time with an offset (``2026-12-04T10:00:00+01:00``, ``...Z``) is taken as
it is. A time without one (``2026-12-04T10:00:00``) is read in the appointment's IANA zone (the
``time_zone`` field), else in ``default_time_zone`` (the account's zone, a flow parameter);
with neither it is refused with an error naming the field, never guessed as UTC. A local time
that does not exist (the hour the clocks skip in spring) is refused; one that exists twice (the
hour repeated in autumn) is its first occurrence. Offsets are exact durations: "24h before" a
10:00 appointment the day after a DST change is 09:00 or 11:00 local.

Order. Every event carries a time (the payload's ``occurredAt``, else the Prefect event's
time); the newest event for an appointment stands, whatever order the deliveries arrive in
(:mod:`autotalk_prefect.ledger.schedule_state`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field

__all__ = [
    "APPOINTMENT",
    "FOLLOW_UP",
    "AppointmentEvent",
    "AppointmentFields",
    "FollowUpEvent",
    "FollowUpFields",
    "PlannedRun",
    "ReminderEventError",
    "ScheduleOutcome",
    "SendOutcome",
    "SendState",
    "format_duration",
    "get_path",
    "local_time",
    "map_appointment_event",
    "map_follow_up_event",
    "parse_duration",
    "parse_time",
    "plan_runs",
    "run_idempotency_key",
    "subject_tag",
]

APPOINTMENT = "appointment"
FOLLOW_UP = "follow-up"
Kind = Literal["appointment", "follow-up"]

DEFAULT_CANCEL_STATUSES = ("cancelled", "canceled", "deleted", "no-show", "noshow")
DEFAULT_CANCEL_EVENTS = ("appointment.cancelled", "appointment.canceled", "appointment.deleted")
DEFAULT_REPLY_EVENTS = ("message.received",)


class ReminderEventError(ValueError):
    """The event cannot be read (a field missing or bad): nothing was scheduled; the event stays
    in Prefect (the run's parameters and the events feed) to be fixed and replayed."""


# ---- durations ------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: str | float | int) -> timedelta:
    """``"24h"``, ``"1h30m"``, ``"90m"``, ``"45s"``, ``"2d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"a duration must be like '24h', '30m' or '45s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        parts = _DURATION.findall(text)
        if not text or "".join(n + u for n, u in parts).lower() != text.lower():
            raise ValueError(
                f"a duration must be like '24h', '1h30m', '90m' or '45s', got {value!r}"
            )
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """``timedelta(hours=24)`` -> ``"24h"``; ``90 s`` -> ``"1m30s"``."""
    total = round(delta.total_seconds())
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            out += f"{amount}{unit}"
    return out or "0s"


# ---- reading the payload -------------------------------------------------------------------


def get_path(body: Mapping[str, Any], dotted: str) -> Any:
    """``body["a"]["b"]`` for ``"a.b"``; None where a step is missing (blank text is missing:
    an AutoTalk placeholder without a value renders as ``""``)."""
    value: Any = body
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _zone(name: str, what: str) -> ZoneInfo:
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ReminderEventError(
            f"{what} {name!r} is not an IANA time zone (e.g. 'Europe/Madrid')"
        ) from None


def parse_time(
    value: Any, field: str, zone_name: str | None = None, zone_field: str | None = None
) -> datetime:
    """An aware time from ISO 8601 text (or epoch seconds); a naive one is read in
    ``zone_name``; without a zone it is refused (the message names ``field``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), timezone.utc)
    if not isinstance(value, str):
        raise ReminderEventError(
            f"field {field!r} must be an ISO 8601 time such as '2026-12-04T10:00:00+01:00', "
            f"got {type(value).__name__}"
        )
    text = value.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
    except ValueError:
        raise ReminderEventError(
            f"field {field!r} is not an ISO 8601 time ({value!r}); send e.g. "
            "'2026-12-04T10:00:00+01:00'"
        ) from None
    if when.tzinfo is not None and when.utcoffset() is not None:
        return when
    if not zone_name:
        where = f" or a zone in {zone_field!r}" if zone_field else ""
        raise ReminderEventError(
            f"field {field!r} has no UTC offset ({value!r}) and no time zone is known: send the "
            f"offset (…+01:00){where}, or set default_time_zone to the account's zone"
        )
    tz = _zone(zone_name, "time zone")
    local = when.replace(tzinfo=tz)
    if local.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != when:
        raise ReminderEventError(
            f"field {field!r}: {value!r} does not exist in {zone_name} (the clocks skip that "
            "hour): send the time with its UTC offset"
        )
    return local


def _text(payload: Mapping[str, Any], path: str) -> str | None:
    value = get_path(payload, path)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else None


def _required(payload: Mapping[str, Any], path: str, what: str, parameter: str) -> str:
    value = _text(payload, path)
    if value is None:
        raise ReminderEventError(
            f"field {path!r} ({what}) is missing or not text: add it to the workflow's body, "
            f"or set {parameter} to the path that holds it"
        )
    return value


def _event_time(payload: Mapping[str, Any], path: str, occurred: str | None) -> datetime:
    """The payload's event time (aware ISO 8601), else the Prefect event's, else now."""
    for value in (get_path(payload, path), occurred):
        if isinstance(value, str):
            try:
                return parse_time(value, path)
            except ReminderEventError:
                continue
    return datetime.now(timezone.utc)


def _event_key(payload: Mapping[str, Any], event_id: str | None) -> str:
    value = payload.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    key = value if isinstance(value, str) and value.strip() else (event_id or "").strip()
    if not key:
        raise ReminderEventError(
            "the event has no 'id' and no event_id: pass event_id=\"{{ event.id | string }}\" "
            "in the deployment trigger's parameters"
        )
    return key


def _short_name(event_name: str | None) -> str:
    """``autotalk.appointment.updated`` -> ``appointment.updated``."""
    name = (event_name or "").strip()
    return name.split(".", 1)[1] if name.startswith("autotalk.") else name


class AppointmentFields(BaseModel):
    """Where the appointment's parts are in the webhook body (dotted paths)."""

    appointment_id: str = Field(default="appointment._id", description="The appointment's id.")
    starts_at: str = Field(
        default="appointment.startsAt", description="When it starts (ISO 8601, with an offset)."
    )
    time_zone: str = Field(
        default="appointment.timeZone",
        description="Its IANA zone: reads a time without offset, and shows the local time.",
    )
    status: str = Field(default="appointment.status", description="Its status (cancelled...).")
    contact_id: str = Field(default="client._id", description="Who gets the reminder.")
    contact_name: str = Field(default="client.name", description="Their name (for the text).")
    contact_time_zone: str = Field(
        default="client.timeZone", description="Their IANA zone (the text's local time)."
    )
    occurred_at: str = Field(
        default="occurredAt", description="When the event happened (orders updates)."
    )


class FollowUpFields(BaseModel):
    """Where a conversation event's parts are in the webhook body (dotted paths)."""

    contact_id: str = Field(default="client._id", description="The contact (the silence's key).")
    contact_name: str = Field(default="client.name", description="Their name (for the text).")
    conversation_id: str = Field(
        default="conversation._id", description="The conversation to nudge in."
    )
    occurred_at: str = Field(default="occurredAt", description="When the event happened.")


@dataclass(frozen=True)
class AppointmentEvent:
    """One appointment event, read: what the newest state of the appointment would be."""

    event_key: str
    event_name: str
    occurred_at: datetime
    appointment_id: str
    starts_at: datetime | None  # None only for a cancellation without a time
    status: str | None
    cancelled: bool
    contact_id: str
    contact_name: str | None
    display_zone: str | None  # IANA zone for the local time in the text

    def data(self) -> dict[str, Any]:
        """What ``send_reminder`` needs to render the text (kept with the state)."""
        return {
            "contact_id": self.contact_id,
            "contact_name": self.contact_name,
            "time_zone": self.display_zone,
            "status": self.status,
        }


def map_appointment_event(
    payload: Mapping[str, Any] | str,
    *,
    fields: AppointmentFields | None = None,
    event_id: str | None = None,
    event_name: str | None = None,
    occurred: str | None = None,
    default_time_zone: str | None = None,
    cancel_statuses: Sequence[str] = DEFAULT_CANCEL_STATUSES,
    cancel_events: Sequence[str] = DEFAULT_CANCEL_EVENTS,
) -> AppointmentEvent:
    """The appointment event in ``payload``; :class:`ReminderEventError` naming the field (and
    the event id, when it is known) for anything missing or unreadable."""
    body = _payload(payload)
    key = _event_key(body, event_id)
    try:
        return _appointment(
            body,
            key,
            fields or AppointmentFields(),
            event_name,
            occurred,
            default_time_zone,
            cancel_statuses,
            cancel_events,
        )
    except ReminderEventError as exc:
        raise ReminderEventError(f"Event {key}: {exc}; nothing was scheduled") from None


def _appointment(
    body: Mapping[str, Any],
    key: str,
    f: AppointmentFields,
    event_name: str | None,
    occurred: str | None,
    default_time_zone: str | None,
    cancel_statuses: Sequence[str],
    cancel_events: Sequence[str],
) -> AppointmentEvent:
    name = _short_name(event_name or _text(body, "event"))
    appointment_id = _required(body, f.appointment_id, "the appointment id", "appointment_id")
    contact_id = _required(body, f.contact_id, "the contact's _id", "contact_id")
    status = _text(body, f.status)
    cancelled = name in {_short_name(e) for e in cancel_events} or (
        status is not None and status.lower() in {s.lower() for s in cancel_statuses}
    )
    zone = _text(body, f.time_zone)
    if zone is not None:
        _zone(zone, f"field {f.time_zone!r}")
    raw_start = get_path(body, f.starts_at)
    starts_at: datetime | None = None
    if raw_start is not None or not cancelled:
        if raw_start is None:
            raise ReminderEventError(
                f"field {f.starts_at!r} (the appointment time) is missing: add it to the "
                "workflow's body, or set starts_at to the path that holds it"
            )
        starts_at = parse_time(raw_start, f.starts_at, zone or default_time_zone, f.time_zone)
    contact_zone = _text(body, f.contact_time_zone)
    if contact_zone is not None:
        _zone(contact_zone, f"field {f.contact_time_zone!r}")
    display = contact_zone or zone or default_time_zone
    return AppointmentEvent(
        event_key=key,
        event_name=name or "appointment",
        occurred_at=_event_time(body, f.occurred_at, occurred),
        appointment_id=appointment_id,
        starts_at=starts_at,
        status=status,
        cancelled=cancelled,
        contact_id=contact_id,
        contact_name=_text(body, f.contact_name),
        display_zone=display,
    )


@dataclass(frozen=True)
class FollowUpEvent:
    """One conversation event: opens (or keeps) a silence, or ends it (a reply)."""

    event_key: str
    event_name: str
    occurred_at: datetime
    contact_id: str
    contact_name: str | None
    conversation_id: str | None
    answered: bool

    def data(self) -> dict[str, Any]:
        return {
            "contact_id": self.contact_id,
            "contact_name": self.contact_name,
            "conversation_id": self.conversation_id,
        }


def map_follow_up_event(
    payload: Mapping[str, Any] | str,
    *,
    fields: FollowUpFields | None = None,
    event_id: str | None = None,
    event_name: str | None = None,
    occurred: str | None = None,
    reply_events: Sequence[str] = DEFAULT_REPLY_EVENTS,
) -> FollowUpEvent:
    """The conversation event in ``payload`` (a reply when its name is in ``reply_events``)."""
    body = _payload(payload)
    key = _event_key(body, event_id)
    f = fields or FollowUpFields()
    try:
        name = _short_name(event_name or _text(body, "event"))
        if not name:
            raise ReminderEventError(
                'the event\'s name is unknown: pass event_name="{{ event.event }}" in the '
                "deployment trigger's parameters"
            )
        conversation = _text(body, f.conversation_id) or _text(body, "message.conversationId")
        return FollowUpEvent(
            event_key=key,
            event_name=name,
            occurred_at=_event_time(body, f.occurred_at, occurred),
            contact_id=_required(body, f.contact_id, "the contact's _id", "contact_id"),
            contact_name=_text(body, f.contact_name),
            conversation_id=conversation,
            answered=name in {_short_name(e) for e in reply_events},
        )
    except ReminderEventError as exc:
        raise ReminderEventError(f"Event {key}: {exc}; nothing was scheduled") from None


def _payload(payload: Mapping[str, Any] | str) -> Mapping[str, Any]:
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise ReminderEventError(f"event is a string but not JSON: {exc}") from None
    if not isinstance(payload, Mapping):
        raise ReminderEventError(
            f"event must be the webhook payload (an object), got {type(payload).__name__}"
        )
    return payload


# ---- planning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One reminder to have scheduled: its label (``24h``), when it is due, and its basis."""

    label: str
    due: datetime
    basis: str


def plan_runs(
    starts_at: datetime, offsets: Sequence[str], now: datetime
) -> tuple[list[PlannedRun], list[str]]:
    """The runs due in the future, and one line per offset already past (skipped)."""
    planned: list[PlannedRun] = []
    skipped: list[str] = []
    basis = starts_at.astimezone(timezone.utc).isoformat()
    for offset in dict.fromkeys(offsets):
        delta = parse_duration(offset)
        label = format_duration(delta)
        due = starts_at - delta
        if due <= now:
            skipped.append(
                f"the {label} reminder was due at {due.astimezone(timezone.utc).isoformat()}, "
                "already past: skipped"
            )
        else:
            planned.append(PlannedRun(label, due.astimezone(timezone.utc), basis))
    return planned, skipped


def run_idempotency_key(kind: str, subject: str, basis: str, label: str, version: str) -> str:
    """The Prefect idempotency key of one scheduled run: a redelivered event (same state
    version) gets the same run; a later event that brings the same time back gets a new one."""
    raw = "\x00".join((kind, subject, basis, label, version))
    return f"autotalk-{kind}-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def subject_tag(kind: str, subject: str) -> str:
    """The tag every scheduled run of one appointment (or contact's silence) carries."""
    digest = hashlib.sha256(subject.encode()).hexdigest()[:16]
    return f"{kind}:{digest}"


def local_time(when: datetime, zone_name: str | None) -> datetime:
    """``when`` in the contact's zone (else its own offset)."""
    if not zone_name:
        return when
    return when.astimezone(ZoneInfo(zone_name))


# ---- outcomes ------------------------------------------------------------------------------


class ScheduleOutcome(BaseModel):
    """What one scheduling run decided: the state it saw, and the runs kept, made, cancelled."""

    kind: str
    subject: str = Field(description="The appointment id, or the contact id of a silence.")
    event_id: str
    event_name: str
    applied: Literal["new", "newer", "duplicate", "older", "unchanged"] = Field(
        description="How the event compared with the last known state."
    )
    status: str = Field(description="The state that stands: scheduled, cancelled, waiting...")
    basis: str | None = Field(default=None, description="The time (or silence) the runs are for.")
    scheduled: list[dict[str, str]] = Field(default_factory=list)
    kept: list[dict[str, str]] = Field(default_factory=list)
    cancelled: list[str] = Field(default_factory=list, description="Flow run ids cancelled.")
    skipped: list[str] = Field(default_factory=list, description="Offsets already past.")
    notes: list[str] = Field(default_factory=list)

    @property
    def headline(self) -> str:
        made, kept, gone = len(self.scheduled), len(self.kept), len(self.cancelled)
        return (
            f"{self.kind} {self.subject}: {self.status} ({self.applied} event); "
            f"{made} scheduled, {kept} kept, {gone} cancelled, {len(self.skipped)} past"
        )

    def markdown(self) -> str:
        lines = [f"# {self.headline}", "", f"- Event: `{self.event_id}` ({self.event_name})"]
        lines.append(f"- For: {self.basis or '-'}")
        if self.scheduled or self.kept:
            lines += ["", "| reminder | due (UTC) | flow run | |", "|---|---|---|---|"]
            for row, what in [(r, "scheduled") for r in self.scheduled] + [
                (r, "kept") for r in self.kept
            ]:
                lines.append(f"| {row['label']} | {row['due']} | `{row['flow_run_id']}` | {what} |")
        lines += [f"- Cancelled run `{run}`" for run in self.cancelled]
        lines += [f"- {line}" for line in [*self.skipped, *self.notes]]
        return "\n".join(lines) + "\n"


SendState = Literal["sent", "already_sent", "unknown", "skipped", "held"]


class SendOutcome(BaseModel):
    """What one ``send_reminder`` run did: sent, or why not."""

    kind: str
    subject: str
    label: str
    state: SendState = Field(
        description="sent, already_sent (an earlier run), unknown (an earlier attempt may have "
        "sent it), skipped (moved, cancelled, answered: the reason says), held (the claim "
        "was refused: another run, or a guard of the ledger)"
    )
    reason: str
    message_id: str | None = None
    contact_id: str | None = None

    @property
    def headline(self) -> str:
        return f"{self.kind} {self.subject} {self.label}: {self.state} ({self.reason})"
