"""Exactly-once markers for the few non-idempotent steps of a single flow run.

The onboarding and reply flows send messages and run functions that must not happen twice when a
run is repeated (a re-run with the same inputs, a redelivered event). AutoTalk's Dynadata schemas
forbid extra fields (``additionalProperties: false``), so the marker cannot live on the item;
it lives in the outreach ledger (:mod:`autotalk_prefect.ledger.store`) instead, which already knows
``pending`` (written durably *before* the call), ``sent``, ``failed`` and ``unknown``. Each
guarded step is one ledger key; the "campaign" is the run's identity (``onboarding-<id>``,
``replies-<type>-<contact>``).

``StepLedger`` is a small synchronous facade for sync flows: every record is durable when the
method returns (one fsync or one block write), which is cheap at a handful of steps per run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

from prefect.utilities.asyncutils import run_coro_as_sync

from autotalk_prefect.api.errors import AutoTalkError, NoResponseError, OutcomeUnknownError
from autotalk_prefect.ledger.store import ContactStatus, Ledger, LedgerState, LedgerWriter

__all__ = ["StepLedger", "done", "is_ambiguous", "ledger_name", "unresolved"]

T = TypeVar("T")

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def ledger_name(*parts: str) -> str:
    """A ledger (campaign) id from ``parts``: joined with ``-`` when that is a safe file name,
    otherwise the first part plus a hash of the rest (ids from outside may hold any character)."""
    joined = "-".join(parts)
    if _SAFE.fullmatch(joined):
        return joined
    digest = hashlib.sha256("\x00".join(parts[1:]).encode()).hexdigest()[:32]
    return f"{parts[0]}-{digest}"


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a failed call may still have been applied (so it must not be repeated blindly)."""
    return isinstance(exc, (OutcomeUnknownError, NoResponseError))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return run_coro_as_sync(coro)


class StepLedger:
    """Sync access to one run's ledger: read a step's state, record its attempt and outcome."""

    def __init__(self, name: str, storage: Any = None) -> None:
        """``storage``: what :class:`~autotalk_prefect.ledger.store.Ledger` accepts (``None`` ->
        ``.autotalk/ledger``, a directory, a ``WritableFileSystem`` block or its slug)."""
        self.ledger = Ledger(name, storage)
        self._writer: LedgerWriter | None = None

    @property
    def name(self) -> str:
        return self.ledger.campaign_id

    def describe(self) -> str:
        """Where the markers are stored (for logs and artifacts)."""
        return self.ledger.describe()

    def status(self, step: str) -> ContactStatus | None:
        """The resolved state of ``step`` (``None``: never attempted)."""
        return self.ledger.snapshot().get(step)

    def statuses(self) -> dict[str, ContactStatus]:
        """Every step the ledger knows, resolved (one read)."""
        return dict(self.ledger.snapshot().contacts)

    def _w(self) -> LedgerWriter:
        if self._writer is None:
            self._writer = self.ledger.writer()
        return self._writer

    def begin(self, step: str) -> str:
        """Durably record that ``step`` is about to run; returns the attempt id."""
        return _run(self._w().begin(step))

    def sent(self, step: str, attempt: str, ref: str | None) -> None:
        """``step`` is confirmed done; ``ref`` is the id it produced (message id, ...)."""
        self._w().sent(step, attempt, ref)
        _run(self._w().flush())

    def record_failure(self, step: str, attempt: str, exc: BaseException) -> None:
        """Record how ``step`` failed: ``unknown`` if it may have been applied, else ``failed``."""
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, AutoTalkError) else repr(exc)
        if is_ambiguous(exc):
            self._w().unknown(step, attempt, reason)
        else:
            self._w().failed(step, attempt, reason)
        _run(self._w().flush())

    def close(self) -> None:
        """Write anything buffered and release the writer's file."""
        if self._writer is not None:
            _run(self._writer.close())
            self._writer = None

    def __enter__(self) -> StepLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def unresolved(status: ContactStatus | None) -> bool:
    """A step that was started and may have been applied (``pending`` alone, or ``unknown``)."""
    return status is not None and status.state in (LedgerState.PENDING, LedgerState.UNKNOWN)


def done(status: ContactStatus | None) -> bool:
    """A step confirmed done."""
    return status is not None and status.state is LedgerState.SENT
