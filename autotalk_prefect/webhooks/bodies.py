"""From a delivery to JSON objects: JSON under any content type, a form body, a query string.

AutoTalk does not document the content type of a workflow's webhook step, so the receiver
does not insist on ``application/json``: a body that parses as a JSON object is accepted under
any content type, a JSON array is several events (one object each), and
``application/x-www-form-urlencoded`` is decoded into the same shape (dotted names nest:
``client.phone=...`` becomes ``{"client": {"phone": ...}}``), as is the query string of a GET
delivery. Only multipart is refused before the body is read. Everything is checked for what
Prefect can store (an array's elements one by one: a bad one does not sink the others).
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal
from urllib.parse import parse_qsl

from autotalk_prefect.webhooks.refusal import Refusal

MAX_DEPTH = 64
MAX_FORM_FIELDS = 1000
MAX_EVENTS = 1000  # elements of one JSON array delivery
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

BodyKind = Literal["json", "form", "multipart", "other"]


def body_kind(content_type: str | None) -> BodyKind:
    """How to read a body with this Content-Type (parameters such as charset are ignored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return "json"
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media.startswith("multipart/"):
        return "multipart"
    return "other"


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _parse_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError("a number is out of range")
    return value


def _parse_int(token: str) -> int:
    value = int(token)
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError("an integer does not fit in 64 bits")
    return value


def check_storable(value: Any, depth: int = 0) -> None:
    """Refuse what Prefect cannot store: deep nesting, lone surrogates, NUL characters."""
    if depth > MAX_DEPTH:
        raise Refusal(400, f"the JSON body is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise Refusal(400, "the JSON body holds a NUL character (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Refusal(400, "the JSON body holds an unpaired surrogate escape") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, depth + 1)
            check_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_storable(item, depth + 1)


def _load_json(raw: bytes) -> Any:
    if not raw.strip():
        raise Refusal(400, "the body is empty; send a JSON object")
    try:
        return json.loads(
            raw,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except RecursionError:
        raise Refusal(400, f"the JSON body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise Refusal(400, f"the body is not valid JSON: {exc}"[:300]) from None


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 Refusal naming what is wrong with it."""
    body = _load_json(raw)
    if not isinstance(body, dict):
        raise Refusal(400, f"the body must be a JSON object, got a JSON {type(body).__name__}")
    check_storable(body)
    return body


def parse_delivery(raw: bytes) -> dict[str, Any] | list[Any]:
    """The body as a JSON object (one event) or a JSON array (one event per element, each
    checked by the receiver on its own); anything else is a 400 Refusal."""
    body = _load_json(raw)
    if isinstance(body, dict):
        check_storable(body)
        return body
    if isinstance(body, list):
        if len(body) > MAX_EVENTS:
            raise Refusal(400, f"the JSON array holds {len(body)} events; at most {MAX_EVENTS}")
        return body
    raise Refusal(
        400,
        f"the body must be a JSON object (or an array of objects), got a JSON "
        f"{type(body).__name__}",
    )


def _place(body: dict[str, Any], name: str, value: str, what: str = "form field") -> None:
    """Put one field into ``body``; dotted names nest, a repeated name becomes a list."""
    parts = name.split(".")
    if not all(parts):
        raise Refusal(400, f"{what} name {name[:80]!r} has an empty part")
    node = body
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            taken = ".".join(parts[: depth + 1])
            raise Refusal(400, f"{what} {taken!r} is both a value and a group ({name!r})")
        node = child
    last = parts[-1]
    if last not in node:
        node[last] = value
    elif isinstance(node[last], dict):
        raise Refusal(400, f"{what} {name!r} is both a value and a group")
    elif isinstance(node[last], list):
        node[last].append(value)
    else:
        node[last] = [node[last], value]


def _fields(raw: bytes, what: str, where: str) -> dict[str, Any]:
    """``name=value&...`` (UTF-8, percent-encoded) as an object of strings, dotted names nested."""
    if not raw.strip():
        raise Refusal(400, f"the {where} is empty; send {what}s (name=value&...)")
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(
            text.strip(),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise Refusal(400, f"the {where} is not UTF-8") from None
    except ValueError as exc:
        raise Refusal(
            400, f"the {where} is not form-encoded (name=value&...): {exc}"[:300]
        ) from None
    body: dict[str, Any] = {}
    for name, value in pairs:
        _place(body, name, value, what)
    check_storable(body)
    return body


def parse_form(raw: bytes) -> dict[str, Any]:
    """An ``application/x-www-form-urlencoded`` body (UTF-8) as an object of strings."""
    return _fields(raw, "form field", "form body")


def parse_query(raw: bytes) -> dict[str, Any]:
    """A GET delivery's query string, read as a form body is (dotted names nest)."""
    return _fields(raw, "query parameter", "query string of a GET delivery")


def decode_body(raw: bytes, kind: BodyKind) -> dict[str, Any] | list[Any]:
    """The body as an object or an array of events, read as ``kind`` says; another type must
    parse as JSON."""
    if kind == "form":
        return parse_form(raw)
    if kind == "json":
        return parse_delivery(raw)
    try:
        return parse_delivery(raw)
    except Refusal as refusal:
        raise Refusal(
            415,
            f"{refusal.message}; send a JSON object (any content type) or "
            "application/x-www-form-urlencoded",
        ) from None
