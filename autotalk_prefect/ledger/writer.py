"""The batched claim writer: concurrent async senders share transactions (group commit).

Every claim and outcome waiting at one moment rides in one transaction of the claim store
(``ledger/store.py``, whose ``claim``/``resolve`` statements it reuses inside that transaction).
One writer per chunk: it belongs to the event loop it was first used on.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from autotalk_prefect.ledger.consent import Consent, Verdict
from autotalk_prefect.ledger.database import TABLE, transaction
from autotalk_prefect.ledger.optouts import Identity
from autotalk_prefect.ledger.store import Claim, ClaimLedger, LedgerState, Resolution

__all__ = ["OURS", "ClaimWriter"]

OURS = ""  # ClaimWriter.claim: this run already holds the key


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
        run_id: str | None = None,
        *,
        resend_unknown: bool = False,
        consent: Consent | None = None,
        flow_run_id: str | None = None,
    ) -> None:
        self.ledger, self.run_id = ledger, run_id or uuid.uuid4().hex
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

    def resolve(self, resolution: Resolution) -> None:
        self._batch.resolutions.append(resolution)

    def _kick(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_loop())

    def _commit(self, batch: _Batch) -> dict[str, Any]:
        return transaction(self.ledger.engine, lambda conn: self._apply(conn, batch), write=True)

    def _apply(self, conn: Connection, batch: _Batch) -> dict[str, Any]:
        """One transaction: the batch's outcomes, then its claims."""
        if batch.resolutions:
            self.ledger.resolve_in(conn, batch.resolutions)
        if not batch.claims:
            return {}
        keys = [c for c, _ in batch.claims]
        verdicts: dict[str, Verdict] = {}
        won: dict[str, Any] = self.ledger.claim_in(
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
