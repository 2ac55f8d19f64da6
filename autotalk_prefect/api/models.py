"""Wire models of the AutoTalk API, shared by the client and the sandbox.

AutoTalk publishes its paths, not its bodies, so every model is a tolerant reading of an answer:
a model requires only what the library itself must have to go on (an id it passes back, such as
a conversation's or an item's), every other field is optional, and unknown fields are kept
(``extra="allow"``: dropping data silently is worse than carrying it). Ids are read from ``_id``
or ``id`` (messages also from ``messageId`` / ``message_id``); Python code reads ``item.id``.

A model decoded from the answer to a write (send_message, create_*, process_messages,
executeFunction) never fails: a 2xx means the write was applied, so whatever could be read is
returned, the id possibly ``None``, and :attr:`WireModel.raw_answer` keeps the answer as it came.
Serialise for the wire with ``model.to_wire()`` (aliases, no unset optionals).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

#: where an id may be found, in order, for every model that has one
ID_KEYS = ("_id", "id")


class WireModel(BaseModel):
    """Base of every wire model: tolerant of extra fields, populated by name or alias."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    #: keys an answer may carry this model's id under (``_id`` first)
    id_keys: ClassVar[tuple[str, ...]] = ID_KEYS
    #: the id is required unless the model is read from a write's answer (see ``lenient``)
    id_required: ClassVar[bool] = False

    _raw_answer: Any = PrivateAttr(default=None)

    @property
    def raw_answer(self) -> Any:
        """The decoded answer this model was read from (JSON value, text, or ``None`` for an
        empty body); ``None`` for list items and models built in code."""
        return self._raw_answer

    @model_validator(mode="before")
    @classmethod
    def _find_id(cls, data: Any, info: ValidationInfo) -> Any:
        """The id under ``_id`` whichever alternative key carried it; refused when missing and
        required (never for a write's answer: ``context={"lenient": True}``)."""
        if not isinstance(data, dict) or "id" not in cls.model_fields:
            return data
        key = next((k for k in cls.id_keys if data.get(k) not in (None, "")), None)
        if key is None:
            lenient = bool(info.context and info.context.get("lenient"))
            if cls.id_required and not lenient:
                raise ValueError(f"no id (looked for {', '.join(cls.id_keys)})")
            return data
        value = data[key]
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a numeric id is passed back as text
        found = {k: v for k, v in data.items() if not (k == "id" and key == "id")}
        return {**found, "_id": value}

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict AutoTalk sends or expects (aliases, ``None`` left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Company(WireModel):
    """GET /self: the company the API key belongs to (nothing in it is passed back)."""

    id: str | None = Field(default=None, alias="_id")
    name: str | None = None
    email: str | None = None
    plan: str | None = None
    timezone: str | None = None
    createdAt: str | None = None


MessageRole = Literal["user", "assistant", "agent", "system"]


class Message(WireModel):
    """One message in a conversation (sent by us, by the customer, or by an assistant).

    No message id is ever passed back to AutoTalk, so ``id`` may be ``None`` (a send whose
    answer carried none); ``conversationId`` too.
    """

    id_keys: ClassVar[tuple[str, ...]] = (*ID_KEYS, "messageId", "message_id")

    id: str | None = Field(default=None, alias="_id")
    conversationId: str | None = None
    contactId: str | None = None
    channelId: str | None = None
    role: str = "agent"
    direction: str | None = None  # "inbound" (from the customer) or "outbound"
    message: str = ""
    mediaUrl: str | None = None
    status: str | None = None  # "sent", "delivered", "read", "failed", "received"
    createdAt: str | None = None


class Conversation(WireModel):
    """A conversation between the company and one contact on one channel.

    ``id`` is passed back (its messages are listed by it), so a listed or fetched conversation
    must have one; only the answer to create_conversation may lack it (then ``None``).
    """

    id_required: ClassVar[bool] = True

    id: str | None = Field(default=None, alias="_id")
    contactId: str | None = None
    channelId: str | None = None
    assistantId: str | None = None
    status: str | None = None  # "open" or "closed"
    subject: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None


class ProcessMessagesResult(WireModel):
    """POST /conversations/{id}/messages: the messages appended, including any assistant reply.

    ``conversationId`` is the conversation the call was made for when the answer omits it.
    """

    conversationId: str | None = None
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
    """A Dynadata document; its fields are the type's own and live as extra fields.

    ``id`` is passed back (get, update, item functions): a read item must have one. The answer
    to a create or an update may lack it: the client then fills it from the request (the
    update's ``item_id``, the create body's ``_id``), and only a create without ``_id`` whose
    answer names none leaves it ``""`` (the item was created; ``raw_answer`` has the answer).
    """

    id_required: ClassVar[bool] = True

    id: str = Field(default="", alias="_id")
    createdAt: str | None = None
    updatedAt: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The document's own fields (without ``_id`` and the timestamps)."""
        return dict(self.model_extra or {})


class ValidationIssue(WireModel):
    """One problem with a document: ``path`` names the field (dotted), ``message`` says why.

    Read from ``{"path": "a.b", "message": ...}``, Zod's ``{"path": ["a", 0, "b"], ...}``
    (joined with ``.``), ``field``/``loc`` or a JSON pointer ``#/a/0/b`` for the path,
    ``error``/``msg``/``detail`` for the message, or a bare string (the message, no path).
    """

    path: str = ""
    message: str = ""

    @model_validator(mode="before")
    @classmethod
    def _tolerant(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"path": "", "message": data}
        if not isinstance(data, dict):
            return data
        path = next(
            (data[k] for k in ("path", "field", "loc", "pointer") if data.get(k) is not None), ""
        )
        if isinstance(path, str) and path.startswith("#/"):  # a JSON pointer (RFC 7807 errors)
            path = path[2:].split("/")
        if isinstance(path, (list, tuple)):
            path = ".".join(str(part) for part in path)
        message = next(
            (data[k] for k in ("message", "error", "msg", "detail") if data.get(k) is not None),
            "",
        )
        rest = {k: v for k, v in data.items() if k not in ("path", "message")}
        return {**rest, "path": str(path), "message": str(message)}


#: keys an answer or an error body may carry its issues under, in order
ISSUE_KEYS = ("issues", "errors", "details")


def issues_from(value: Any) -> list[ValidationIssue]:
    """The issues in ``value`` (a list of issue objects or strings; anything else: none)."""
    if not isinstance(value, list):
        return []
    return [
        ValidationIssue.model_validate(entry) for entry in value if isinstance(entry, (dict, str))
    ]


class ValidationResult(WireModel):
    """POST /dynadata/type/{type}/validate answer.

    ``valid`` is read, or else derived: ``success`` when given, otherwise "no issues". Issues
    come from ``errors``, ``issues`` or ``details`` (string or array paths).
    """

    valid: bool = True
    errors: list[ValidationIssue] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _tolerant(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        found: Any = next((data[k] for k in ISSUE_KEYS if isinstance(data.get(k), list)), [])
        errors = issues_from(found)
        valid = data.get("valid")
        if not isinstance(valid, bool):
            success = data.get("success")
            valid = success if isinstance(success, bool) and not errors else not errors
        return {**data, "valid": valid, "errors": errors}


class FunctionResult(WireModel):
    """executeFunction answer: ``result`` is whatever the function returns."""

    result: Any = None


class Channel(WireModel):
    """GET /integrations/channels entry: a connected channel (WhatsApp number, web chat, ...)."""

    id_required: ClassVar[bool] = True

    id: str | None = Field(default=None, alias="_id")
    type: str | None = None
    name: str | None = None
    status: str | None = None
    phone: str | None = None


class Assistant(WireModel):
    """GET /assistants entry: a configured AI assistant."""

    id_required: ClassVar[bool] = True

    id: str | None = Field(default=None, alias="_id")
    name: str | None = None
    description: str | None = None
    model: str | None = None
    active: bool | None = None


class ErrorBody(WireModel):
    """The error body the contract assumes; the client also reads ``error`` alone."""

    error: str | None = None
    message: str | None = None
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
    """One message fed into POST /conversations/{id}/messages: an optional typed helper.

    ``process_messages`` also takes any mapping and sends it unchanged.
    """

    role: MessageRole = "user"
    message: str = Field(min_length=1)


class ProcessMessagesRequest(WireModel):
    """POST /conversations/{id}/messages body, as the contract guesses it (a typed helper)."""

    messages: list[InboundMessage] = Field(min_length=1)


class ExecuteFunctionRequest(WireModel):
    """executeFunction body: the function's arguments."""

    args: dict[str, Any] = Field(default_factory=dict)
