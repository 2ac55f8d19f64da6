"""THE outcome rule: what a finished non-idempotent call (or its exception) says was applied.

Every path that sends or creates (outreach, onboarding, replies) classifies through here, so the
one promise holds everywhere: a call AutoTalk answered 2xx was applied, unless its body
explicitly says it was not.

* ``sent``: answered 2xx (a decoded model, or an "unexpected answer" from a 2xx body: envelope,
  missing fields, an empty 202/204), or a 409 to a create ("already exists": done before).
* a 2xx whose body explicitly says the call failed (``success: false``, ``ok: false``,
  ``status`` ``failed``/``error``/``rejected``, an ``error`` or ``errors``; at the top or in a
  ``data``/``result`` envelope): ``failed`` with the server's message, or ``unknown`` when the
  body also carries the id of the thing created (it may exist).
* ``failed``: only answers that prove nothing was applied: 400, 401, 403, 404, 422, 429, a 503
  carrying Retry-After, or a request that never connected.
* ``unknown``: everything else (no answer, a 5xx, a dropped connection, an interruption, an
  error we cannot place): it may have been applied, so it is never repeated blindly.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autotalk_prefect.api.errors import (
    AutoTalkConnectionError,
    AutoTalkError,
    UnexpectedAnswerError,
)

__all__ = [
    "FAILED",
    "SENT",
    "UNKNOWN",
    "Outcome",
    "OutcomeState",
    "find_id",
    "from_answer",
    "from_exception",
    "refusal",
]


class OutcomeState(str, enum.Enum):
    """Where one non-idempotent call stands: the ONE spelling of an outcome, from the rule below
    through the ledger's rows (``ledger.store.LedgerState`` is this enum) to the summaries.

    ``from_answer`` and ``from_exception`` give ``SENT``, ``FAILED`` or ``UNKNOWN``; ``PENDING``
    is the ledger's state between a committed claim and the call's outcome. Members are strings
    (``OutcomeState.SENT == "sent"``), which is also how the ledger stores them.
    """

    PENDING = "pending"  # claimed: the call is in flight (or its run stopped before knowing)
    SENT = "sent"  # applied (its id recorded when one was found)
    FAILED = "failed"  # definitely not applied: the only state a key may be claimed again from
    UNKNOWN = "unknown"  # may have been applied: never repeated unless the caller opts in

    def __str__(self) -> str:  # "sent" in logs and f-strings, on every Python version
        return str(self.value)


SENT = OutcomeState.SENT
FAILED = OutcomeState.FAILED
UNKNOWN = OutcomeState.UNKNOWN

#: statuses that prove the request was refused before anything was applied
NOT_APPLIED = frozenset({400, 401, 403, 404, 422, 429})
#: where a message / item id may sit in a raw answer (searched in this order)
ID_PATHS: tuple[tuple[str, ...], ...] = (
    ("_id",),
    ("id",),
    ("messageId",),
    ("message", "_id"),
    ("message", "id"),
    ("data", "_id"),
    ("data", "id"),
    ("data", "messageId"),
    ("data", "message", "_id"),
    ("result", "_id"),
    ("result", "id"),
    ("item", "_id"),
)
_MAX_RAW = 4000
#: ``status`` values that say the call was refused
REFUSED_STATUSES = frozenset({"failed", "error", "rejected"})
_ENVELOPES = ("data", "result")


@dataclass(frozen=True)
class Outcome:
    """How one call ended: ``ref`` is the id it produced when one can be found, ``raw`` the
    answer kept for the record, ``already`` a 409 to a create (done by an earlier attempt)."""

    state: OutcomeState
    ref: str | None = None
    reason: str | None = None
    raw: str | None = None
    already: bool = False

    def __post_init__(self) -> None:
        # a plain "sent" becomes the member; a misspelt state fails here, not in the ledger
        object.__setattr__(self, "state", OutcomeState(self.state))

    @property
    def applied(self) -> bool:
        return self.state is SENT


def find_id(raw: Any, paths: tuple[tuple[str, ...], ...] = ID_PATHS) -> str | None:
    """The first id found under ``paths`` of a raw answer (a JSON text or decoded JSON)."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    for path in paths:
        value: Any = raw
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def find_field(raw: Any, name: str) -> str | None:
    """A string field ``name`` at the top of the answer or one envelope level down."""
    return find_id(raw, ((name,), ("data", name), ("message", name), ("result", name)))


def _said_failed(body: Mapping[str, Any]) -> str | None:
    """What in ``body`` says the call failed (``None``: nothing explicit)."""
    if body.get("success") is False:
        return "success: false"
    if body.get("ok") is False:
        return "ok: false"
    status = body.get("status")
    if isinstance(status, str) and status.strip().lower() in REFUSED_STATUSES:
        return f"status {status.strip().lower()!r}"
    for name in ("error", "errors"):
        if body.get(name) not in (None, "", False, [], {}):
            return f"an {name!r} field" if name == "error" else "an 'errors' field"
    return None


def _server_message(body: Mapping[str, Any]) -> str | None:
    """The server's own words from a refusal body (error, errors, message), shortened."""
    parts: list[str] = []
    for name in ("error", "errors", "message", "detail", "reason"):
        value = body.get(name)
        items = value if isinstance(value, list) else [value]
        for item in items[:3]:
            if isinstance(item, Mapping):
                item = item.get("message") or item.get("detail") or item.get("code")
            if isinstance(item, (str, int)) and not isinstance(item, bool) and str(item).strip():
                parts.append(str(item).strip())
        if parts:
            break
    return "; ".join(parts)[:300] if parts else None


def refusal(raw: Any) -> Outcome | None:
    """The outcome of a 2xx whose body explicitly says the call failed, else ``None``.

    ``failed`` (nothing was applied) with the server's message; ``unknown`` when the body also
    carries an id (something may have been created).
    """
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, Mapping):
        return None
    bodies = [raw] + [raw[k] for k in _ENVELOPES if isinstance(raw.get(k), Mapping)]
    for body in bodies:
        said = _said_failed(body)
        if said is None:
            continue
        message = _server_message(body) or _server_message(raw) or "no message given"
        kept = json.dumps(raw, default=str)[:_MAX_RAW]
        ref = find_id(raw)
        if ref is not None:
            return Outcome(
                UNKNOWN,
                ref=ref,
                reason=f"answered 2xx with {said} but also an id: {message}",
                raw=kept,
            )
        return Outcome(FAILED, reason=f"refused: answered 2xx with {said}: {message}", raw=kept)
    return None


def from_answer(answer: Any) -> Outcome:
    """A call that returned: applied, unless its body explicitly says it failed (``refusal``).
    ``answer`` is a model (its ``id``; the body it was read from, ``raw_answer``) or raw JSON."""
    body = getattr(answer, "raw_answer", None) if hasattr(answer, "raw_answer") else answer
    refused = refusal(body)
    if refused is not None:
        return refused
    ref = getattr(answer, "id", None)
    if not isinstance(ref, str):
        ref = find_id(answer)
    return Outcome(SENT, ref=ref)


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, AutoTalkError) else f"{type(exc).__name__}: {exc}"


def from_exception(exc: BaseException, *, create: bool = False) -> Outcome:
    """The outcome an exception from a non-idempotent call stands for (see the module doc).

    ``create``: the call creates something under an id we chose, so a 409 means an earlier
    attempt already made it (``sent``, ``already=True``).
    """
    if not isinstance(exc, AutoTalkError):
        # interrupted (cancel, Ctrl-C, a worker dying) or a bug: the request may have left
        return Outcome(
            UNKNOWN, reason=f"interrupted after the request may have left ({_reason(exc)})"
        )
    status, reason = exc.status_code, _reason(exc)
    raw = exc.body[:_MAX_RAW] if exc.body else None
    if isinstance(exc, UnexpectedAnswerError) or (status is not None and 200 <= status < 300):
        refused = refusal(raw) if raw else None
        if refused is not None:
            return refused
        return Outcome(
            SENT,
            ref=find_id(raw) if raw else None,
            reason=f"accepted; the answer was not what we expected ({exc.message})",
            raw=raw,
        )
    if status == 409:
        if create:
            return Outcome(SENT, ref=None, reason="already applied (409)", raw=raw, already=True)
        return Outcome(UNKNOWN, reason=reason, raw=raw)
    if status in NOT_APPLIED:
        return Outcome(FAILED, reason=reason, raw=raw)
    if status == 503 and exc.retry_after is not None:
        return Outcome(FAILED, reason=reason, raw=raw)
    if status is None and isinstance(exc, AutoTalkConnectionError):
        return Outcome(FAILED, reason=reason)
    return Outcome(UNKNOWN, reason=reason, raw=raw)
