"""THE consent check every send makes inside its claim: the opt-out list and frequency caps.

``check(conn, ...)`` runs in the claim's own transaction (``ClaimLedger.claim`` and the
``ClaimWriter`` call it before their upsert; ``OnceLedger.run`` through them), so whatever the
audience source (the default query, filters, explicit ``contact_ids``, a SQL audience), a
contact is messaged only if, at the moment its claim commits:

* no identifier of it (contact id, E.164 phone, email) is on the opt-out list
  (``optouts``), unless the send is ``transactional`` (then it goes out and is counted);
* with a frequency cap, fewer than ``messages`` campaign messages went to it in the last
  ``hours`` hours across every campaign in the same ledger database. Two campaigns claiming
  the same contact at once are serialized: SQLite's write lock (``BEGIN IMMEDIATE``) covers
  the count and the claim; on PostgreSQL each capped contact's advisory lock
  (``pg_advisory_xact_lock``) is held from the count to the commit.

A blocked contact gets no claim row: an opted-out one is reported ``skipped: opted out``, a
capped one ``deferred: frequency cap`` (a later run sends it once the window allows).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from autotalk_prefect.ledger.database import TABLE
from autotalk_prefect.ledger.optouts import Identity, opted_out_keys
from autotalk_prefect.ledger.settings import ConsentSettings, FrequencyCap

__all__ = [
    "Consent",
    "ConsentSettings",
    "FrequencyCap",
    "Verdict",
    "check",
    "check_read_only",
]

_BATCH = 400
#: ledger states that count against a cap: the message went out, or may have
_COUNTED = ("pending", "sent", "unknown")


class Verdict(enum.Enum):
    """What the check decided for one contact."""

    OPTED_OUT = "opted out"  # not claimed, not sent
    CAPPED = "frequency cap"  # not claimed: deferred to a later run
    TRANSACTIONAL = "opted out, sent as transactional"  # claimed despite the list


@dataclass(frozen=True)
class Consent:
    """What a claim checks: the list (unless ``transactional``) and the cap, if any.

    ``transactional=True`` is the named override for messages a contact must get whatever
    they opted out of (an order update): they are sent and counted apart.
    """

    transactional: bool = False
    cap: FrequencyCap | None = None


def check(
    conn: Connection,
    campaign: str,
    items: Sequence[tuple[str, Identity]],
    consent: Consent,
    now: float,
    *,
    lock: bool = True,
) -> dict[str, Verdict]:
    """THE check, on ``conn`` inside the claim's transaction: ``{key: verdict}`` for the keys
    of ``items`` (key, who) that must not be claimed (``OPTED_OUT``, ``CAPPED``) or are
    claimed only by the transactional override (``TRANSACTIONAL``). Keys absent: allowed.

    ``lock``: take PostgreSQL's per-contact advisory locks for the cap (a dry run reads only).
    """
    if not items:
        return {}
    verdicts: dict[str, Verdict] = {}
    for key in opted_out_keys(conn, items):  # one query (an empty list answers at once)
        verdicts[key] = Verdict.TRANSACTIONAL if consent.transactional else Verdict.OPTED_OUT
    if consent.cap is not None:
        candidates = [key for key, _ in items if verdicts.get(key) is not Verdict.OPTED_OUT]
        for key in capped(conn, campaign, candidates, consent.cap, now, lock=lock):
            verdicts[key] = Verdict.CAPPED
    return verdicts


def check_read_only(
    conn: Connection,
    campaign: str,
    items: Sequence[tuple[str, Identity]],
    consent: Consent,
    now: float,
) -> dict[str, Verdict]:
    """The same check for a dry run: no locks taken, nothing written."""
    return check(conn, campaign, items, consent, now, lock=False)


#: THE cap count, built once (it runs in every claim batch): the keys among ``keys`` with at
#: least ``messages`` claims of other campaigns, counted since ``since``.
_CAPPED = (
    sa.select(TABLE.c.key)
    .where(
        TABLE.c.key.in_(sa.bindparam("keys", expanding=True)),
        TABLE.c.campaign != sa.bindparam("campaign"),
        TABLE.c.state.in_(_COUNTED),
        TABLE.c.claimed_at >= sa.bindparam("since"),
    )
    .group_by(TABLE.c.key)
    .having(sa.func.count() >= sa.bindparam("messages"))
)


def capped(
    conn: Connection,
    campaign: str,
    keys: Sequence[str],
    cap: FrequencyCap,
    now: float,
    *,
    lock: bool = True,
) -> set[str]:
    """The contacts among ``keys`` that already had ``cap.messages`` campaign messages (claims
    of other campaigns that went out or may have) within the last ``cap.hours`` hours."""

    if not keys:
        return set()
    ordered = sorted(set(keys))
    if lock and conn.dialect.name == "postgresql":
        # one advisory lock per contact, in key order, held until this transaction ends: a
        # concurrent claim of the same contact by another campaign waits for our commit and
        # then counts our row
        conn.execute(
            sa.text(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 21))) "
                "FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"
            ),
            {"keys": ordered},
        )
    since = now - cap.hours * 3600.0
    over: set[str] = set()
    for start in range(0, len(ordered), _BATCH):
        params = {
            "keys": ordered[start : start + _BATCH],
            "campaign": campaign,
            "since": since,
            "messages": cap.messages,
        }
        found: list[Any] = list(conn.execute(_CAPPED, params).scalars())
        over.update(str(k) for k in found)
    return over


def resolve_cap(cap: FrequencyCap | dict[str, object] | None) -> FrequencyCap | None:
    """The cap a campaign runs with: its own, else ``AUTOTALK_FREQUENCY_CAP``, else none."""
    if cap is None:
        return ConsentSettings().frequency_cap
    if isinstance(cap, FrequencyCap):
        return cap
    if isinstance(cap, dict):
        return FrequencyCap.model_validate(cap)
    raise ValueError(
        f"frequency_cap must be {{'messages': N, 'hours': H}} or unset, got {type(cap).__name__}"
    )
