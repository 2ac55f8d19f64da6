"""From a warehouse row to a Dynadata document: column mapping, values, the row hash, the schema.

The type's JSON Schema (read once per run) decides two things before anything is written: the
mapping must name only fields the type has and cover every required one (else the run stops
with one line), and each mapped row must satisfy the schema (else that row is ``failed`` with
the field and the reason, and the others go on). The hash of the document as it would be sent
is what change detection compares: the same row gives the same hash on every machine.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for

__all__ = [
    "MappingError",
    "RowMapper",
    "TypeSchema",
    "canonical",
    "document_hash",
    "json_value",
]

SERVER_FIELDS = frozenset({"_id", "createdAt", "updatedAt"})


class MappingError(ValueError):
    """The mapping cannot work for this type or source: the run stops before any write."""


def json_value(value: Any) -> Any:
    """A warehouse value as JSON: decimals become numbers, times ISO text, UUIDs text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("binary values cannot be sent to AutoTalk")
    return str(value)


def canonical(document: Mapping[str, Any]) -> str:
    """The document as canonical JSON (sorted keys, no spaces): equal documents, equal text."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_hash(document: Mapping[str, Any]) -> str:
    """The change-detection hash of a document (128-bit BLAKE2b of its canonical JSON)."""
    return hashlib.blake2b(canonical(document).encode(), digest_size=16).hexdigest()


@dataclass
class TypeSchema:
    """What the run needs of a type's JSON Schema: its fields, the required ones, a validator."""

    type_name: str
    schema: Mapping[str, Any]
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def properties(self) -> Mapping[str, Any]:
        props = self.schema.get("properties")
        return props if isinstance(props, Mapping) else {}

    @property
    def required(self) -> list[str]:
        req = self.schema.get("required")
        return [r for r in req if isinstance(r, str)] if isinstance(req, list) else []

    @property
    def open(self) -> bool:
        """Fields beyond ``properties`` allowed (``additionalProperties`` true or a schema)."""
        extra = self.schema.get("additionalProperties", False)
        return extra is not False

    def field_kind(self, name: str) -> str | None:
        prop = self.properties.get(name)
        if not isinstance(prop, Mapping):
            return None
        kind = prop.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            kind = kinds[0] if len(kinds) == 1 else None
        return kind if isinstance(kind, str) else None

    def issues(self, document: Mapping[str, Any]) -> list[str]:
        """``field: reason`` for each way ``document`` breaks the schema (empty: valid)."""
        if self._validator is None:
            cls = validator_for(self.schema)
            self._validator = cls(self.schema, format_checker=FormatChecker())
        validator = self._validator
        found: list[str] = []
        errors: Iterable[ValidationError] = validator.iter_errors(dict(document))
        for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
            path = ".".join(str(p) for p in error.absolute_path)
            if not path and error.validator == "required":
                missing = error.message.split("'")[1] if "'" in error.message else ""
                path = missing or "(document)"
                found.append(f"{path}: is required")
                continue
            if not path and error.validator == "additionalProperties":
                found.append(f"(document): {error.message}")
                continue
            found.append(f"{path or '(document)'}: {error.message}")
        return found


class RowMapper:
    """Maps rows to documents (``mapping``: column -> field; ``None``: every column as is)."""

    def __init__(
        self, schema: TypeSchema, key: str, mapping: Mapping[str, str] | None = None
    ) -> None:
        if not isinstance(key, str) or not key.strip():
            raise MappingError("key must name the Dynadata field that identifies a row")
        if mapping is not None:
            if not isinstance(mapping, Mapping) or not mapping:
                raise MappingError(
                    "mapping must be a non-empty {column: field} dict (or None for identity)"
                )
            bad = [f"{c!r}: {f!r}" for c, f in mapping.items() if not isinstance(f, str) or not f]
            if bad:
                raise MappingError(f"mapping values must be field names, got {', '.join(bad)}")
            fields = list(mapping.values())
            twice = sorted({f for f in fields if fields.count(f) > 1})
            if twice:
                raise MappingError(f"mapping sends several columns to field(s) {twice}")
        self.schema, self.key = schema, key.strip()
        self.mapping: dict[str, str] | None = dict(mapping) if mapping is not None else None
        self.checked = False
        self._kinds: dict[str, str | None] = {}  # field -> its JSON type (read once per field)

    def pairs(self, columns: Sequence[str]) -> list[tuple[str, str]]:
        """(column, field) for the source's columns."""
        if self.mapping is None:
            return [(c, c) for c in columns]
        return list(self.mapping.items())

    def check(self, columns: Sequence[str]) -> None:
        """Stop the run (``MappingError``, one line) if the mapping cannot fit the type."""
        if self.mapping is not None:
            missing = [c for c in self.mapping if c not in columns]
            if missing:
                raise MappingError(
                    f"mapping names column(s) {missing} that the source does not have "
                    f"(its columns: {list(columns)}); nothing was written"
                )
        fields = [f for _, f in self.pairs(columns)]
        server = sorted(SERVER_FIELDS.intersection(fields))
        if server:
            raise MappingError(
                f"field(s) {server} are set by AutoTalk and cannot be mapped; "
                "map the column to another field or drop it; nothing was written"
            )
        known = set(self.schema.properties)
        if known and not self.schema.open:
            unknown = [f for f in fields if f not in known]
            if unknown:
                raise MappingError(
                    f"mapping names field(s) {unknown} that Dynadata type "
                    f"{self.schema.type_name!r} does not have (its fields: {sorted(known)}); "
                    "nothing was written"
                )
        absent = [r for r in self.schema.required if r not in fields]
        if absent:
            raise MappingError(
                f"mapping misses required field(s) {absent} of Dynadata type "
                f"{self.schema.type_name!r}; nothing was written"
            )
        if self.key not in fields:
            raise MappingError(
                f"key field {self.key!r} is not among the mapped fields {fields}; "
                "nothing was written"
            )
        self.checked = True

    def document(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The document a row stands for; NULLs are left out (a NULL column sets nothing)."""
        document: dict[str, Any] = {}
        pairs: Iterable[tuple[str, Any]] = (
            row.items()
            if self.mapping is None
            else ((name, row.get(column)) for column, name in self.mapping.items())
        )
        kinds = self._kinds
        for name, raw in pairs:
            value = raw if type(raw) is str else json_value(raw)  # text: most values, as is
            if value is None:
                continue
            if name not in kinds:
                kinds[name] = self.schema.field_kind(name)
            kind = kinds[name]
            if kind is not None:
                if isinstance(value, str) and kind in ("array", "object"):
                    value = _json_text(value)
                elif isinstance(value, float) and kind == "integer" and value.is_integer():
                    value = int(value)
            document[name] = value
        return document

    def key_of(self, document: Mapping[str, Any]) -> str | None:
        """The row's key as text (``None`` when it is empty)."""
        value = document.get(self.key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _json_text(value: str) -> Any:
    """A JSON array/object kept as text in the warehouse (SQLite, CSV loads), decoded."""
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return value
    return value
