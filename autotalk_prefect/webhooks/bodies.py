"""From the raw body to a JSON object: JSON under any content type, or a form-encoded body.

AutoTalk does not document the content type of a workflow's webhook step, so the receiver
does not insist on ``application/json``: a body that parses as a JSON object is accepted under
any content type, and ``application/x-www-form-urlencoded`` is decoded into the same shape
(dotted names nest: ``client.phone=...`` becomes ``{"client": {"phone": ...}}``). Only
multipart is refused before the body is read. Everything is checked for what Prefect can store.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal
from urllib.parse import parse_qsl

from autotalk_prefect.webhooks.refusal import Refusal

MAX_DEPTH = 64
MAX_FORM_FIELDS = 1000
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


def _check_storable(value: Any, depth: int = 0) -> None:
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
            _check_storable(key, depth + 1)
            _check_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item, depth + 1)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 Refusal naming what is wrong with it."""
    if not raw.strip():
        raise Refusal(400, "the body is empty; send a JSON object")
    try:
        body = json.loads(
            raw,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except RecursionError:
        raise Refusal(400, f"the JSON body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise Refusal(400, f"the body is not valid JSON: {exc}"[:300]) from None
    if not isinstance(body, dict):
        raise Refusal(400, f"the body must be a JSON object, got a JSON {type(body).__name__}")
    _check_storable(body)
    return body


def _place(body: dict[str, Any], name: str, value: str) -> None:
    """Put one form field into ``body``; dotted names nest, a repeated name becomes a list."""
    parts = name.split(".")
    if not all(parts):
        raise Refusal(400, f"form field name {name[:80]!r} has an empty part")
    node = body
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            taken = ".".join(parts[: depth + 1])
            raise Refusal(400, f"form field {taken!r} is both a value and a group ({name!r})")
        node = child
    last = parts[-1]
    if last not in node:
        node[last] = value
    elif isinstance(node[last], dict):
        raise Refusal(400, f"form field {name!r} is both a value and a group")
    elif isinstance(node[last], list):
        node[last].append(value)
    else:
        node[last] = [node[last], value]


def parse_form(raw: bytes) -> dict[str, Any]:
    """An ``application/x-www-form-urlencoded`` body (UTF-8) as an object of strings."""
    if not raw.strip():
        raise Refusal(400, "the body is empty; send form fields (name=value&...)")
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
        raise Refusal(400, "the form body is not UTF-8") from None
    except ValueError as exc:
        raise Refusal(400, f"the body is not form-encoded (name=value&...): {exc}"[:300]) from None
    body: dict[str, Any] = {}
    for name, value in pairs:
        _place(body, name, value)
    _check_storable(body)
    return body


def decode_body(raw: bytes, kind: BodyKind) -> dict[str, Any]:
    """The body as an object, read as ``kind`` says; another type must parse as JSON."""
    if kind == "form":
        return parse_form(raw)
    if kind == "json":
        return parse_body(raw)
    try:
        return parse_body(raw)
    except Refusal as refusal:
        raise Refusal(
            415,
            f"{refusal.message}; send a JSON object (any content type) or "
            "application/x-www-form-urlencoded",
        ) from None
