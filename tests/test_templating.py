"""Message templates: compile once, fail early on syntax, fail one contact on a missing field."""

from __future__ import annotations

import pytest

from autotalk_prefect.flows.templating import (
    MessageTemplate,
    RenderError,
    TemplateInvalidError,
    compile_template,
)

RECORD = {"_id": "a" * 24, "name": "Ada", "tags": ["vip"], "language": "en", "orders": 3}


def test_fields_and_contact_are_available() -> None:
    template = MessageTemplate(
        "Hi {{ name }} ({{ contact._id }}){% if 'vip' in tags %}, our VIP{% endif %}!"
    )
    assert template.render(RECORD) == f"Hi Ada ({'a' * 24}), our VIP!"
    assert template.variables == {"name", "contact", "tags"}
    assert template.needs_record


def test_static_template_needs_no_record() -> None:
    template = MessageTemplate("Our shop opens at 9.")
    assert not template.needs_record
    assert template.render(None) == "Our shop opens at 9."


def test_missing_field_fails_that_contact_naming_the_field() -> None:
    template = MessageTemplate("Hi {{ name }}, your code is {{ code }}")
    with pytest.raises(RenderError, match="'code' is undefined"):
        template.render(RECORD)


def test_default_filter_covers_optional_fields() -> None:
    template = MessageTemplate("Hi {{ nickname | default(name) }}")
    assert template.render(RECORD) == "Hi Ada"


@pytest.mark.parametrize("source", ["{% if vip %}VIP{% endif %}", "   {{ '' }}  "])
def test_empty_message_fails(source: str) -> None:
    with pytest.raises(RenderError, match="empty"):
        MessageTemplate(source).render({"vip": False})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{ name }", "line 1"),
        ("Hi\n{% if x %}never closed", "line 2"),
        ("{{ name | no_such_filter }}", "no_such_filter"),
        ("", "empty"),
    ],
)
def test_syntax_errors_fail_at_compile_time(source: str, expected: str) -> None:
    with pytest.raises(TemplateInvalidError, match=expected):
        MessageTemplate(source)


def test_non_string_template_is_refused() -> None:
    with pytest.raises(TemplateInvalidError, match="must be a string"):
        MessageTemplate(42)  # type: ignore[arg-type]


def test_sandbox_blocks_python_internals() -> None:
    template = MessageTemplate("{{ name.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(RenderError):
        template.render(RECORD)


def test_errors_in_filters_fail_the_contact_only() -> None:
    template = MessageTemplate("{{ orders / 0 }}")
    with pytest.raises(RenderError, match="ZeroDivisionError"):
        template.render(RECORD)


def test_compiled_once_per_source() -> None:
    assert compile_template("Hi {{ name }}") is compile_template("Hi {{ name }}")
