"""Once per key: run a non-idempotent call at most once per key, across runs and machines.

The onboarding flow (create, welcome, log), the reply flow (each action of each inbound
message) and outreach (one send per contact, through the async ``ClaimWriter``) all guard their
calls with the same claim ledger (:mod:`autotalk_prefect.ledger.store`; the async batched writer is :mod:`autotalk_prefect.ledger.writer`) and classify the result
with THE outcome rule (:mod:`autotalk_prefect.api.outcomes`). This is the synchronous helper
for single-run flows: ``run()`` claims the key, calls, records what the outcome rule says, and
hands the outcome back. The outcome it records is the rule's own ``OutcomeState``: the ledger's
``LedgerState`` is that same enum, so nothing is translated on the way.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from autotalk_prefect.api.errors import ExplicitRefusalError
from autotalk_prefect.api.outcomes import SENT, Outcome, from_answer, from_exception
from autotalk_prefect.ledger.consent import Consent, Verdict
from autotalk_prefect.ledger.optouts import Identity
from autotalk_prefect.ledger.store import (
    Claim,
    ClaimLedger,
    ContactStatus,
    LedgerState,
    Resolution,
)

__all__ = ["OnceLedger", "OnceResult", "done", "ledger_name", "unresolved"]

T = TypeVar("T")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def ledger_name(*parts: str) -> str:
    """A ledger (campaign) id from ``parts``: joined with ``-`` when that is a safe name,
    otherwise the first part plus a hash of the rest (ids from outside may hold any character)."""
    joined = "-".join(parts)
    if _SAFE.fullmatch(joined):
        return joined
    digest = hashlib.sha256("\x00".join(parts[1:]).encode()).hexdigest()[:32]
    return f"{parts[0]}-{digest}"


def unresolved(status: ContactStatus | None) -> bool:
    """A key that was claimed and may have been applied (``pending`` or ``unknown``)."""
    return status is not None and status.state in (LedgerState.PENDING, LedgerState.UNKNOWN)


def done(status: ContactStatus | None) -> bool:
    """A key confirmed applied."""
    return status is not None and status.state is LedgerState.SENT


@dataclass(frozen=True)
class OnceResult(Generic[T]):
    """What ``run`` did: ``claimed`` False when the key was already held (``status`` says by
    what) or the consent check blocked it (``blocked`` says why: nothing was called); else
    ``outcome`` (and ``value``, the call's return, when it returned)."""

    claimed: bool
    status: ContactStatus | None = None
    blocked: Verdict | None = None
    outcome: Outcome | None = None
    value: T | None = None
    error: BaseException | None = None


class OnceLedger:
    """Sync once-per-key access to one ledger (one run's steps)."""

    def __init__(self, name: str, storage: object = None, *, run_id: str | None = None) -> None:
        """``storage``: a SQLAlchemy URL, a directory (a SQLite file inside it) or ``None``
        (``$AUTOTALK_LEDGER_URL``, else ``.autotalk/ledger``)."""
        self.ledger = ClaimLedger(name, storage)
        self.run_id = run_id or uuid.uuid4().hex
        self.flow_run_id = _current_flow_run_id()

    @property
    def name(self) -> str:
        return self.ledger.campaign_id

    def describe(self) -> str:
        return self.ledger.describe()

    def status(self, key: str) -> ContactStatus | None:
        return self.ledger.status(key)

    def statuses(self, keys: Iterable[str]) -> dict[str, ContactStatus]:
        return self.ledger.statuses(keys)

    def claim(
        self,
        key: str,
        text: str | None = None,
        *,
        resend_unknown: bool = False,
        identity: Identity | None = None,
        consent: Consent | None = None,
    ) -> str | Verdict | None:
        """Claim ``key`` (committed on return): the attempt id, ``None`` if it is held, or the
        consent ``Verdict`` that blocked it (with ``consent``: ``identity`` is checked against
        the opt-out list in the claim's transaction)."""
        reclaim = [LedgerState.FAILED]
        if resend_unknown:
            reclaim += [LedgerState.UNKNOWN, LedgerState.PENDING]
        verdicts: dict[str, Verdict] = {}
        won = self.ledger.claim(
            [Claim(key, text, identity)],
            self.run_id,
            reclaim=reclaim,
            consent=consent,
            flow_run_id=self.flow_run_id,
            verdicts=verdicts,
        )
        if key in won:
            return won[key]
        return verdicts.get(key)

    def record(self, key: str, attempt: str, outcome: Outcome) -> None:
        """Write ``outcome`` over the claim ``attempt`` of ``key``."""
        self.ledger.resolve([Resolution.of(key, attempt, outcome)])

    def mark(self, key: str, ref: str | None, reason: str | None = None) -> None:
        """Record ``key`` as done with ``ref`` (found by other means: AutoTalk itself)."""
        attempt = self.claim(key, resend_unknown=True)
        if isinstance(attempt, str):
            self.record(key, attempt, Outcome(SENT, ref=ref, reason=reason))

    def run(
        self,
        key: str,
        call: Callable[[], T],
        *,
        text: str | None = None,
        create: bool = False,
        resend_unknown: bool = False,
        ref: Callable[[T], str | None] | None = None,
        identity: Identity | None = None,
        consent: Consent | None = None,
    ) -> OnceResult[T]:
        """Claim ``key``, run ``call`` once, record its outcome (THE outcome rule).

        Never raises the call's error itself: ``result.error`` holds it and ``result.outcome``
        says what it means (``sent`` even for an error, when the call was applied: a 2xx with
        an unreadable body, a 409 to a ``create``). The caller decides whether to raise.
        With ``consent`` the message's ``identity`` is checked inside the claim: an opted-out
        contact is not called (``result.blocked``).
        """
        attempt = self.claim(
            key, text, resend_unknown=resend_unknown, identity=identity, consent=consent
        )
        if isinstance(attempt, Verdict):
            return OnceResult(claimed=False, blocked=attempt)
        if attempt is None:
            return OnceResult(claimed=False, status=self.status(key))
        try:
            value = call()
        except BaseException as exc:
            outcome = from_exception(exc, create=create)
            self.record(key, attempt, outcome)
            if not isinstance(exc, Exception):
                raise  # an interruption: recorded as unknown, and it goes on
            return OnceResult(claimed=True, outcome=outcome, error=exc)
        outcome = from_answer(value)
        if outcome.state is SENT and ref is not None:
            outcome = Outcome(SENT, ref=ref(value))
        self.record(key, attempt, outcome)
        if outcome.state is not SENT:  # a 2xx whose body said it failed (the outcome rule)
            refused = ExplicitRefusalError(outcome.reason or "refused", body=outcome.raw)
            return OnceResult(claimed=True, outcome=outcome, value=value, error=refused)
        return OnceResult(claimed=True, outcome=outcome, value=value)

    def close(self) -> None:
        """Nothing to release (kept so ``with`` reads naturally)."""

    def __enter__(self) -> OnceLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _current_flow_run_id() -> str | None:
    """The Prefect flow run this process works for, if any (stored on each claim)."""
    try:
        from prefect.runtime import flow_run

        value = flow_run.id
    except Exception:  # outside Prefect
        return None
    return str(value) if value else None


def status_of(result: OnceResult[Any]) -> str:
    """One word for logs: claimed elsewhere / sent / failed / unknown."""
    if not result.claimed:
        return "held"
    assert result.outcome is not None
    return result.outcome.state
