"""The pieces of the onboarding flow (``flows/onboarding.py:onboard_contact``) that are not I/O.

Idempotency rests on two things derived from one key:

* the item's ``_id`` is ``sha256(key)[:24]`` (a valid 24-hex AutoTalk id), so a re-run's create
  answers 409 Conflict and the flow reuses the item instead of making a second one;
* the ledger ``onboarding-<that id>`` guards the send and the conversation note: ``pending`` is
  durable before the call, ``sent`` (with the ids) after it. A re-run that finds ``sent`` sends
  nothing; one that finds ``pending``/``unknown`` (a crash or a lost answer in between) does not
  re-send either, because the message may have gone out, unless the caller opts in.

The default key is a hash of the inputs (type, record, template, contact), so re-running with the
same inputs is a no-op; pass ``idempotency_key`` to tie it to your own identity instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "STEP_CONVERSATION",
    "STEP_LOG",
    "STEP_SEND",
    "LogState",
    "OnboardingResult",
    "SendState",
    "check_inputs",
    "default_idempotency_key",
    "differing_fields",
    "item_id_for_key",
    "resolve_contact_id",
    "summary_markdown",
]

#: ledger keys of the guarded steps
STEP_SEND = "send"  # ref: the message id
STEP_CONVERSATION = "send.conversation"  # ref: the conversation the message landed in
STEP_LOG = "log"  # ref: the id of the note processed into that conversation

SendState = Literal["sent", "already_sent", "unknown", "refused", "opted_out"]
LogState = Literal["logged", "already_logged", "unknown", "skipped"]


class OnboardingResult(BaseModel):
    """What one onboarding run did (and what an earlier run with the same key had done)."""

    idempotency_key: str = Field(description="The key this run was idempotent by.")
    dynadata_type: str = Field(description="The Dynadata type of the item.")
    item_id: str = Field(description="The item's _id (derived from the key unless given).")
    contact_id: str = Field(description="The contact the message went to.")
    message_id: str | None = Field(
        description="The welcome message's id (None when its outcome is unknown)."
    )
    conversation_id: str | None = Field(description="Where the message and the note were logged.")
    created: bool = Field(description="True if this run created the item (False: it existed).")
    sent: bool = Field(description="True if this run sent the message.")
    send_state: SendState = Field(
        description="'sent' (this run), 'already_sent' (an earlier run), 'unknown' (an "
        "earlier send may have gone out; not repeated) or 'opted_out' (the contact's id, phone "
        "or email is on the opt-out list: not sent)."
    )
    logged: bool = Field(description="True if this run logged the exchange in the conversation.")
    log_state: LogState = Field(
        description="'logged' (this run), 'already_logged' (an earlier run), 'unknown' (an "
        "earlier attempt may have logged it; not repeated) or 'skipped' (nothing was sent)."
    )
    ledger: str = Field(description="Where the send markers are stored.")
    name: str | None = Field(default=None, description="The record's `name`, when it has one.")
    refused: bool = Field(
        default=False,
        description="True if AutoTalk's validation refused the record: nothing was created or "
        "sent (``problems`` says why).",
    )
    problems: list[str] = Field(
        default_factory=list, description="Each validation problem, as 'field: message'."
    )

    @property
    def headline(self) -> str:
        """One line for the artifact's description and the run's log."""
        who = f"{self.name} ({self.item_id})" if self.name else self.item_id
        if self.refused:
            fields = ", ".join(dict.fromkeys(p.split(":")[0] for p in self.problems))
            return f"{self.dynadata_type} record refused by validation (bad fields: {fields})"
        item = "created" if self.created else "already existed"
        send = {
            "sent": "welcomed",
            "already_sent": "already welcomed",
            "unknown": "welcome outcome unknown",
            "refused": "not welcomed",
            "opted_out": "not welcomed (opted out)",
        }[self.send_state]
        return f"{self.dynadata_type} {who}: {item}, {send}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def default_idempotency_key(
    dynadata_type: str,
    record: Mapping[str, Any],
    message_template: str,
    contact_id: str | None,
    contact_field: str,
) -> str:
    """The key when the caller gives none: a sha256 of every input that shapes the outcome."""
    payload = {
        "type": dynadata_type,
        "record": dict(record),
        "template": message_template,
        "contact": contact_id,
        "contactField": contact_field,
    }
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def item_id_for_key(idempotency_key: str) -> str:
    """The item ``_id`` for a key: 24 lowercase hex characters (an AutoTalk/ObjectId-style id)."""
    return hashlib.sha256(f"autotalk-onboarding:{idempotency_key}".encode()).hexdigest()[:24]


def resolve_contact_id(
    dynadata_type: str,
    record: Mapping[str, Any],
    item_id: str,
    contact_id: str | None,
    contact_field: str,
) -> str:
    """Who gets the message: the explicit id; for ``clients`` the new item itself; otherwise the
    record's ``contact_field``. Raises ``ValueError`` naming what is missing."""
    if contact_id is not None:
        if not isinstance(contact_id, str) or not contact_id.strip():
            raise ValueError(f"contact_id must be a non-empty string, got {contact_id!r}")
        return contact_id
    if dynadata_type == "clients":
        return item_id
    value = record.get(contact_field)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"No contact to message: the {dynadata_type!r} record has no contact id in field "
            f"{contact_field!r} (got {value!r}). Pass contact_id, or contact_field naming the "
            "field that holds the contact's _id (for example 'clientId')."
        )
    return value


def check_inputs(dynadata_type: str, record: Any, idempotency_key: str | None) -> None:
    """Refuse malformed parameters before any call, naming the parameter."""
    if not isinstance(dynadata_type, str) or not dynadata_type.strip():
        raise ValueError(f"dynadata_type must be a non-empty string, got {dynadata_type!r}")
    if not isinstance(record, Mapping):
        raise ValueError(f"record must be a mapping of fields, got {type(record).__name__}")
    if "_id" in record and (not isinstance(record["_id"], str) or not record["_id"]):
        raise ValueError(f"record._id must be a non-empty string when given, got {record['_id']!r}")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not idempotency_key.strip()
    ):
        raise ValueError(f"idempotency_key must be a non-empty string, got {idempotency_key!r}")


def differing_fields(record: Mapping[str, Any], existing: Mapping[str, Any]) -> list[str]:
    """Fields of ``record`` whose value the stored item does not hold (changed since, or a key
    reused for another record)."""
    return sorted(k for k, v in record.items() if k != "_id" and existing.get(k) != v)


def summary_markdown(result: OnboardingResult, notes: Sequence[str] = ()) -> str:
    """The run's artifact: ids, the record's name and outcomes (the other record fields and the
    message text are customer data and stay out of Prefect)."""
    if result.refused:
        lines = [
            f"# Onboarding refused: {result.headline}",
            "",
            "AutoTalk's validate endpoint refused the record, so nothing was created and no "
            "message was sent. Fix these fields and run again:",
            "",
        ]
        lines += [f"- {problem}" for problem in result.problems]
        return "\n".join(lines) + "\n"
    send = {
        "refused": "not sent (record refused)",
        "sent": "sent by this run",
        "already_sent": "already sent by an earlier run (not sent again)",
        "unknown": "**outcome unknown** from an earlier run (not sent again)",
        "opted_out": "skipped: opted out (the contact is on the opt-out list)",
    }[result.send_state]
    log = {
        "logged": "logged by this run",
        "already_logged": "logged by an earlier run",
        "unknown": "**outcome unknown** from an earlier run (not repeated)",
        "skipped": "skipped (no confirmed send)",
    }[result.log_state]
    rows = [
        ("Dynadata type", f"`{result.dynadata_type}`"),
        ("Name", result.name or "-"),
        ("Item", f"`{result.item_id}` ({'created' if result.created else 'already existed'})"),
        ("Contact", f"`{result.contact_id}`"),
        ("Message", f"`{result.message_id}` - {send}" if result.message_id else send),
        ("Conversation", f"`{result.conversation_id}`" if result.conversation_id else "-"),
        ("Conversation note", log),
        ("Idempotency key", f"`{result.idempotency_key}`"),
        ("Ledger", result.ledger),
    ]
    lines = [f"# Onboarding: {result.headline}", ""]
    lines += [f"- **{name}**: {value}" for name, value in rows]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
