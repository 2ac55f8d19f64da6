"""What each AutoTalk endpoint sends and returns, without doing any HTTP.

The endpoint table (method, path template, idempotent) is the contract's own
(:func:`autotalk_prefect.api.contract.operation_index`): one table that the client sends by and the
retry policy reads. This module turns Python arguments into a :class:`Call` (checked ids encoded
as single path segments, bodies validated through the request models of models.py before any
request exists) and answers back into models. Shared by the sync and async clients.
"""

from __future__ import annotations

import contextlib
import json
import math
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from autotalk_prefect.api.contract import ContractOperation, operation_index
from autotalk_prefect.api.errors import MAX_BODY_CHARS, UnexpectedAnswerError
from autotalk_prefect.api.models import (
    ISSUE_KEYS,
    Assistant,
    Channel,
    Company,
    Conversation,
    CreateConversationRequest,
    DynadataItem,
    DynadataType,
    ExecuteFunctionRequest,
    FunctionResult,
    InboundMessage,
    Message,
    ProcessMessagesResult,
    SendMessageRequest,
    ValidationResult,
    WireModel,
)
from autotalk_prefect.api.paging import RESERVED_FILTERS, PageShapeError, extract_page

M = TypeVar("M", bound=WireModel)
T = TypeVar("T")

#: operationId (= client method name) -> method, path template, idempotent. From the contract.
ENDPOINTS: Mapping[str, ContractOperation] = operation_index()


def _as_is(payload: Any, call: Call[Any]) -> Any:
    return payload


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, ready to send: ``path`` is relative to the base URL and already encoded;
    ``read`` turns the decoded answer into what the client method returns."""

    name: str
    method: str
    path: str
    idempotent: bool
    json: Any = None
    params: Mapping[str, Any] | None = None
    read: Callable[[Any, Call[Any]], T] = _as_is

    def answer(self, payload: Any) -> T:
        """What the client method returns for this decoded answer."""
        return self.read(payload, self)


@dataclass(frozen=True)
class Listing(Generic[M]):
    """One paged listing: the endpoint, its checked query and path ids, how to read an item.

    ``probe_page`` is false where unknown query parameters are field filters (Dynadata lists),
    so auto paging must not send ``page=1`` there; ``names`` are the resource's envelope keys;
    ``paged`` is false for the lists the contract does not page (types, channels, assistants:
    followed all the same if the server pages them).
    """

    name: str
    model: type[M]
    query: Mapping[str, Any]
    ids: Mapping[str, str]
    names: tuple[str, ...] = ()
    probe_page: bool = True
    paged: bool = True

    def call(self, paging: Mapping[str, Any], url: str | None = None) -> Call[list[M]]:
        """The request for one page (``paging``: the pager's parameters; ``url``: the next-page
        link the server gave, already checked to stay on the base URL, sent as it is)."""
        model = self.model

        def read(items: Any, call: Call[Any]) -> list[M]:
            return [parse(model, item, call) for item in items]

        call = build(self.name, params={**self.query, **paging}, read=read, **self.ids)
        return call if url is None else replace(call, path=url, params=None)


#: characters a server or proxy may treat as a path separator once it decodes the path
SEPARATORS = ("/", "\\")


def segment(value: object, param: str) -> str:
    """``value`` percent-encoded as exactly one path segment.

    Everything outside the unreserved set is encoded (``?``, ``#``, ``%``, spaces ...). Values
    holding ``/`` or ``\\``, and values made only of dots, are refused: many servers and proxies
    decode ``%2F`` (and normalise ``..``) before routing, so such an id could reach another
    endpoint (``type="clients/item/ID"`` turns a type function into an item function). No
    AutoTalk id, type or function name holds them. Non-strings and empty strings are refused
    too, naming ``param``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{param} must not be empty")
    shown = repr(value) if len(value) <= 60 else repr(value[:60]) + "..."
    separator = next((c for c in SEPARATORS if c in value), None)
    if separator is not None:
        raise ValueError(
            f"{param} {shown} cannot be used in a URL path: it contains {separator!r} "
            "(servers may decode it and route the request elsewhere)"
        )
    if not value.strip("."):
        raise ValueError(f"{param} {shown} cannot be used in a URL path: it is only dots")
    try:
        return quote(value, safe="", encoding="utf-8", errors="strict")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{param} is not valid text (it cannot be UTF-8 encoded)") from exc


def build(
    name: str,
    *,
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    read: Callable[[Any, Call[Any]], T] = _as_is,
    **ids: str,
) -> Call[T]:
    """A :class:`Call` for endpoint ``name`` with already-encoded path segments ``ids``."""
    operation = ENDPOINTS[name]
    fields = {field for _, field, _, _ in string.Formatter().parse(operation.path) if field}
    if fields != set(ids):
        raise AssertionError(
            f"{name}: path {operation.path} needs {sorted(fields)}, got {sorted(ids)}"
        )
    return Call(
        name=name,
        method=operation.method,
        path=operation.path.format(**ids),
        idempotent=operation.idempotent,
        json=json,
        params=params,
        read=read,
    )


# ---- query filters ---------------------------------------------------------------------------


def _text(value: str, what: str) -> str:
    """``value`` if it can travel as UTF-8 (no unpaired surrogates), else a ValueError."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid text (it cannot be UTF-8 encoded)") from None
    return value


def _query_value(key: str, value: Any) -> str | list[str]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"filter {key!r} must be a finite number, got {value!r}")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        utc: datetime = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return _text(value, f"filter {key!r}")
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(_query_value(key, v)) for v in value]
    raise TypeError(
        f"filter {key!r} must be text, a number, a bool or a datetime, got {type(value).__name__}"
    )


def filters_query(filters: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword filters as query parameters (``None`` dropped, datetimes as ISO 8601 UTC)."""
    reserved = RESERVED_FILTERS.intersection(filters)
    if reserved:
        raise ValueError(
            f"{', '.join(sorted(reserved))} cannot be a filter: listings read every page "
            "themselves (use page_size= to choose the page length)"
        )
    return {
        _text(k, f"filter name {k!r}"): _query_value(k, v)
        for k, v in filters.items()
        if v is not None
    }


# ---- request bodies --------------------------------------------------------------------------


def _label(where: str, key: object) -> str:
    return f"{where}[{key!r}]" if where else str(key)


def _check_json(body: Mapping[Any, Any], where: str) -> None:
    """Refuse what cannot travel as strict JSON, naming the field (httpx would raise an
    anonymous error mid-request): objects JSON has no form for, NaN/inf, unpaired surrogates."""
    for key, value in body.items():
        label = _label(where, key)
        try:
            json.dumps({key: value}, allow_nan=False, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{label} is not valid text (it cannot be UTF-8 encoded)") from None
        except ValueError as exc:
            raise ValueError(f"{label} cannot be sent as JSON: {exc}") from None
        except TypeError as exc:
            raise TypeError(f"{label} cannot be sent as JSON: {exc}") from None


def _wire(model: WireModel, where: str) -> dict[str, Any]:
    """``model.to_wire()``, checked as JSON; a field JSON cannot carry is named."""
    try:
        body = model.to_wire()
    except PydanticSerializationError as exc:
        for key, value in model:
            try:
                to_jsonable_python(value)
            except PydanticSerializationError as field_exc:
                raise TypeError(
                    f"{_label(where, key)} cannot be sent as JSON: {field_exc}"
                ) from None
        raise TypeError(f"{where or 'the request body'} cannot be sent as JSON: {exc}") from None
    _check_json(body, where)
    return body


def _mapping(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{param} must be a mapping (dict), got {type(value).__name__}")
    body = dict(value)
    _check_json(body, param)
    return body


# ---- answers ---------------------------------------------------------------------------------

#: keys a single object may arrive wrapped in (besides the resource's own name)
OBJECT_ENVELOPES = ("data", "result", "item")


def _unwrap(payload: Any, markers: Sequence[str], names: Sequence[str]) -> Any:
    """The object inside a ``{"data": {...}}``-style envelope (``success`` flag or not), two
    levels at most; a payload holding any of ``markers`` (its own id ...) is the object itself."""
    for _ in range(2):
        if not isinstance(payload, dict) or any(k in payload for k in markers):
            return payload
        inner = next(
            (payload[k] for k in (*names, *OBJECT_ENVELOPES) if isinstance(payload.get(k), dict)),
            None,
        )
        if inner is None:
            return payload
        payload = inner
    return payload


def _problem(model: type[WireModel], exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the answer"
    return f"not a {model.__name__} ({exc.error_count()} problems: {where}: {first['msg']})"


def raw_body(payload: Any) -> str:
    """A decoded 2xx answer back as text, for the record (an answer only ever reaches the
    readers after a success status: error statuses raise before)."""
    try:
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
    except (TypeError, ValueError):
        text = repr(payload)
    return text[:MAX_BODY_CHARS]


def parse(model: type[M], payload: Any, call: Call[Any]) -> M:
    """``payload`` as ``model`` (unknown fields kept), or an AutoTalkError naming the mismatch."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise UnexpectedAnswerError(
            f"unexpected answer: {_problem(model, exc)}",
            body=raw_body(payload),
            method=call.method,
            path=call.path,
        ) from None


def _markers(model: type[WireModel]) -> tuple[str, ...]:
    """Keys that make a payload the object itself rather than an envelope around it."""
    if "id" in model.model_fields:
        return model.id_keys
    return (*model.model_fields, *ISSUE_KEYS)


def reader(model: type[M], *names: str) -> Callable[[Any, Call[Any]], M]:
    """How to read a fetched object: unwrapped from its envelope, then strictly ``model``."""

    def read(payload: Any, call: Call[Any]) -> M:
        found = parse(model, _unwrap(payload, _markers(model), names), call)
        found._raw_answer = payload
        return found

    return read


def write_reader(
    model: type[M], *names: str, known: Mapping[str, Any] | None = None
) -> Callable[[Any, Call[Any]], M]:
    """How to read the answer to a write that succeeded (2xx): never an error.

    Whatever could be read is kept: fields of the wrong type are left out (they stay in
    ``raw_answer``), an answer that is not an object gives an empty model, and ``known`` fills
    what the request itself says (the conversation a message went to ...) when the answer is
    silent about it.
    """

    def read(payload: Any, call: Call[Any]) -> M:
        body = _unwrap(payload, _markers(model), names)
        fields = dict(body) if isinstance(body, dict) else {}
        has_id = any(fields.get(k) not in (None, "") for k in model.id_keys)
        for key, value in (known or {}).items():
            missing = not has_id if key == "_id" else fields.get(key) in (None, "")
            if value is not None and missing:
                fields[key] = value
        found = _lenient(model, fields)
        known_id = (known or {}).get("_id")
        if known_id is not None and getattr(found, "id", None) in (None, ""):
            found = found.model_copy(update={"id": known_id})  # the answer's was unreadable
        found._raw_answer = payload
        return found

    return read


def _lenient(model: type[M], fields: dict[str, Any]) -> M:
    for _ in range(len(fields) + 1):
        try:
            return model.model_validate(fields, context={"lenient": True})
        except ValidationError as exc:
            bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
            if not bad & set(fields):
                break
            fields = {k: v for k, v in fields.items() if k not in bad}
    return model.model_validate({}, context={"lenient": True})


def read_object(payload: Any, call: Call[Any]) -> dict[str, Any]:
    """A JSON object answer (a JSON Schema), unwrapped from ``schema``/``data`` if enveloped."""
    body = _unwrap(payload, ("type", "properties", "$schema", "$ref", "anyOf"), ("schema",))
    if not isinstance(body, dict):
        raise UnexpectedAnswerError(
            f"unexpected answer: expected a JSON object, got {type(payload).__name__}",
            body=raw_body(payload),
            method=call.method,
            path=call.path,
        )
    return body


def read_zod(payload: Any, call: Call[Any]) -> str:
    """The Zod source: ``{"zod": "..."}`` per the contract (or under data/result/schema), or a
    text/plain body."""
    candidates = [payload]
    for _ in range(2):  # {"zod": ...}, {"data": {"zod": ...}}, {"success": true, "data": "..."}
        nested = candidates[-1]
        if not isinstance(nested, dict):
            break
        candidates += [nested.get(k) for k in ("zod", "schema", "data", "result")]
        candidates.append(next((v for v in candidates[1:] if isinstance(v, dict)), None))
    text = next((value for value in candidates if isinstance(value, str)), None)
    if text is not None:
        return text
    raise UnexpectedAnswerError(
        "unexpected answer: no Zod schema text (expected {'zod': '...'} or text/plain)",
        body=raw_body(payload),
        method=call.method,
        path=call.path,
    )


def read_processed(conversation_id: str) -> Callable[[Any, Call[Any]], ProcessMessagesResult]:
    """process_messages' answer: ``{conversationId, messages}``, a bare array of messages, an
    envelope around either, or nothing (a 2xx: the messages were taken)."""

    def read(payload: Any, call: Call[Any]) -> ProcessMessagesResult:
        body = _unwrap(payload, ("messages", "conversationId"), ("conversation",))
        fields: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        if isinstance(body, list) or (isinstance(body, dict) and "messages" not in body):
            with contextlib.suppress(PageShapeError):  # no list in it: no messages to show
                fields["messages"] = extract_page(body, ("messages",))[0]
        messages = fields.get("messages")
        if isinstance(messages, list):
            fields["messages"] = [m for m in messages if isinstance(m, dict)]
        fields.setdefault("conversationId", conversation_id)
        found = _lenient(ProcessMessagesResult, fields)
        if found.conversationId is None:
            found.conversationId = conversation_id
        found._raw_answer = payload
        return found

    return read


def read_function_result(payload: Any, call: Call[Any]) -> FunctionResult:
    """executeFunction's answer: ``{"result": ...}``, an envelope (``data`` with ``success``)
    around either, or any other value, which is then the result itself (a 2xx: the function
    ran)."""
    inner = payload
    if isinstance(inner, dict) and "data" in inner and set(inner) <= ENVELOPE_FLAGS:
        inner = inner["data"]
    if isinstance(inner, dict) and "result" in inner:
        found = FunctionResult.model_validate(inner)
    else:
        found = FunctionResult(result=inner)
    found._raw_answer = payload
    return found


#: keys an envelope carries besides its content
ENVELOPE_FLAGS = frozenset({"data", "success", "ok", "status", "message", "error", "requestId"})


def read_validation(payload: Any, call: Call[Any]) -> ValidationResult:
    """validate's answer: ``valid`` read or derived, issues from errors/issues/details."""
    return reader(ValidationResult)(payload, call)


# ---- the endpoints: one function per operation, building the Call and how to read it --------


def get_self() -> Call[Company]:
    return build("get_self", read=reader(Company, "company"))


def send_message(contact_id: str, message: str, fields: Mapping[str, Any]) -> Call[Message]:
    request = SendMessageRequest(message=message, **fields)
    if not request.message.strip():
        raise ValueError("message must not be blank (it holds only whitespace)")
    body = _wire(request, "")
    known = {"contactId": contact_id, "conversationId": body.get("conversationId")}
    return build(
        "send_message",
        json=body,
        read=write_reader(Message, "message", known=known),
        contactId=segment(contact_id, "contact_id"),
    )


def list_conversations(filters: Mapping[str, Any]) -> Listing[Conversation]:
    return Listing(
        "list_conversations", Conversation, filters_query(filters), {}, ("conversations",)
    )


def create_conversation(fields: Mapping[str, Any]) -> Call[Conversation]:
    body = _wire(CreateConversationRequest(**fields), "")
    known = {k: body.get(k) for k in ("contactId", "channelId", "assistantId", "subject")}
    return build(
        "create_conversation",
        json=body,
        read=write_reader(Conversation, "conversation", known=known),
    )


def process_messages(
    conversation_id: str, messages: Sequence[InboundMessage | Mapping[str, Any]]
) -> Call[ProcessMessagesResult]:
    """The messages as given: an InboundMessage is serialised, any mapping goes unchanged."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise TypeError(
            "messages must be a sequence of InboundMessage or mappings, "
            f"got {type(messages).__name__}"
        )
    if not messages:
        raise ValueError("messages must hold at least one message")
    entries: list[dict[str, Any]] = []
    for i, entry in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(entry, InboundMessage):
            entries.append(_wire(entry, where))
        elif isinstance(entry, Mapping):
            entries.append(_mapping(entry, where))
        else:
            raise TypeError(
                f"{where} must be an InboundMessage or a mapping, got {type(entry).__name__}"
            )
    conversation = segment(conversation_id, "conversation_id")
    return build(
        "process_messages",
        json={"messages": entries},
        read=read_processed(conversation_id),
        id=conversation,
    )


def list_messages(conversation_id: str, filters: Mapping[str, Any]) -> Listing[Message]:
    conversation = segment(conversation_id, "conversation_id")
    query = filters_query(filters)
    return Listing("list_messages", Message, query, {"id": conversation}, ("messages",))


def list_dynadata_types() -> Listing[DynadataType]:
    return Listing("list_dynadata_types", DynadataType, {}, {}, ("types",), paged=False)


def list_dynadata_items(type_: str, filters: Mapping[str, Any]) -> Listing[DynadataItem]:
    type_segment = segment(type_, "type")
    query = filters_query(filters)
    names = ("items", type_)
    return Listing("list_dynadata_items", DynadataItem, query, {"type": type_segment}, names, False)


def get_dynadata_item(type_: str, item_id: str) -> Call[DynadataItem]:
    return build(
        "get_dynadata_item",
        read=reader(DynadataItem, "item", type_),
        type=segment(type_, "type"),
        _id=segment(item_id, "item_id"),
    )


def create_dynadata_item(type_: str, data: Mapping[str, Any]) -> Call[DynadataItem]:
    body = _mapping(data, "data")
    return build(
        "create_dynadata_item",
        json=body,
        read=write_reader(DynadataItem, "item", type_, known={"_id": body.get("_id")}),
        type=segment(type_, "type"),
    )


def update_dynadata_item(type_: str, item_id: str, data: Mapping[str, Any]) -> Call[DynadataItem]:
    body = _mapping(data, "data")
    segment(item_id, "item_id")  # same checks as a path id
    if "_id" in body and body["_id"] != item_id:
        raise ValueError(f"data['_id'] ({body['_id']!r}) differs from item_id ({item_id!r})")
    body["_id"] = item_id
    return build(
        "update_dynadata_item",
        json=body,
        read=write_reader(DynadataItem, "item", type_, known={"_id": item_id}),
        type=segment(type_, "type"),
    )


def validate_dynadata_item(type_: str, data: Mapping[str, Any]) -> Call[ValidationResult]:
    body = _mapping(data, "data")
    return build(
        "validate_dynadata_item",
        json=body,
        read=read_validation,
        type=segment(type_, "type"),
    )


def get_dynadata_schema(type_: str) -> Call[dict[str, Any]]:
    return build("get_dynadata_schema", read=read_object, type=segment(type_, "type"))


def get_dynadata_zod_schema(type_: str) -> Call[str]:
    return build("get_dynadata_zod_schema", read=read_zod, type=segment(type_, "type"))


def function_body(args: Mapping[str, Any] | None) -> dict[str, Any]:
    """The arguments as given (any mapping, unchanged) in the contract's ``{"args": ...}``."""
    return ExecuteFunctionRequest(args=_mapping(args, "args") if args is not None else {}).to_wire()


def execute_dynadata_function(
    type_: str, function_name: str, args: Mapping[str, Any] | None
) -> Call[FunctionResult]:
    return build(
        "execute_dynadata_function",
        json=function_body(args),
        read=read_function_result,
        type=segment(type_, "type"),
        functionName=segment(function_name, "function_name"),
    )


def execute_dynadata_item_function(
    type_: str, item_id: str, function_name: str, args: Mapping[str, Any] | None
) -> Call[FunctionResult]:
    return build(
        "execute_dynadata_item_function",
        json=function_body(args),
        read=read_function_result,
        type=segment(type_, "type"),
        _id=segment(item_id, "item_id"),
        functionName=segment(function_name, "function_name"),
    )


def list_channels() -> Listing[Channel]:
    return Listing("list_channels", Channel, {}, {}, ("channels",), paged=False)


def list_assistants() -> Listing[Assistant]:
    return Listing("list_assistants", Assistant, {}, {}, ("assistants",), paged=False)
