"""The sandbox's Dynadata types as JSON Schemas, their validation, and JSON Schema -> Zod text.

The schemas are what create, update and validate enforce; ``issues`` name each bad field with a
dotted path (``items.0.quantity``) so a 422 says exactly what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
OBJECT_ID_PATTERN = "^[0-9a-f]{24}$"

CLIENTS_SCHEMA: dict[str, Any] = {
    "$schema": SCHEMA_DIALECT,
    "title": "Client",
    "description": "A contact of the company (built-in type); its _id is the contact id.",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "phone"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "phone": {
            "type": "string",
            "pattern": "^\\+[1-9][0-9]{6,14}$",
            "description": "E.164 phone number.",
        },
        "email": {"type": "string", "format": "email"},
        "status": {
            "type": "string",
            "enum": ["lead", "active", "inactive", "blocked"],
            "default": "lead",
        },
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
        "language": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
        "timezone": {
            "type": "string",
            "description": "IANA time zone or UTC offset, e.g. Europe/Madrid or -06:00.",
        },
        "notes": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": True},
    },
}

ORDERS_SCHEMA: dict[str, Any] = {
    "$schema": SCHEMA_DIALECT,
    "title": "Order",
    "description": "An order placed by a client.",
    "type": "object",
    "additionalProperties": False,
    "required": ["clientId", "items"],
    "properties": {
        "clientId": {"type": "string", "pattern": OBJECT_ID_PATTERN},
        "number": {"type": "string", "minLength": 1},
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["sku", "quantity", "unitPrice"],
                "properties": {
                    "sku": {"type": "string", "minLength": 1},
                    "name": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 1},
                    "unitPrice": {"type": "number", "minimum": 0},
                },
            },
        },
        "currency": {"type": "string", "enum": ["USD", "EUR", "GBP", "BRL"], "default": "USD"},
        "status": {
            "type": "string",
            "enum": ["pending", "paid", "shipped", "delivered", "cancelled"],
            "default": "pending",
        },
        "notes": {"type": "string"},
    },
}

TICKETS_SCHEMA: dict[str, Any] = {
    "$schema": SCHEMA_DIALECT,
    "title": "Ticket",
    "description": "A support ticket opened by or for a client.",
    "type": "object",
    "additionalProperties": False,
    "required": ["clientId", "subject"],
    "properties": {
        "clientId": {"type": "string", "pattern": OBJECT_ID_PATTERN},
        "subject": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string"},
        "priority": {
            "type": "string",
            "enum": ["low", "normal", "high", "urgent"],
            "default": "normal",
        },
        "status": {"type": "string", "enum": ["open", "pending", "closed"], "default": "open"},
        "assignee": {"type": "string", "minLength": 1},
        "resolution": {"type": "string"},
    },
}

TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "clients": CLIENTS_SCHEMA,
    "orders": ORDERS_SCHEMA,
    "tickets": TICKETS_SCHEMA,
}


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json), format_checker=FormatChecker())


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A compiled (and cached) draft 2020-12 validator with format checking."""
    return _validator(json.dumps(schema, sort_keys=True))


def _dotted(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts)


def _issues_of(error: ValidationError, prefix: str) -> list[dict[str, str]]:
    """Turn one jsonschema error into issues whose ``path`` names the offending field."""
    base = _dotted(error.absolute_path)
    instance = error.instance

    def join(name: str) -> str:
        parts = [p for p in (prefix, base, name) if p]
        return ".".join(parts)

    if error.validator == "required" and isinstance(instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [name for name in required if name not in instance]
        return [{"path": join(name), "message": "is required"} for name in missing]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        known = set(schema.get("properties", {}))
        extra = sorted(name for name in instance if name not in known)
        return [{"path": join(name), "message": "is not a field of this type"} for name in extra]
    where = join("") or prefix or "<body>"
    return [{"path": where, "message": error.message}]


def validation_issues(
    schema: Mapping[str, Any] | Draft202012Validator, document: Any, prefix: str = ""
) -> list[dict[str, str]]:
    """Every way ``document`` breaks ``schema``, as ``{path, message}`` issues (empty if valid)."""
    validator = schema if isinstance(schema, Draft202012Validator) else validator_for(schema)
    issues: list[dict[str, str]] = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        issues.extend(_issues_of(error, prefix))
    return issues


def apply_defaults(schema: Mapping[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the schema's top-level ``default`` values filled in where absent."""
    filled = dict(document)
    for name, prop in schema.get("properties", {}).items():
        if name not in filled and "default" in prop:
            filled[name] = prop["default"]
    return filled


# ---- JSON Schema -> Zod source text ----------------------------------------------------------


def _js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _regex_literal(pattern: str) -> str:
    return "/" + pattern.replace("/", "\\/") + "/"


def _zod(schema: Mapping[str, Any], indent: int) -> str:
    pad = "  " * (indent + 1)
    if "const" in schema:
        out = f"z.literal({_js(schema['const'])})"
    elif "enum" in schema:
        values = schema["enum"]
        if values and all(isinstance(v, str) for v in values):
            out = f"z.enum([{', '.join(_js(v) for v in values)}])"
        else:
            out = f"z.union([{', '.join(f'z.literal({_js(v)})' for v in values)}])"
    elif "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or []
        out = f"z.union([{', '.join(_zod(o, indent) for o in options)}])"
    else:
        kind = schema.get("type")
        if isinstance(kind, list):
            options = [_zod({**schema, "type": k}, indent) for k in kind]
            out = options[0] if len(options) == 1 else f"z.union([{', '.join(options)}])"
            return out
        if kind == "object":
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            lines = []
            for name, sub in props.items():
                text = _zod(sub, indent + 1)
                if name not in required and "default" not in sub:
                    text += ".optional()"
                lines.append(f"{pad}{_js(name)}: {text},")
            closing = "  " * indent
            body = "\n".join(lines)
            out = f"z.object({{\n{body}\n{closing}}})" if lines else "z.object({})"
            extra = schema.get("additionalProperties", True)
            if extra is False:
                out += ".strict()"
            elif isinstance(extra, dict) and extra:
                out = f"{out}.catchall({_zod(extra, indent)})"
            else:
                out += ".passthrough()"
        elif kind == "array":
            out = f"z.array({_zod(schema.get('items', {}), indent)})"
            if "minItems" in schema:
                out += f".min({schema['minItems']})"
            if "maxItems" in schema:
                out += f".max({schema['maxItems']})"
        elif kind == "string":
            out = "z.string()"
            fmt = schema.get("format")
            if fmt == "email":
                out += ".email()"
            elif fmt == "date-time":
                out += ".datetime()"
            elif fmt == "uri":
                out += ".url()"
            if "minLength" in schema:
                out += f".min({schema['minLength']})"
            if "maxLength" in schema:
                out += f".max({schema['maxLength']})"
            if "pattern" in schema:
                out += f".regex({_regex_literal(schema['pattern'])})"
        elif kind in ("number", "integer"):
            out = "z.number()" + (".int()" if kind == "integer" else "")
            if "minimum" in schema:
                out += f".min({schema['minimum']})"
            if "maximum" in schema:
                out += f".max({schema['maximum']})"
        elif kind == "boolean":
            out = "z.boolean()"
        elif kind == "null":
            out = "z.null()"
        else:
            out = "z.unknown()"
    if "default" in schema:
        out += f".default({_js(schema['default'])})"
    if schema.get("description"):
        out += f".describe({_js(schema['description'])})"
    return out


def to_zod(schema: Mapping[str, Any], name: str) -> str:
    """Zod source text (a TypeScript module) equivalent to the JSON Schema ``schema``."""
    ident = "".join(part.capitalize() for part in name.replace("-", "_").split("_")) or "Item"
    ident = ident[0].lower() + ident[1:] + "Schema"
    return (
        'import { z } from "zod";\n\n'
        f"export const {ident} = {_zod(schema, 0)};\n\n"
        f"export type {ident[0].upper() + ident[1:-6]} = z.infer<typeof {ident}>;\n"
    )
