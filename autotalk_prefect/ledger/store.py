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
Writers batch claims by *group commit*: every claim waiting at a moment shares one transaction.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autotalk_prefect.ledger.consent import Consent, Verdict, check
from autotalk_prefect.ledger.database import TABLE, transaction
from autotalk_prefect.ledger.location import DEFAULT_LEDGER_DIR, LEDGER_URL_ENV, ledger_url
from autotalk_prefect.ledger.location import shown_url as _shown
from autotalk_prefect.ledger.optouts import Identity, ensure_table

__all__ = [
    "DEFAULT_LEDGER_DIR",
    "LEDGER_URL_ENV",
    "OURS",
    "Claim",
    "ClaimLedger",
    "ClaimWriter",
    "ContactStatus",
    "LedgerRow",
    "LedgerState",
    "Resolution",
    "ledger_url",
    "validate_campaign_id",
]

_CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MAX_REASON = 500
OURS = ""  # ClaimWriter.claim: this run already holds the key
_MAX_BATCH = 500  # rows per INSERT statement (SQLite caps bound parameters per statement)
_ROWS_PAGE = 1000  # rows() reads this many per short read transaction
T = TypeVar("T")


class LedgerState(str, enum.Enum):
    """Where one key stands."""

    PENDING = "pending"  # claimed: the call is in flight (or its run stopped before knowing)
    SENT = "sent"  # applied (message id recorded when one was found)
    FAILED = "failed"  # definitely not applied: the only state that may be claimed again
    UNKNOWN = "unknown"  # may have been applied: re-claimed only when the caller opts in


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


class ClaimLedger:
    """One campaign's rows in the ledger database (sync; cheap to make, engines are shared)."""

    def __init__(self, campaign_id: str, storage: object = None) -> None:
        self.campaign_id = validate_campaign_id(campaign_id)

        self.url = ledger_url(storage)
        self.engine = ensure_table(self.url)  # the claims' table and the opt-out list's

    def describe(self) -> str:
        return f"{_shown(self.url).strip(chr(39))} (campaign {self.campaign_id})"

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
            lambda conn: self._claim(
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

    def _claim(
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
        transaction(self.engine, lambda conn: self._resolve(conn, resolutions), write=True)

    def _resolve(self, conn: Connection, resolutions: Sequence[Resolution]) -> None:
        c = TABLE.c
        stmt = (
            sa.update(TABLE)
            .where(
                c.campaign == sa.bindparam("b_campaign"),
                c.key == sa.bindparam("b_key"),
                c.attempt == sa.bindparam("b_attempt"),
            )
            .values(
                state=sa.bindparam("b_state"),
                message_id=sa.bindparam("b_message_id"),
                reason=sa.bindparam("b_reason"),
                raw=sa.bindparam("b_raw"),
                updated_at=sa.bindparam("b_at"),
            )
        )
        now = time.time()
        conn.execute(
            stmt,
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

    def writer(
        self,
        run_id: str | None = None,
        *,
        resend_unknown: bool = False,
        consent: Consent | None = None,
        flow_run_id: str | None = None,
    ) -> ClaimWriter:
        """A group-commit writer for async senders (one per chunk)."""
        return ClaimWriter(
            self,
            run_id or uuid.uuid4().hex,
            resend_unknown=resend_unknown,
            consent=consent,
            flow_run_id=flow_run_id,
        )

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


# ---- group commit ---------------------------------------------------------------------------


@dataclass
class _Batch:
    claims: list[tuple[Claim, asyncio.Future[Any]]] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)


class ClaimWriter:
    """Batches claims and outcomes of concurrent async senders into shared transactions.

    ``await claim(key, text)`` returns the attempt id once the claim is committed (the send may
    leave), ``None`` when another run holds the key, ``OURS`` (``""``) when this run already
    holds it (the key came up twice), or a consent ``Verdict`` (opted out, capped) when the
    writer has a ``consent`` and it blocked the key; keys claimed only by the transactional
    override are listed in ``overridden``. Outcomes ride along with the next commit;
    ``await close()`` commits what is left. A failed commit fails every waiting claim (their
    sends must not go out) and every later one.
    """

    def __init__(
        self,
        ledger: ClaimLedger,
        run_id: str,
        *,
        resend_unknown: bool,
        consent: Consent | None = None,
        flow_run_id: str | None = None,
    ) -> None:
        self.ledger, self.run_id = ledger, run_id
        self.consent, self.flow_run_id = consent, flow_run_id
        self.overridden: set[str] = set()
        self.reclaim: tuple[LedgerState, ...] = (
            (LedgerState.FAILED, LedgerState.UNKNOWN, LedgerState.PENDING)
            if resend_unknown
            else (LedgerState.FAILED,)
        )
        self._batch = _Batch()
        self._flushing: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self.commits = 0
        self.claims_made = 0

    async def __aenter__(self) -> ClaimWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def claim(
        self, key: str, text: str | None = None, identity: Identity | None = None
    ) -> str | Verdict | None:
        if self._error is not None:
            raise self._error
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.claims.append((Claim(key, text, identity), waiter))
        self._kick()
        answer: str | Verdict | None = await waiter
        return answer

    def resolve(self, key: str, attempt: str, state: LedgerState, **fields: Any) -> None:
        self._batch.resolutions.append(Resolution(key, attempt, state, **fields))

    def _kick(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_loop())

    def _commit(self, batch: _Batch) -> dict[str, Any]:
        return transaction(self.ledger.engine, lambda conn: self._apply(conn, batch), write=True)

    def _apply(self, conn: Connection, batch: _Batch) -> dict[str, Any]:
        """One transaction: the batch's outcomes, then its claims."""
        if batch.resolutions:
            self.ledger._resolve(conn, batch.resolutions)
        if not batch.claims:
            return {}
        keys = [c for c, _ in batch.claims]
        verdicts: dict[str, Verdict] = {}
        won: dict[str, Any] = self.ledger._claim(
            conn,
            keys,
            self.run_id,
            self.reclaim,
            consent=self.consent,
            flow_run_id=self.flow_run_id,
            verdicts=verdicts,
        )
        for key, verdict in verdicts.items():
            if key in won:  # claimed by the transactional override
                self.overridden.add(key)
            else:
                won[key] = verdict
        lost = [c.key for c in keys if c.key not in won]
        if lost:  # held by this very run (a contact listed twice)? say so, not "another run"
            c = TABLE.c
            query = sa.select(c.key).where(
                c.campaign == self.ledger.campaign_id,
                c.key.in_(lost),
                c.run_id == self.run_id,
            )
            held: list[Any] = list(conn.execute(query).scalars())
            won.update({str(key): OURS for key in held})
        return won

    async def _flush_loop(self) -> None:
        while (self._batch.claims or self._batch.resolutions) and self._error is None:
            batch, self._batch = self._batch, _Batch()
            try:
                won = await asyncio.to_thread(self._commit, batch)
            except Exception as exc:
                self._error = exc
                for _, waiter in [*batch.claims, *self._batch.claims]:
                    if not waiter.done():
                        waiter.set_exception(exc)
                self._batch.claims = []
                return
            self.commits += 1
            seen: set[str] = set()
            for claim, waiter in batch.claims:
                # the same key twice in one batch: only its first claimant may send
                attempt = won.get(claim.key) if claim.key not in seen else OURS
                seen.add(claim.key)
                self.claims_made += isinstance(attempt, str) and bool(attempt)
                if not waiter.done():
                    waiter.set_result(attempt)

    async def flush(self) -> None:
        """Commit everything buffered (raises if the database failed)."""
        if self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)
        if (self._batch.claims or self._batch.resolutions) and self._error is None:
            self._kick()
            assert self._flushing is not None
            await self._flushing
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        await self.flush()


def as_mapping(statuses: Mapping[str, ContactStatus]) -> dict[str, str]:
    """{key: state} (for logs and tests)."""
    return {key: status.state.value for key, status in statuses.items()}
