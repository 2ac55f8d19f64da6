"""Reconcile unknown outcomes: ask AutoTalk whether a send whose answer was lost went out.

An ``unknown`` row (or a ``pending`` one whose run stopped) holds the rendered text and when its
claim was made. AutoTalk is the record: the contact's conversations are listed, and their
outbound messages since the claim (less a clock-skew margin) are matched by text. Found -> the
row becomes ``sent`` with the message id. Not found -> it stays ``unknown``, unless the caller
set a grace period and the claim is older than that: then it becomes ``failed`` (not applied;
the next run sends it). A ``pending`` claim not found and older than any send can stay in
flight (``STALE_PENDING_SECONDS``) was left by a run that stopped: it becomes ``unknown``, so
reports say so instead of "claimed by another run" (its owner, were it alive, still resolves it:
the row keeps its attempt id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from autotalk_prefect.api.errors import AutoTalkError
from autotalk_prefect.ledger.store import ClaimLedger, LedgerRow, LedgerState, Resolution

if TYPE_CHECKING:
    from autotalk_prefect.api.client import AutoTalkClient

__all__ = ["ReconcileReport", "reconcile"]

SKEW_SECONDS = 300.0  # our clock vs AutoTalk's: a message this much "before" the claim still counts
#: a claim is made right before its send, and a send ends within the retry policy's time bound
#: (60 s by default) plus timeouts: a pending claim this old belongs to a run that stopped
STALE_PENDING_SECONDS = 15 * 60.0
STOPPED_REASON = "its run stopped before recording the outcome (not found in AutoTalk)"


@dataclass
class ReconcileReport:
    """What reconciliation looked at and what it resolved."""

    unknown_before: int = 0
    found_sent: int = 0
    marked_failed: int = 0
    still_unknown: int = 0
    stale_claims: int = 0  # of still_unknown: pending claims of a run that stopped
    lookup_errors: int = 0
    resolved: dict[str, str] = field(default_factory=dict)  # key -> message id / "failed"

    def line(self) -> str:
        stale = f" ({self.stale_claims} left by a run that stopped)" if self.stale_claims else ""
        return (
            f"{self.unknown_before} unknown -> {self.found_sent} found sent, "
            f"{self.marked_failed} failed after the grace period, "
            f"{self.still_unknown} still unknown{stale}"
        )


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def find_sent(client: AutoTalkClient, row: LedgerRow, skew: float = SKEW_SECONDS) -> str | None:
    """The id of the outbound message ``row`` stands for, if AutoTalk shows it (``""`` when it
    is there but the server gives it no id); ``None`` when it is not found."""
    since = row.claimed_at - skew
    for conversation in client.list_conversations(contactId=row.key):
        if not conversation.id:
            continue
        for message in client.list_messages(conversation.id):
            if message.direction == "inbound" or message.message != row.text:
                continue
            created = _epoch(message.createdAt)
            if created is None or created >= since:
                return message.id or ""
    return None


def reconcile(
    ledger: ClaimLedger,
    client: AutoTalkClient,
    *,
    grace_minutes: float | None = None,
    keys: set[str] | None = None,
    now: float | None = None,
) -> ReconcileReport:
    """Resolve the campaign's unknown (and stale pending) rows against AutoTalk.

    ``keys`` limits it to those contacts; ``grace_minutes`` turns "not found that long after
    the claim" into ``failed``.
    """
    if grace_minutes is not None and not grace_minutes >= 0:
        raise ValueError(f"unknown_grace_minutes must be >= 0 (or unset), got {grace_minutes!r}")
    report = ReconcileReport()
    rows = [
        row
        for row in ledger.rows([LedgerState.UNKNOWN, LedgerState.PENDING])
        if keys is None or row.key in keys
    ]
    report.unknown_before = len(rows)
    clock = time.time() if now is None else now
    resolutions: list[Resolution] = []
    for row in rows:
        message_id = None
        if row.text is not None:
            try:
                message_id = find_sent(client, row)
            except AutoTalkError:
                report.lookup_errors += 1
                report.still_unknown += 1
                continue
        if message_id is not None:
            resolutions.append(
                Resolution(
                    row.key,
                    row.attempt,
                    LedgerState.SENT,
                    message_id=message_id,
                    reason="reconciled: the message is in the contact's conversation",
                )
            )
            report.found_sent += 1
            report.resolved[row.key] = message_id
        elif (
            grace_minutes is not None
            and row.text is not None
            and clock - row.claimed_at >= grace_minutes * 60
        ):
            resolutions.append(
                Resolution(
                    row.key,
                    row.attempt,
                    LedgerState.FAILED,
                    reason=f"reconciled: not in AutoTalk {grace_minutes:g} min after the send",
                )
            )
            report.marked_failed += 1
            report.resolved[row.key] = "failed"
        elif (
            row.state is LedgerState.PENDING
            and row.text is not None
            and clock - row.claimed_at >= STALE_PENDING_SECONDS
        ):
            resolutions.append(
                Resolution(row.key, row.attempt, LedgerState.UNKNOWN, reason=STOPPED_REASON)
            )
            report.still_unknown += 1
            report.stale_claims += 1
        else:
            report.still_unknown += 1
    ledger.resolve(resolutions)
    return report
