"""MkDocs hook: ``<!-- model-table: package.module.Model -->`` becomes one compact table of the
model's fields (name, type, default, description), generated from the model itself, so the
reference can never drift from the code. One table per model instead of a heading and a code
block per field."""

from __future__ import annotations

import importlib
import re
from typing import Any

MARKER = re.compile(r"<!--\s*model-table:\s*([\w.]+)\s*-->")


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"\b(?:typing|datetime|collections\.abc|[a-z_]+(?:\.[a-z_]+)+)\.", "", text)
    return text.replace("NoneType", "None").replace("|", "\\|")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        try:
            return f"`{field.default_factory()!r}`"
        except TypeError:
            return "computed"
    return f"`{field.default!r}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def model_table(path: str) -> str:
    """The markdown table for the pydantic model at dotted ``path``."""
    module_name, _, name = path.rpartition(".")
    model = getattr(importlib.import_module(module_name), name)
    doc = _cell((model.__doc__ or "").strip().split("\n\n")[0])
    rows = [
        f"### `{name}`",
        "",
        doc,
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
    ]
    for field_name, field in model.model_fields.items():
        shown = field.alias or field_name
        rows.append(
            f"| `{shown}` | `{_type_name(field.annotation)}` | {_default(field)} | "
            f"{_cell(field.description or field.title or '')} |"
        )
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    return MARKER.sub(lambda m: model_table(m.group(1)), markdown)
