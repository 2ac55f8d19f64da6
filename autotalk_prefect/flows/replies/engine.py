"""The pieces of the reply flow (``flows/replies.py:handle_reply``) that are not I/O: the inbound
event, the rule table and how a rule is picked, and the outcome.

A rule matches on words of the customer's text (case-insensitive, whole words; a keyword of
several words matches that phrase), with ``match="any"`` (one keyword is enough) or ``"all"``.
A rule without keywords matches everything: the default, put it last. The first matching rule
wins and its actions run in order: ``update_field`` (set one field of the contact's record),
``run_function`` (an item function of the contact, e.g. ``addTag``), ``send_answer`` (a Jinja2
template over the contact's record, sent into the conversation the reply came from),
``opt_out`` / ``opt_in`` (put the contact on the ledger's opt-out list, or take it off).

Every answer goes through the consent check: a contact on the opt-out list gets none, except
the answer of a rule that itself opts the contact out (the unsubscribe confirmation, the one
message allowed after STOP).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autotalk_prefect.flows.templating import compile_template

__all__ = [
    "DEFAULT_RULES",
    "ActionOutcome",
    "InboundReplyEvent",
    "OptIn",
    "OptOut",
    "ReplyOutcome",
    "ReplyRule",
    "RunFunction",
    "SendAnswer",
    "UnknownContactError",
    "UpdateField",
    "match_rule",
    "parse_event",
    "summary_markdown",
]


class UnknownContactError(LookupError):
    """The event names a contact the Dynadata type does not hold."""


# ---- the event ----------------------------------------------------------------------------


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class EventClient(_Part):
    """The contact who wrote: its ``_id`` if the body has one, else what the workflow's
    placeholders give (``{{client.phone}}``, ``{{client.email}}``) to look the contact up by."""

    id: str | None = Field(
        default=None,
        alias="_id",
        min_length=1,
        title="Contact id",
        description="The contact's _id.",
    )
    name: str | None = Field(default=None, title="Name", description="The contact's name.")
    phone: str | None = Field(default=None, title="Phone")
    email: str | None = Field(default=None, title="Email")

    @field_validator("name", "phone", "email", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        """A placeholder with no value renders as ``""`` (or spaces): treat it as missing."""
        if isinstance(value, str):
            return value.strip() or None
        return value

    @property
    def lookup(self) -> list[tuple[str, str]]:
        """The fields to find the contact by, in order (phone, then email)."""
        return [(f, v) for f, v in (("phone", self.phone), ("email", self.email)) if v]


class EventMessage(_Part):
    """The inbound message."""

    id: str | None = Field(default=None, alias="_id", title="Message id")
    conversationId: str | None = Field(default=None, title="Conversation id")
    text: str = Field(default="", title="Text", description="What the customer wrote.")


class EventConversation(_Part):
    """The conversation the message arrived in."""

    id: str | None = Field(default=None, alias="_id", title="Conversation id")


class EventTrigger(_Part):
    """What fired the webhook."""

    channel: str | None = Field(default=None, title="Channel id")


class InboundReplyEvent(_Part):
    """The ``message.received`` webhook body (docs/contract.md), as the Prefect event's payload."""

    id: str | None = Field(
        default=None, title="Event id", description="The event id (redeliveries repeat it)."
    )
    # The event's name, or (from AutoTalk's ``{{event.date}}`` placeholder) ``{"date": ...}``.
    event: str | dict[str, Any] = Field(default="message.received", title="Event")
    occurredAt: str | None = Field(
        default=None, title="Occurred at", description="When it happened (ISO 8601)."
    )
    client: EventClient = Field(title="Contact")
    message: EventMessage = Field(title="Message")
    conversation: EventConversation | None = Field(default=None, title="Conversation")
    trigger: EventTrigger | None = Field(default=None, title="Trigger")

    @property
    def event_key(self) -> str:
        """What makes the event unique: its id, else the inbound message's id."""
        return self.dedupe_key(None)

    def dedupe_key(self, event_id: str | None) -> str:
        """The body's ``id``, else the inbound message's ``_id``, else ``event_id`` (the Prefect
        event's id: a body from AutoTalk's placeholders carries no id of its own)."""
        key = self.id or self.message.id or (event_id or "").strip()
        if not key:
            raise ValueError(
                "The event has no 'id', 'message._id' or event_id to dedupe it by: pass "
                'event_id="{{ event.id | string }}" in the deployment trigger\'s parameters.'
            )
        return key

    @property
    def conversation_id(self) -> str | None:
        return self.message.conversationId or (self.conversation.id if self.conversation else None)

    @property
    def channel_id(self) -> str | None:
        return self.trigger.channel if self.trigger else None


def parse_event(
    event: InboundReplyEvent | Mapping[str, Any] | str, event_id: str | None = None
) -> InboundReplyEvent:
    """The event from a model, a payload dict, or its JSON text; a clear error naming bad fields
    (or an event that can be neither deduplicated nor tied to a contact)."""
    if isinstance(event, InboundReplyEvent):
        return _checked(event, event_id)
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except ValueError as exc:
            raise ValueError(f"event is a string but not JSON: {exc}") from None
    if not isinstance(event, Mapping):
        raise ValueError(f"event must be the webhook payload (an object), got {type(event)}")
    try:
        parsed = InboundReplyEvent.model_validate(dict(event))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"event is not a message.received payload ({problems})") from None
    return _checked(parsed, event_id)


def _checked(event: InboundReplyEvent, event_id: str | None) -> InboundReplyEvent:
    event.dedupe_key(event_id)  # raises if the event cannot be deduplicated
    if not event.client.id and not event.client.lookup:
        raise ValueError(
            "The event's client has no '_id', 'phone' or 'email' to find the contact by: add "
            '"phone": "{{client.phone}}" to the client object of the workflow\'s body.'
        )
    return event


# ---- the rules ----------------------------------------------------------------------------


class UpdateField(BaseModel):
    """Set one top-level field of the contact's record (validated by the type's schema)."""

    kind: Literal["update_field"] = "update_field"
    field: str = Field(min_length=1, description="The field to set.")
    value: Any = Field(description="Its new value.")


class RunFunction(BaseModel):
    """Run an item-scope Dynadata function on the contact (e.g. ``addTag``)."""

    kind: Literal["run_function"] = "run_function"
    function: str = Field(min_length=1, description="The item function's name.")
    args: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")


class SendAnswer(BaseModel):
    """Answer in the reply's conversation with a template over the contact's record."""

    kind: Literal["send_answer"] = "send_answer"
    template: str = Field(min_length=1, description="Jinja2 text; record fields are names.")

    @field_validator("template")
    @classmethod
    def _compiles(cls, template: str) -> str:
        """A broken template is refused with the rule table, not when a reply first hits it."""
        compile_template(template)  # TemplateInvalidError (a ValueError) names the problem
        return template


class OptOut(BaseModel):
    """Put the contact (its id, phone and email) on the opt-out list: no campaign, welcome or
    answer reaches it again until it opts back in. The rule's own answer still goes out."""

    kind: Literal["opt_out"] = "opt_out"
    reason: str = Field(
        default="replied with an opt-out keyword",
        min_length=1,
        description="Kept with the entry (the matched keywords are added).",
    )


class OptIn(BaseModel):
    """Take the contact off the opt-out list (every entry holding its id, phone or email)."""

    kind: Literal["opt_in"] = "opt_in"


AnyAction = UpdateField | RunFunction | SendAnswer | OptOut | OptIn
Action = Annotated[AnyAction, Field(discriminator="kind")]


class ReplyRule(BaseModel):
    """Keywords -> actions. No keywords: matches every reply (a default rule, put it last)."""

    name: str = Field(min_length=1, description="Shown in logs, artifacts and the outcome.")
    keywords: list[str] = Field(default_factory=list, description="Words or phrases to look for.")
    match: Literal["any", "all"] = Field(
        default="any", description="One keyword is enough, or all."
    )
    actions: list[Action] = Field(default_factory=list, description="Run in order.")

    @model_validator(mode="before")
    @classmethod
    def _single_action(cls, data: Any) -> Any:
        """Accept ``action: {...}`` as shorthand for ``actions: [{...}]``."""
        if isinstance(data, Mapping) and "action" in data:
            data = dict(data)
            if "actions" in data:
                raise ValueError("give either 'action' or 'actions', not both")
            data["actions"] = [data.pop("action")]
        return data

    @field_validator("keywords")
    @classmethod
    def _clean_keywords(cls, keywords: list[str]) -> list[str]:
        cleaned = [" ".join(k.split()) for k in keywords]
        empty = [k for k, c in zip(keywords, cleaned, strict=True) if not c]
        if empty:
            raise ValueError(f"keywords must not be blank: {empty!r}")
        return cleaned

    def matches(self, text: str) -> list[str]:
        """The keywords found in ``text`` if the rule matches, else ``[]`` (a default rule
        matches with ``[]`` too: check :meth:`is_default`)."""
        found = [k for k in self.keywords if _keyword_pattern(k).search(text)]
        if self.match == "all" and len(found) != len(self.keywords):
            return []
        return found

    @property
    def is_default(self) -> bool:
        return not self.keywords

    @property
    def opts_out(self) -> bool:
        """The rule opts the contact out: its answers are the confirmation, allowed."""
        return any(isinstance(a, OptOut) for a in self.actions)


@lru_cache(maxsize=256)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in keyword.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def match_rule(rules: Sequence[ReplyRule], text: str) -> tuple[ReplyRule | None, list[str]]:
    """The first rule that matches ``text`` and the keywords it found (``None``: no rule)."""
    for rule in rules:
        if rule.is_default:
            return rule, []
        found = rule.matches(text)
        if found:
            return rule, found
    return None, []


#: The built-in table. STOP puts the contact on the ledger's opt-out list (what every send
#: checks) and START/YES takes it off. ``status`` values follow the clients schema
#: (lead/active/inactive/blocked): there is no "unsubscribed" status, so an opt-out also sets
#: ``inactive``. Item functions differ between accounts, so the defaults call none.
DEFAULT_RULES: list[ReplyRule] = [
    ReplyRule(
        name="unsubscribe",
        keywords=["stop", "unsubscribe", "opt out"],
        actions=[
            OptOut(),
            UpdateField(field="status", value="inactive"),
            SendAnswer(template="You're unsubscribed, {{ name }}. Reply START to opt back in."),
        ],
    ),
    ReplyRule(
        name="confirm",
        keywords=["yes", "confirm", "confirmed", "start"],
        actions=[
            OptIn(),
            UpdateField(field="status", value="active"),
            SendAnswer(template="Thanks {{ name }}, you're confirmed!"),
        ],
    ),
    ReplyRule(
        name="help",
        keywords=["help", "info"],
        actions=[
            SendAnswer(
                template="Hi {{ name }}, reply YES to confirm, STOP to unsubscribe, or just "
                "write your question and our team will answer."
            )
        ],
    ),
    ReplyRule(name="default", actions=[]),
]


# ---- the outcome --------------------------------------------------------------------------

ActionStatus = Literal["done", "already_done", "unknown", "failed", "skipped"]


class ActionOutcome(BaseModel):
    """One action of the matched rule and what became of it."""

    kind: str
    target: str = Field(description="The field, function or 'answer'.")
    status: ActionStatus = Field(
        description="'done' (this run), 'already_done' (an earlier delivery), 'unknown' (an "
        "earlier attempt may have applied it; not repeated), 'failed' or 'skipped' (an "
        "answer to a contact on the opt-out list: not sent)."
    )
    message_id: str | None = Field(default=None, description="The answer's message id.")
    detail: str | None = None


class ReplyOutcome(BaseModel):
    """What ``handle_reply`` decided and did for one inbound message."""

    event_id: str
    contact_id: str
    contact_name: str | None = Field(default=None, description="The contact's name, if known.")
    dynadata_type: str
    rule: str | None = Field(description="The matched rule's name (None: no rule matched).")
    matched_keywords: list[str] = Field(default_factory=list)
    duplicate: bool = Field(description="The event was handled before: nothing was done again.")
    actions: list[ActionOutcome] = Field(default_factory=list)
    ledger: str = Field(description="Where handled events are recorded.")

    @property
    def answer_message_ids(self) -> list[str]:
        return [a.message_id for a in self.actions if a.message_id]


def describe_action(action: AnyAction) -> str:
    if isinstance(action, UpdateField):
        return action.field
    if isinstance(action, RunFunction):
        return action.function
    if isinstance(action, (OptOut, OptIn)):
        return "opt-out list"
    return "answer"


def reply_headline(outcome: ReplyOutcome) -> str:
    """``"Reply from Ana Demo: rule stop, 2 actions done"``."""
    who = outcome.contact_name or outcome.contact_id
    if outcome.duplicate:
        return f"Reply from {who} already handled (redelivery): nothing done again"
    done_count = sum(a.status in ("done", "already_done") for a in outcome.actions)
    rule = f"rule {outcome.rule}" if outcome.rule else "no rule matched"
    return f"Reply from {who}: {rule}, {done_count} of {len(outcome.actions)} actions done"


def summary_markdown(outcome: ReplyOutcome) -> str:
    """The run's artifact: the decision and ids (never the customer's text or record)."""
    who = (
        f"{outcome.contact_name} (`{outcome.contact_id}`)"
        if outcome.contact_name
        else f"`{outcome.contact_id}`"
    )
    lines = [
        f"# {reply_headline(outcome)}",
        "",
        f"- Event: `{outcome.event_id}`",
        f"- Contact: {who} ({outcome.dynadata_type})",
        f"- Rule: {f'**{outcome.rule}**' if outcome.rule else 'none matched'}"
        + (
            f" (keywords: {', '.join(outcome.matched_keywords)})"
            if outcome.matched_keywords
            else ""
        ),
        f"- Ledger: {outcome.ledger}",
    ]
    if outcome.duplicate:
        lines.append("- Nothing was done again: this event id was handled before.")
    if outcome.actions:
        lines += ["", "| action | target | status | message |", "|---|---|---|---|"]
        lines += [
            f"| {a.kind} | `{a.target}` | {a.status} | {f'`{a.message_id}`' if a.message_id else '-'} |"
            for a in outcome.actions
        ]
    elif not outcome.duplicate:
        lines.append("- No action.")
    return "\n".join(lines) + "\n"
