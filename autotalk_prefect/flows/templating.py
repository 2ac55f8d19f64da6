"""Message templates: Jinja2 in a sandbox, strict about missing fields.

A campaign's template is compiled once, at the start, so a syntax error stops the flow before
anything is sent, with a message naming the line and the problem. Rendering is per contact: the
Dynadata record's fields are top-level names (``{{ name }}``), the whole record is ``contact``
(``{{ contact._id }}``, ``{{ contact.get('tags') }}``). A field missing for one contact fails
that contact only (:class:`RenderError`), and so does an empty result.

The sandbox (``SandboxedEnvironment``) blocks attribute tricks that reach Python internals, so a
template typed into the Prefect UI cannot run arbitrary code on a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["MessageTemplate", "RenderError", "TemplateInvalidError", "compile_template"]

MAX_TEMPLATE_CHARS = 100_000


class TemplateInvalidError(ValueError):
    """The template itself is broken (syntax): nothing can be sent with it."""


class RenderError(ValueError):
    """Rendering for one contact failed (a missing field, an empty message)."""


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,  # plain-text messages, not HTML
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class MessageTemplate:
    """A compiled message template; ``render(record)`` gives one contact's message."""

    def __init__(self, source: str) -> None:
        if not isinstance(source, str):
            raise TemplateInvalidError(
                f"message template must be a string, got {type(source).__name__}"
            )
        if not source.strip():
            raise TemplateInvalidError("message template is empty")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateInvalidError(
                f"message template is too long ({len(source)} characters, at most "
                f"{MAX_TEMPLATE_CHARS})"
            )
        env = _environment()
        try:
            ast = env.parse(source)
            self._template = env.from_string(ast)
        except TemplateSyntaxError as exc:
            raise TemplateInvalidError(
                f"message template has a syntax error on line {exc.lineno}: {exc.message}"
            ) from None
        except TemplateError as exc:
            raise TemplateInvalidError(f"message template is invalid: {exc}") from None
        self.source = source
        #: top-level names the template reads (the record's fields it needs, plus ``contact``)
        self.variables: frozenset[str] = frozenset(meta.find_undeclared_variables(ast))

    @property
    def needs_record(self) -> bool:
        """Whether rendering reads anything from the contact's record."""
        return bool(self.variables)

    def render(self, record: Mapping[str, Any] | None) -> str:
        """The message for one contact; raises :class:`RenderError` naming what went wrong."""
        fields = dict(record or {})
        context = {**fields, "contact": fields}
        try:
            text = self._template.render(context)
        except TemplateError as exc:  # UndefinedError, SecurityError, ...
            raise RenderError(f"template: {exc.message or exc}") from None
        except Exception as exc:  # a filter or operation on the record's data failed
            raise RenderError(f"template: {type(exc).__name__}: {exc}") from None
        text = text.strip()
        if not text:
            raise RenderError("template rendered an empty message")
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # compiled Jinja code does not pickle: a copy (on a Dask worker) compiles once per
        # process there, through the cache
        return (compile_template, (self.source,))

    def __repr__(self) -> str:
        return f"MessageTemplate({self.source[:40]!r}{'...' if len(self.source) > 40 else ''})"


@lru_cache(maxsize=32)
def compile_template(source: str) -> MessageTemplate:
    """The compiled template for ``source``, cached per process (once per campaign)."""
    return MessageTemplate(source)
