"""THE outcome rule: what a finished non-idempotent call (or its exception) says was applied.

Every path that sends or creates (outreach, onboarding, replies) classifies through here, so the
one promise holds everywhere: a call AutoTalk answered 2xx was applied, whatever its body said.

* ``sent``: answered 2xx (a decoded model, or an "unexpected answer" from a 2xx body: envelope,
  missing fields, an empty 202/204), or a 409 to a create ("already exists": done before).
* ``failed``: only answers that prove nothing was applied: 400, 401, 403, 404, 422, 429, a 503
  carrying Retry-After, or a request that never connected.
* ``unknown``: everything else (no answer, a 5xx, a dropped connection, an interruption, an
  error we cannot place): it may have been applied, so it is never repeated blindly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from autotalk_prefect.api.errors import (
    AutoTalkConnectionError,
    AutoTalkError,
    UnexpectedAnswerError,
)

__all__ = ["Outcome", "OutcomeState", "find_id", "from_answer", "from_exception"]

OutcomeState = Literal["sent", "failed", "unknown"]

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


@dataclass(frozen=True)
class Outcome:
    """How one call ended: ``ref`` is the id it produced when one can be found, ``raw`` the
    answer kept for the record, ``already`` a 409 to a create (done by an earlier attempt)."""

    state: OutcomeState
    ref: str | None = None
    reason: str | None = None
    raw: str | None = None
    already: bool = False

    @property
    def applied(self) -> bool:
        return self.state == "sent"


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


def from_answer(answer: Any) -> Outcome:
    """A call that returned: applied. ``answer`` is a model (its ``id``) or raw JSON."""
    ref = getattr(answer, "id", None)
    if not isinstance(ref, str):
        ref = find_id(answer)
    return Outcome("sent", ref=ref)


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
            "unknown", reason=f"interrupted after the request may have left ({_reason(exc)})"
        )
    status, reason = exc.status_code, _reason(exc)
    raw = exc.body[:_MAX_RAW] if exc.body else None
    if isinstance(exc, UnexpectedAnswerError) or (status is not None and 200 <= status < 300):
        return Outcome(
            "sent",
            ref=find_id(raw) if raw else None,
            reason=f"accepted; the answer was not what we expected ({exc.message})",
            raw=raw,
        )
    if status == 409:
        if create:
            return Outcome("sent", ref=None, reason="already applied (409)", raw=raw, already=True)
        return Outcome("unknown", reason=reason, raw=raw)
    if status in NOT_APPLIED:
        return Outcome("failed", reason=reason, raw=raw)
    if status == 503 and exc.retry_after is not None:
        return Outcome("failed", reason=reason, raw=raw)
    if status is None and isinstance(exc, AutoTalkConnectionError):
        return Outcome("failed", reason=reason)
    return Outcome("unknown", reason=reason, raw=raw)
