"""The inbox's two forms (faults, simulate a reply): read them, check them, or say why not.

Browsers post ``application/x-www-form-urlencoded``; it is parsed here with the standard
library (no multipart dependency). Every value arrives as text: this module turns it into the
types ``FaultConfig`` takes and lets ``FaultConfig`` itself decide what is valid, so the page
refuses exactly what ``PUT /_sandbox/faults`` refuses, with the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request

from autotalk_prefect.sandbox.faults import REFUSAL_BODIES, FaultConfig
from autotalk_prefect.sandbox.problems import ApiProblem, bad_request

MAX_FORM_BYTES = 64 * 1024
FLOAT_FIELDS = (
    "latency_ms",
    "error_rate",
    "rate_429",
    "retry_after_seconds",
    "drop_after_processing",
    "rate_limit_rps",
    "refusal_rate",
)
FORM_FIELDS = (
    *FLOAT_FIELDS,
    "refusal_body",
    "error_statuses",
    "retry_after_on_503",
    "methods",
    "path_pattern",
    "seed",
)


#: the refusal shapes the form offers (a 200 whose body says the call failed)
REFUSAL_BODY_CHOICES = tuple(REFUSAL_BODIES)


class FormRefused(ValueError):
    """A form value that cannot be applied; the message says which and why."""


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields (the last value of a repeated name wins)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ApiProblem(415, "bad_request", "post the form as application/x-www-form-urlencoded")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise bad_request(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise bad_request("the form is not UTF-8") from None


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FormRefused(f"{name} must be a number, got {text!r}") from None


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]


def faults_from_form(form: Mapping[str, str]) -> FaultConfig:
    """The ``FaultConfig`` the faults form describes; blank fields keep their defaults."""
    unknown = sorted(set(form) - set(FORM_FIELDS))
    if unknown:
        raise FormRefused(f"unknown fault setting(s) {unknown}")
    values: dict[str, object] = {}
    for name in FLOAT_FIELDS:
        text = form.get(name, "").strip()
        if text:
            values[name] = _number(name, text)
    statuses = _list(form.get("error_statuses", ""))
    if statuses:
        try:
            values["error_statuses"] = tuple(int(s) for s in statuses)
        except ValueError:
            raise FormRefused(f"error_statuses must be status codes, got {statuses!r}") from None
    methods = _list(form.get("methods", ""))
    if methods:
        values["methods"] = tuple(methods)
    body = form.get("refusal_body", "").strip()
    if body:
        values["refusal_body"] = body  # FaultConfig names the shapes it knows if this is not one
    pattern = form.get("path_pattern", "").strip()
    if pattern:
        values["path_pattern"] = pattern
    seed = form.get("seed", "").strip()
    if seed:
        try:
            values["seed"] = int(seed)
        except ValueError:
            raise FormRefused(f"seed must be an integer, got {seed!r}") from None
    values["retry_after_on_503"] = form.get("retry_after_on_503") in ("on", "true", "1")
    try:
        return FaultConfig.from_dict(values)
    except ValueError as exc:
        raise FormRefused(str(exc)) from None


@dataclass(frozen=True)
class ReplyForm:
    """A simulated customer reply: to whom, what, and where the page goes afterwards."""

    contact_id: str
    text: str
    channel_id: str | None


def reply_from_form(form: Mapping[str, str]) -> ReplyForm:
    """The reply the form asks for; the contact's existence is the state's to check."""
    contact_id = form.get("contactId", "").strip()
    text = form.get("text", "").strip()
    if not contact_id:
        raise FormRefused("contactId is required")
    if not text:
        raise FormRefused("text must not be empty")
    return ReplyForm(contact_id, text, form.get("channelId", "").strip() or None)
