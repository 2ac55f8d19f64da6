"""What each AutoTalk endpoint sends and returns, without doing any HTTP.

The endpoint table (method, path template, idempotent) is the contract's own
(:func:`autotalk_prefect.api.contract.operation_index`): one table that the client sends by and the
retry policy reads. This module turns Python arguments into a :class:`Call` (checked ids encoded
as single path segments, bodies validated through the request models of models.py before any
request exists) and answers back into models. Shared by the sync and async clients.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from autotalk_prefect.api.contract import ContractOperation, operation_index
from autotalk_prefect.api.errors import MAX_BODY_CHARS, AutoTalkError, UnexpectedAnswerError
from autotalk_prefect.api.models import (
    CreateConversationRequest,
    ExecuteFunctionRequest,
    InboundMessage,
    ProcessMessagesRequest,
    SendMessageRequest,
    WireModel,
)
from autotalk_prefect.api.paging import RESERVED_FILTERS, extract_page

M = TypeVar("M", bound=BaseModel)

#: operationId (= client method name) -> method, path template, idempotent. From the contract.
ENDPOINTS: Mapping[str, ContractOperation] = operation_index()


@dataclass(frozen=True)
class Call:
    """One request, ready to send: ``path`` is relative to the base URL and already encoded."""

    name: str
    method: str
    path: str
    idempotent: bool
    json: Any = None
    params: Mapping[str, Any] | None = None


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
    name: str, *, json: Any = None, params: Mapping[str, Any] | None = None, **ids: str
) -> Call:
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


def send_message(contact_id: str, message: str, fields: Mapping[str, Any]) -> Call:
    request = SendMessageRequest(message=message, **fields)
    if not request.message.strip():
        raise ValueError("message must not be blank (it holds only whitespace)")
    body = _wire(request, "")
    return build("send_message", json=body, contactId=segment(contact_id, "contact_id"))


def create_conversation(fields: Mapping[str, Any]) -> Call:
    body = _wire(CreateConversationRequest(**fields), "")
    return build("create_conversation", json=body)


def process_messages(
    conversation_id: str, messages: Sequence[InboundMessage | Mapping[str, Any]]
) -> Call:
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise TypeError(
            "messages must be a sequence of InboundMessage or mappings, "
            f"got {type(messages).__name__}"
        )
    entries = [
        m if isinstance(m, InboundMessage) else InboundMessage.model_validate(m) for m in messages
    ]
    ProcessMessagesRequest(messages=entries)  # at least one message
    body = {"messages": [_wire(m, f"messages[{i}]") for i, m in enumerate(entries)]}
    return build("process_messages", json=body, id=segment(conversation_id, "conversation_id"))


def dynadata_create(type_: str, data: Mapping[str, Any]) -> Call:
    body = _mapping(data, "data")
    return build("create_dynadata_item", json=body, type=segment(type_, "type"))


def dynadata_update(type_: str, item_id: str, data: Mapping[str, Any]) -> Call:
    body = _mapping(data, "data")
    segment(item_id, "item_id")  # same checks as a path id
    if "_id" in body and body["_id"] != item_id:
        raise ValueError(f"data['_id'] ({body['_id']!r}) differs from item_id ({item_id!r})")
    body["_id"] = item_id
    return build("update_dynadata_item", json=body, type=segment(type_, "type"))


def dynadata_validate(type_: str, data: Mapping[str, Any]) -> Call:
    body = _mapping(data, "data")
    return build("validate_dynadata_item", json=body, type=segment(type_, "type"))


def function_body(args: Mapping[str, Any] | None) -> dict[str, Any]:
    return ExecuteFunctionRequest(args=_mapping(args, "args") if args is not None else {}).to_wire()


# ---- answers ---------------------------------------------------------------------------------


def parse(model: type[M], payload: Any, call: Call) -> M:
    """``payload`` as ``model`` (unknown fields kept), or an AutoTalkError naming the mismatch."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise UnexpectedAnswerError(
            f"unexpected answer: not a {model.__name__} ({exc.error_count()} problems: "
            f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']})",
            body=raw_body(payload),
            method=call.method,
            path=call.path,
        ) from None


def raw_body(payload: Any) -> str:
    """A decoded 2xx answer back as text, for the record (an answer only ever reaches the
    parsers after a success status: error statuses raise before)."""
    try:
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
    except (TypeError, ValueError):
        text = repr(payload)
    return text[:MAX_BODY_CHARS]


def parse_list(model: type[M], payload: Any, call: Call) -> list[M]:
    """A whole (unpaged) list answer: an envelope or a bare array."""
    try:
        items, _ = extract_page(payload)
    except ValueError as exc:
        raise AutoTalkError(
            f"unexpected answer: {exc}", method=call.method, path=call.path
        ) from None
    return [parse(model, item, call) for item in items]


def parse_object(payload: Any, call: Call) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise UnexpectedAnswerError(
            f"unexpected answer: expected a JSON object, got {type(payload).__name__}",
            body=raw_body(payload),
            method=call.method,
            path=call.path,
        )
    return payload


def parse_zod(payload: Any, call: Call) -> str:
    """The Zod source: ``{"zod": "..."}`` per the contract, or a text/plain body."""
    if isinstance(payload, str):
        return payload
    zod = payload.get("zod") if isinstance(payload, dict) else None
    if isinstance(zod, str):
        return zod
    raise AutoTalkError(
        "unexpected answer: no Zod schema text (expected {'zod': '...'} or text/plain)",
        method=call.method,
        path=call.path,
    )
