"""Wire models of the AutoTalk API, shared by the client and the sandbox.

Every model keeps unknown fields (``extra="allow"``): AutoTalk's real responses may carry more
than our contract knows, and dropping data silently is worse than carrying it. Field names follow
the wire (camelCase, ``_id``); Python code reads ``item.id`` because ``_id`` is an alias.
Serialise for the wire with ``model.to_wire()`` (aliases, no unset optionals).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WireModel(BaseModel):
    """Base of every wire model: tolerant of extra fields, populated by name or alias."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict AutoTalk sends or expects (aliases, ``None`` left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Company(WireModel):
    """GET /self: the company the API key belongs to."""

    id: str = Field(alias="_id")
    name: str
    email: str | None = None
    plan: str | None = None
    timezone: str | None = None
    createdAt: str | None = None


MessageRole = Literal["user", "assistant", "agent", "system"]


class Message(WireModel):
    """One message in a conversation (sent by us, by the customer, or by an assistant)."""

    id: str = Field(alias="_id")
    conversationId: str
    contactId: str | None = None
    channelId: str | None = None
    role: str = "agent"
    direction: str | None = None  # "inbound" (from the customer) or "outbound"
    message: str = ""
    mediaUrl: str | None = None
    status: str | None = None  # "sent", "delivered", "read", "failed", "received"
    createdAt: str | None = None


class Conversation(WireModel):
    """A conversation between the company and one contact on one channel."""

    id: str = Field(alias="_id")
    contactId: str | None = None
    channelId: str | None = None
    assistantId: str | None = None
    status: str | None = None  # "open" or "closed"
    subject: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None


class ProcessMessagesResult(WireModel):
    """POST /conversations/{id}/messages: the messages appended, including any assistant reply."""

    conversationId: str
    messages: list[Message] = Field(default_factory=list)


class DynadataFunction(WireModel):
    """A function a Dynadata type offers: on the whole type, or on one item."""

    name: str
    scope: Literal["type", "item"] = "type"
    description: str | None = None


class DynadataType(WireModel):
    """GET /dynadata/types entry."""

    name: str
    label: str | None = None
    builtIn: bool = False
    description: str | None = None
    functions: list[DynadataFunction] = Field(default_factory=list)


class DynadataItem(WireModel):
    """A Dynadata document; its fields are the type's own and live as extra fields."""

    id: str = Field(alias="_id")
    createdAt: str | None = None
    updatedAt: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The document's own fields (without ``_id`` and the timestamps)."""
        return dict(self.model_extra or {})


class ValidationIssue(WireModel):
    """One problem with a document: ``path`` names the field (dotted), ``message`` says why."""

    path: str
    message: str


class ValidationResult(WireModel):
    """POST /dynadata/type/{type}/validate answer."""

    valid: bool
    errors: list[ValidationIssue] = Field(default_factory=list)


class FunctionResult(WireModel):
    """executeFunction answer: ``result`` is whatever the function returns."""

    result: Any = None


class Channel(WireModel):
    """GET /integrations/channels entry: a connected channel (WhatsApp number, web chat, ...)."""

    id: str = Field(alias="_id")
    type: str
    name: str | None = None
    status: str | None = None
    phone: str | None = None


class Assistant(WireModel):
    """GET /assistants entry: a configured AI assistant."""

    id: str = Field(alias="_id")
    name: str
    description: str | None = None
    model: str | None = None
    active: bool | None = None


class ErrorBody(WireModel):
    """The error body the contract assumes; the client also reads ``error`` alone."""

    error: str
    message: str
    issues: list[ValidationIssue] | None = None
    requestId: str | None = None


class Page(WireModel):
    """The list envelope our contract assumes (the client also accepts other shapes)."""

    data: list[dict[str, Any]]
    total: int
    limit: int
    skip: int


# ---- request bodies -------------------------------------------------------------------------


class SendMessageRequest(WireModel):
    """POST /contacts/{contactId}/send_message body."""

    message: str = Field(min_length=1)
    channelId: str | None = None
    conversationId: str | None = None
    mediaUrl: str | None = None


class CreateConversationRequest(WireModel):
    """POST /conversations body."""

    contactId: str = Field(min_length=1)
    channelId: str | None = None
    assistantId: str | None = None
    subject: str | None = None


class InboundMessage(WireModel):
    """One message fed into POST /conversations/{id}/messages."""

    role: MessageRole = "user"
    message: str = Field(min_length=1)


class ProcessMessagesRequest(WireModel):
    """POST /conversations/{id}/messages body."""

    messages: list[InboundMessage] = Field(min_length=1)


class ExecuteFunctionRequest(WireModel):
    """executeFunction body: the function's arguments."""

    args: dict[str, Any] = Field(default_factory=dict)
