"""The exception tree of an AutoTalk call, and the single status -> exception mapping.

Catch a leaf for one case, a middle class for a kind of failure, ``AutoTalkError`` for all::

    AutoTalkError                  every failure of an AutoTalk call
    ├── RefusedError               AutoTalk answered with an error status (``status_code`` set)
    │   ├── InvalidRequestError    400 / 422: the request or body; ``issues`` names each field
    │   ├── AuthenticationError    401: the key is missing, wrong or revoked
    │   ├── PermissionDeniedError  403: the key may not do this
    │   ├── NotFoundError          404: no such type, item, contact, conversation or function
    │   ├── ConflictError          409: e.g. a create with an ``_id`` that exists
    │   ├── RateLimitError         429: ``retry_after`` is the wait asked for
    │   ├── ServerError            5xx: trouble on AutoTalk's side (``retry_after`` on a 503)
    │   └── ExplicitRefusalError   a 2xx whose body says the call failed: nothing was applied
    └── NoUsableAnswerError        no answer to act on: none came, or one we cannot read
        ├── AutoTalkConnectionError  the request never reached AutoTalk: nothing was done
        ├── NoResponseError        an idempotent call got no answer, even after the retries
        ├── OutcomeUnknownError    a non-idempotent call got none: it MAY have been applied
        └── UnexpectedAnswerError  a 2xx whose body we cannot read: it WAS applied

Another 4xx (405, 410, ...) is a ``RefusedError`` itself. Which of them the client retries is
decided in ``retries.py``; what a send's failure means for the ledger, in ``outcomes.py``.

Every error carries what a user needs to act on it (status, the server's message, the raw body,
method and path, the request id) and nothing secret: the API key travels in a request header,
which no error ever reads. Errors are picklable with all their fields, because Prefect moves
exceptions between processes (task runners, result persistence).

``__all__`` is the one list of the public names: the package root exports each of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from autotalk_prefect.api.models import ISSUE_KEYS, ValidationIssue, issues_from

MAX_BODY_CHARS = 8192  # enough for any error body; keeps a pathological page out of logs

#: the exception tree and what its errors carry, as the package root exports them
__all__ = [
    "AuthenticationError",
    "AutoTalkConnectionError",
    "AutoTalkError",
    "ConflictError",
    "ExplicitRefusalError",
    "InvalidRequestError",
    "NoResponseError",
    "NoUsableAnswerError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitError",
    "RefusedError",
    "ServerError",
    "UnexpectedAnswerError",
    "ValidationIssue",
]


class AutoTalkError(Exception):
    """Base of every error this package raises about an AutoTalk call.

    ``status_code`` is ``None`` when no HTTP answer came back. ``body`` is the raw response text
    (truncated to ``MAX_BODY_CHARS``); ``code`` is the body's machine-readable ``error`` field.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: str | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        issues: Iterable[ValidationIssue] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.method = method
        self.path = path
        self.request_id = request_id
        self.code = code
        self.retry_after = retry_after
        self.issues: list[ValidationIssue] = list(issues)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles only ``args``; keyword fields would be lost (or break __init__).
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else None
        parts = [str(self.status_code)] if self.status_code is not None else []
        if where:
            parts.append(where)
        prefix = " ".join(parts)
        text = f"{prefix}: {self.message}" if prefix else self.message
        if self.issues:
            text += " (" + "; ".join(f"{i.path}: {i.message}" for i in self.issues) + ")"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


def _rebuild(cls: type[AutoTalkError], message: str, state: dict[str, Any]) -> AutoTalkError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class RefusedError(AutoTalkError):
    """AutoTalk answered with an error status: it refused the request (4xx) or failed it (5xx).

    ``status_code`` is that status. A status without a class of its own (405, 410, ...) is
    raised as this class itself.
    """


class InvalidRequestError(RefusedError):
    """400/422: the request or body was rejected; ``issues`` names each field and why."""


class AuthenticationError(RefusedError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(RefusedError):
    """403: the key is valid but not allowed to do this."""


class NotFoundError(RefusedError):
    """404: unknown type, item, contact, conversation or function."""


class ConflictError(RefusedError):
    """409: for example, create with an ``_id`` that already exists."""


class RateLimitError(RefusedError):
    """429: too many requests; ``retry_after`` is the wait the server asked for (seconds)."""


class ServerError(RefusedError):
    """5xx: trouble on AutoTalk's side (``retry_after`` set when a 503 carried Retry-After)."""


class ExplicitRefusalError(RefusedError):
    """A 2xx answer whose body explicitly said the call failed (``success: false``, an
    ``error``, a failed status): nothing was applied. ``message`` keeps the server's words,
    ``body`` the answer (see ``api.outcomes.refusal``)."""


class NoUsableAnswerError(AutoTalkError):
    """No answer to act on: none came back (connection, timeout, dropped), or one we could not
    read. The leaves say what that means for the call: never sent, safe to try again, maybe
    applied, or applied."""


class AutoTalkConnectionError(NoUsableAnswerError):
    """The request never reached AutoTalk (connect error, connect or pool timeout)."""


class NoResponseError(NoUsableAnswerError):
    """An idempotent request was sent but no answer came back (read timeout, dropped
    connection), even after the retries allowed. Safe to try again later."""


class OutcomeUnknownError(NoUsableAnswerError):
    """A non-idempotent call was sent but no usable answer came back: it MAY have been applied.

    It is never re-sent automatically (that could send a message twice). Check the state in
    AutoTalk (or your ledger) before trying again. ``status_code`` is the 5xx seen, if any.
    """


class UnexpectedAnswerError(NoUsableAnswerError):
    """A success (2xx) answer whose body we could not read (an envelope, missing fields, an
    empty 202/204). The call WAS applied: never treat it as "not applied". ``body`` holds the
    raw answer; ``status_code`` the 2xx when the decoder knew it."""


_BY_STATUS: dict[int, type[AutoTalkError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequestError,
    429: RateLimitError,
}


def error_class_for_status(status_code: int) -> type[AutoTalkError]:
    """The exception class for an HTTP error status (another 4xx: ``RefusedError`` itself)."""
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return ServerError
    return RefusedError


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    ``None`` when absent or unreadable; never negative (a date in the past means "now").
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


#: where an error body may carry its human message, in order (RFC 7807 uses title/detail)
MESSAGE_KEYS = ("message", "error", "title", "detail", "error_description")


def _text_of(value: Any) -> str | None:
    """A message from a body field: a string, or an object's ``message``/``title``/``detail``."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, dict):
        return next(
            (v for k in ("message", "title", "detail") if (v := _text_of(value.get(k)))), None
        )
    return None


def _read_body(payload: dict[str, Any]) -> tuple[str | None, str | None, list[ValidationIssue]]:
    """(message, machine code, issues) of a JSON error body, whichever fields carry them.

    The message is the first of ``message``, ``error`` (text, or an object with a message),
    ``title``, ``detail``; when both a title and a detail are given, both are kept. The code is
    ``error`` or ``code`` when it is a short token. Issues come from ``issues``, ``errors`` or
    ``details`` (or ``error.issues``), with string or array paths.
    """
    texts = [(key, _text_of(payload.get(key))) for key in MESSAGE_KEYS]
    found = [(key, text) for key, text in texts if text]
    message = found[0][1] if found else None
    title, detail = _text_of(payload.get("title")), _text_of(payload.get("detail"))
    if message == title and detail and detail != title:
        message = f"{title}: {detail}"
    code = next(
        (v for k in ("error", "code") if isinstance(v := payload.get(k), str) and v.strip()),
        None,
    )
    inner = payload.get("error")
    sources = [payload, inner] if isinstance(inner, dict) else [payload]
    issues: list[ValidationIssue] = []
    for source in sources:
        for key in ISSUE_KEYS:
            issues = issues_from(source.get(key))
            if issues:
                return message, code, issues
    return message, code, issues


def _auth_hint(auth_scheme: str) -> str:
    """What a 401 says about how the key was sent (never the key itself)."""
    if auth_scheme == "bearer":
        return (
            "the key was sent as Authorization: Bearer (auth_scheme='bearer'); AutoTalk's API "
            "reference also documents the x-api-key header: try auth_scheme='x-api-key' "
            "(AUTOTALK_AUTH_SCHEME or the credentials block's auth_scheme)"
        )
    return (
        "the key was sent in the x-api-key header (auth_scheme='x-api-key'); AutoTalk's API "
        "Tokens page also documents Authorization: Bearer: try auth_scheme='bearer' "
        "(AUTOTALK_AUTH_SCHEME or the credentials block's auth_scheme)"
    )


def error_from_response(
    response: httpx.Response,
    method: str,
    path: str,
    *,
    redact: Iterable[str] = (),
    auth_scheme: str | None = None,
) -> AutoTalkError:
    """The exception for an error response: THE one status -> exception mapping.

    Reads the message from ``message``, ``error`` (text or an object), ``title`` or ``detail``
    of a JSON body, or uses a text body as the message; issues from ``issues``, ``errors`` or
    ``details``. A 401 says which ``auth_scheme`` carried the key and that the other exists;
    keeps the raw body; takes the request id from ``x-request-id`` (or the body's
    ``requestId``); fills ``issues`` and ``retry_after``. Any string in ``redact`` is blanked
    out of the message and body, should a server ever echo something secret back.
    """
    status = response.status_code
    text = response.text[:MAX_BODY_CHARS]
    for secret in redact:
        if secret:
            text = text.replace(secret, "***")
    payload: Any = None
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None

    message: str | None = None
    code: str | None = None
    issues: list[ValidationIssue] = []
    request_id = response.headers.get("x-request-id")
    if isinstance(payload, dict):
        message, code, issues = _read_body(payload)
        if not request_id and isinstance(payload.get("requestId"), str):
            request_id = payload["requestId"]
    elif isinstance(payload, str) and payload:
        message = payload
    elif text.strip() and payload is None:
        message = text.strip()[:500]
    if not message:
        message = response.reason_phrase or f"HTTP {status}"
    if status == 401 and auth_scheme:
        message = f"{message} ({_auth_hint(auth_scheme)})"

    retry_after = parse_retry_after(response.headers.get("retry-after"))
    cls = error_class_for_status(status)
    return cls(
        message,
        status_code=status,
        body=text,
        method=method,
        path=path,
        request_id=request_id,
        code=code,
        retry_after=retry_after,
        issues=issues,
    )
