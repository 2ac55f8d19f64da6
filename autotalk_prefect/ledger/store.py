"""The claim ledger: who was messaged, in a real database, with one atomic claim per key.

One row per (campaign, key) — key is a contact id for outreach, a step for onboarding and
replies. A send leaves only after its *claim* is committed: an ``INSERT ... ON CONFLICT DO
UPDATE ... WHERE state = 'failed'`` that succeeds for exactly one claimant (``RETURNING`` tells
who). Any other run — a thread, a process, another machine — finds the key claimed and skips it.
The claim row (``pending``) is then resolved by the call's outcome (see ``outcomes``): ``sent``,
``failed`` (may be claimed again) or ``unknown`` (never re-claimed unless the caller opts in).

Storage is any SQLAlchemy URL: a SQLite file by default (one machine, many processes: WAL,
a busy timeout, ``BEGIN IMMEDIATE`` for writes, deferred reads, and a bounded retry of a
transaction that SQLite refused as "database is locked" without waiting, which WAL mode does
while another process opens or closes the file), PostgreSQL (``postgresql://...``) for many
machines.
The async senders' batched writer (group commit) is ``ledger/writer.py``, on top of this store;
where the ledger lives (URL, engine, Secret block) is ``ledger/location.py`` + ``ledger/database.py``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autotalk_prefect.api.outcomes import Outcome, OutcomeState
from autotalk_prefect.ledger.consent import Consent, Verdict, check
from autotalk_prefect.ledger.database import TABLE, transaction
from autotalk_prefect.ledger.location import DEFAULT_LEDGER_DIR, LEDGER_URL_ENV, ledger_url
from autotalk_prefect.ledger.location import shown_url as _shown
from autotalk_prefect.ledger.optouts import Identity, ensure_table

__all__ = [
    "DEFAULT_LEDGER_DIR",
    "LEDGER_URL_ENV",
    "Claim",
    "ClaimLedger",
    "ContactStatus",
    "LedgerRow",
    "LedgerState",
    "Resolution",
    "ledger_url",
    "validate_campaign_id",
]

_CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MAX_REASON = 500
_MAX_BATCH = 500  # rows per INSERT statement (SQLite caps bound parameters per statement)
_ROWS_PAGE = 1000  # rows() reads this many per short read transaction
T = TypeVar("T")


#: Where one key stands: THE outcome enum of ``api.outcomes`` (one type from the client's rule to
#: these rows and the summaries; no mapping between spellings). The name is the ledger's.
LedgerState = OutcomeState


def validate_campaign_id(campaign_id: object) -> str:
    """Check a campaign id: 1-128 safe characters (it names the campaign in every store)."""
    if not isinstance(campaign_id, str) or not _CAMPAIGN_ID.fullmatch(campaign_id):
        raise ValueError(
            f"Invalid campaign_id {campaign_id!r}: use 1-128 characters from letters, digits, "
            "'.', '_' and '-', starting with a letter or digit."
        )
    return campaign_id


def _fetch_all(query: sa.Select[Any]) -> Callable[[Connection], list[Any]]:
    """A transaction's work: every row of ``query``."""
    return lambda conn: list(conn.execute(query))


def _insert(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(TABLE)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(TABLE)


_claim_statements: dict[tuple[str, tuple[LedgerState, ...]], Any] = {}


def _claim_statement(engine: Engine, reclaim: tuple[LedgerState, ...]) -> Any:
    """The claim upsert, built once per dialect and reclaim set and run with many rows at a time.

    One statement object (its states inline, every row value a bind parameter) lets SQLAlchemy
    compile it once and batch the rows itself ("insertmanyvalues": one multi-row INSERT ...
    RETURNING per batch); building it per batch compiled ~6,000 bind parameters every commit.
    """
    cache_key = (engine.dialect.name, reclaim)
    stmt = _claim_statements.get(cache_key)
    if stmt is not None:
        return stmt
    insert = _insert(engine)
    excluded = insert.excluded
    pending: sa.ColumnElement[str] = sa.literal_column(f"'{LedgerState.PENDING.value}'")
    stmt = insert.on_conflict_do_update(
        index_elements=[TABLE.c.campaign, TABLE.c.key],
        set_={
            "state": pending,
            "attempt": excluded.attempt,
            "attempts": TABLE.c.attempts + 1,
            "run_id": excluded.run_id,
            "message_id": sa.null(),
            "reason": sa.null(),
            "text": excluded.text,
            "raw": sa.null(),
            "claimed_at": excluded.claimed_at,
            "updated_at": excluded.updated_at,
            "flow_run_id": excluded.flow_run_id,
        },
        where=sa.or_(*(TABLE.c.state == sa.literal_column(f"'{s.value}'") for s in reclaim)),
    ).returning(TABLE.c.key, TABLE.c.attempt)
    _claim_statements[cache_key] = stmt
    return stmt


#: The outcome write, built once (every group commit runs it, with its rows as parameters).
_RESOLVE = (
    sa.update(TABLE)
    .where(
        TABLE.c.campaign == sa.bindparam("b_campaign"),
        TABLE.c.key == sa.bindparam("b_key"),
        TABLE.c.attempt == sa.bindparam("b_attempt"),
    )
    .values(
        state=sa.bindparam("b_state"),
        message_id=sa.bindparam("b_message_id"),
        reason=sa.bindparam("b_reason"),
        raw=sa.bindparam("b_raw"),
        updated_at=sa.bindparam("b_at"),
    )
)


# ---- reading --------------------------------------------------------------------------------


@dataclass
class ContactStatus:
    """Where one key stands, and why."""

    state: LedgerState
    message_id: str | None = None
    reason: str | None = None
    attempts: int = 0
    run_id: str | None = None
    flow_run_id: str | None = None


@dataclass(frozen=True)
class LedgerRow:
    """One key's row, as ``ledger export`` and reconciliation see it."""

    key: str
    state: LedgerState
    attempt: str
    attempts: int
    run_id: str | None
    message_id: str | None
    reason: str | None
    text: str | None
    claimed_at: float
    updated_at: float

    def as_dict(self) -> dict[str, Any]:
        from datetime import datetime, timezone

        def iso(t: float) -> str:
            return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")

        return {
            "contact_id": self.key,
            "state": self.state.value,
            "message_id": self.message_id,
            "attempts": self.attempts,
            "reason": self.reason,
            "claimed_at": iso(self.claimed_at),
            "updated_at": iso(self.updated_at),
        }


def _row(r: Any) -> LedgerRow:
    return LedgerRow(
        key=r.key,
        state=LedgerState(r.state),
        attempt=r.attempt,
        attempts=r.attempts,
        run_id=r.run_id,
        message_id=r.message_id,
        reason=r.reason,
        text=r.text,
        claimed_at=r.claimed_at,
        updated_at=r.updated_at,
    )


def _cap(reason: str | None) -> str | None:
    if reason is None or len(reason) <= _MAX_REASON:
        return reason
    return reason[: _MAX_REASON - 1] + "…"


@dataclass(frozen=True)
class Claim:
    """A claim request: ``key``, the text the call will send (for reconciliation) and who it
    goes to (``identity``: checked against the opt-out list when the claim has a consent)."""

    key: str
    text: str | None = None
    identity: Identity | None = None


@dataclass(frozen=True)
class Resolution:
    """An outcome to write over the claim ``attempt`` of ``key``."""

    key: str
    attempt: str
    state: LedgerState
    message_id: str | None = None
    reason: str | None = None
    raw: str | None = None

    @classmethod
    def of(cls, key: str, attempt: str, outcome: Outcome) -> Resolution:
        """The outcome rule's answer for ``key``, as the ledger writes it."""
        return cls(
            key,
            attempt,
            outcome.state,
            message_id=outcome.ref,
            reason=outcome.reason,
            raw=outcome.raw,
        )


class ClaimLedger:
    """One campaign's rows in the ledger database (sync; cheap to make, engines are shared)."""

    def __init__(self, campaign_id: str, storage: object = None) -> None:
        self.campaign_id = validate_campaign_id(campaign_id)

        self.url = ledger_url(storage)
        self.engine = ensure_table(self.url)  # the claims' table and the opt-out list's

    def describe(self) -> str:
        return f"{_shown(self.url).strip(chr(39))} (campaign {self.campaign_id})"

    def __reduce__(self) -> tuple[Any, ...]:
        # a ledger travels (to a Dask worker) as its campaign and URL; the engine is per process
        return (ClaimLedger, (self.campaign_id, self.url))

    # reading
    def statuses(self, keys: Iterable[str]) -> dict[str, ContactStatus]:
        """The rows of ``keys`` (one query per few hundred keys; absent keys are absent)."""
        wanted = list(dict.fromkeys(keys))
        c = TABLE.c

        def read(conn: Connection) -> dict[str, ContactStatus]:
            found: dict[str, ContactStatus] = {}
            for start in range(0, len(wanted), _MAX_BATCH):
                batch = wanted[start : start + _MAX_BATCH]
                query = sa.select(
                    c.key, c.state, c.message_id, c.reason, c.attempts, c.run_id, c.flow_run_id
                ).where(c.campaign == self.campaign_id, c.key.in_(batch))
                for r in conn.execute(query):
                    found[r.key] = ContactStatus(
                        LedgerState(r.state),
                        r.message_id,
                        r.reason,
                        r.attempts,
                        r.run_id,
                        r.flow_run_id,
                    )
            return found

        return transaction(self.engine, read, write=False)

    def status(self, key: str) -> ContactStatus | None:
        return self.statuses([key]).get(key)

    def counts(self) -> dict[str, int]:
        """Rows per state."""
        result = {state.value: 0 for state in LedgerState}
        c = TABLE.c
        query = (
            sa.select(c.state, sa.func.count())
            .where(c.campaign == self.campaign_id)
            .group_by(c.state)
        )
        rows = transaction(self.engine, _fetch_all(query), write=False)
        for state, count in rows:
            result[str(state)] = int(count)
        return result

    def rows(self, states: Sequence[LedgerState] | None = None) -> Iterator[LedgerRow]:
        """Every row (of ``states``), by key, streamed a page at a time.

        Each page is its own short read: a slow consumer holds no transaction open.
        """
        c = TABLE.c
        query = sa.select(TABLE).where(c.campaign == self.campaign_id)
        if states is not None:
            query = query.where(c.state.in_([s.value for s in states]))
        query = query.order_by(c.key).limit(_ROWS_PAGE)
        after: str | None = None
        while True:
            page_query = query if after is None else query.where(c.key > after)
            page = transaction(self.engine, _fetch_all(page_query), write=False)
            for r in page:
                yield _row(r)
            if len(page) < _ROWS_PAGE:
                return
            after = str(page[-1].key)

    # writing
    def claim(
        self,
        claims: Sequence[Claim],
        run_id: str,
        *,
        reclaim: Sequence[LedgerState] = (LedgerState.FAILED,),
        consent: Consent | None = None,
        flow_run_id: str | None = None,
        verdicts: dict[str, Verdict] | None = None,
    ) -> dict[str, str]:
        """Claim ``claims`` in one transaction: {key: attempt id} for the ones won.

        A key is won when it had no row, or its row is in ``reclaim`` (``failed``; plus
        ``unknown`` when the caller opted in to resending). Committed when this returns.
        With ``consent``, THE consent check (``ledger.consent.check``) runs first in the same
        transaction: an opted-out or capped key is not claimed, and ``verdicts`` (when given)
        receives why. ``flow_run_id``: the Prefect flow run making the claim.
        """
        return transaction(
            self.engine,
            lambda conn: self.claim_in(
                conn,
                claims,
                run_id,
                reclaim,
                consent=consent,
                flow_run_id=flow_run_id,
                verdicts=verdicts,
            ),
            write=True,
        )

    def claim_in(
        self,
        conn: Connection,
        claims: Sequence[Claim],
        run_id: str,
        reclaim: Sequence[LedgerState],
        *,
        consent: Consent | None = None,
        flow_run_id: str | None = None,
        verdicts: dict[str, Verdict] | None = None,
    ) -> dict[str, str]:
        won: dict[str, str] = {}
        now = time.time()
        # in key order: two runs claiming overlapping keys lock rows in the same order, so
        # PostgreSQL never has to break a deadlock between them
        unique = sorted({claim.key: claim for claim in claims}.values(), key=lambda c: c.key)
        if consent is not None:
            found = check(
                conn,
                self.campaign_id,
                [(c.key, c.identity or Identity(contact_id=c.key)) for c in unique],
                consent,
                now,
            )
            if verdicts is not None:
                verdicts.update(found)
            blocked = {key for key, v in found.items() if v is not Verdict.TRANSACTIONAL}
            unique = [c for c in unique if c.key not in blocked]
        for start in range(0, len(unique), _MAX_BATCH):
            batch = unique[start : start + _MAX_BATCH]
            attempts = {claim.key: uuid.uuid4().hex for claim in batch}
            rows = [
                {
                    "campaign": self.campaign_id,
                    "key": claim.key,
                    "state": LedgerState.PENDING.value,
                    "attempt": attempts[claim.key],
                    "attempts": 1,
                    "run_id": run_id,
                    "message_id": None,
                    "reason": None,
                    "text": claim.text,
                    "raw": None,
                    "claimed_at": now,
                    "updated_at": now,
                    "flow_run_id": flow_run_id,
                }
                for claim in batch
            ]
            stmt = _claim_statement(self.engine, tuple(reclaim))
            for key, attempt in conn.execute(stmt, rows).tuples():
                if attempts.get(str(key)) == attempt:
                    won[str(key)] = str(attempt)
        return won

    def resolve(self, resolutions: Sequence[Resolution]) -> None:
        """Write outcomes over their claims (a row re-claimed since is left alone)."""
        if not resolutions:
            return
        transaction(self.engine, lambda conn: self.resolve_in(conn, resolutions), write=True)

    def resolve_in(self, conn: Connection, resolutions: Sequence[Resolution]) -> None:
        now = time.time()
        conn.execute(
            _RESOLVE,
            [
                {
                    "b_campaign": self.campaign_id,
                    "b_key": r.key,
                    "b_attempt": r.attempt,
                    "b_state": r.state.value,
                    "b_message_id": r.message_id,
                    "b_reason": _cap(r.reason),
                    "b_raw": r.raw,
                    "b_at": now,
                }
                for r in sorted(resolutions, key=lambda r: r.key)  # key order, as claims
            ],
        )

    def record_failed(self, key: str, reason: str, run_id: str) -> None:
        """A key that failed before any call (a template error): a ``failed`` row, so reports
        show it; never overwrites a row in another state."""
        won = self.claim([Claim(key)], run_id)
        if key in won:
            self.resolve([Resolution(key, won[key], LedgerState.FAILED, reason=reason)])

    def mark_stopped(self, flow_run_id: str, reason: str) -> int:
        """The pending claims of ``flow_run_id`` (a flow run Prefect reports crashed,
        cancelled or failed) become ``unknown`` at once; returns how many. A claim re-made
        since (another attempt) is left alone."""
        c = TABLE.c
        stmt = (
            sa.update(TABLE)
            .where(
                c.campaign == self.campaign_id,
                c.flow_run_id == flow_run_id,
                c.state == LedgerState.PENDING.value,
            )
            .values(state=LedgerState.UNKNOWN.value, reason=_cap(reason), updated_at=time.time())
        )
        return int(
            transaction(self.engine, lambda conn: conn.execute(stmt).rowcount or 0, write=True)
        )


def as_mapping(statuses: Mapping[str, ContactStatus]) -> dict[str, str]:
    """{key: state} (for logs and tests)."""
    return {key: status.state.value for key, status in statuses.items()}
