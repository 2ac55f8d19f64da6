"""The upsert engine: one chunk of warehouse rows into Dynadata, each key created at most once.

The plan (:class:`ChunkPlanner`, in the flow, no task and no client): map, hash and validate
each source chunk's rows and read the state table for their keys (one query); a known key with
the same hash is ``unchanged`` there, a row that cannot be mapped or breaks the schema is
``failed`` there. Only the rest (new keys, changed rows) becomes a :class:`ChunkJob`: a re-run
with 1% changed starts one task per ``chunk_size`` changed rows, not one per source chunk.

Per job (one Prefect task): read the claims of the keys the state does not know (one query);
then

* known key, new hash -> ``update`` (PUT, idempotent, retried by the client as such);
* unknown key -> claim (one transaction for the chunk), then ``create``; a key claimed by
  another run, or left ``pending``/``unknown`` by an earlier one, is looked up by its key in
  AutoTalk instead: found -> adopted (updated if it differs); not found and its run is over
  -> the stale claim is released and the key created; else ``unknown``.

A create answered ambiguously (no answer, a 5xx) is looked up by key at once: found ->
``created``; not found -> ``unknown`` (the next run looks again). Nothing creates a key twice:
a create leaves only after its claim committed, and a claim is re-taken only after a lookup
shows the key absent and the claim's run ended. State rows and claim outcomes are written once
per chunk, after the calls.
"""

from __future__ import annotations

import asyncio
import csv
import time
import uuid
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import sqlalchemy as sa
from pydantic import BaseModel, Field

from autotalk_prefect.api.errors import (
    AuthenticationError,
    AutoTalkError,
    NotFoundError,
    PermissionDeniedError,
)
from autotalk_prefect.api.outcomes import from_exception
from autotalk_prefect.api.retries import count_retries
from autotalk_prefect.credentials import resolve_credentials
from autotalk_prefect.flows.warehouse_in.mapping import RowMapper, TypeSchema, document_hash
from autotalk_prefect.flows.warehouse_in.source import Row
from autotalk_prefect.flows.warehouse_in.state import KnownItem, StateRow, WarehouseState
from autotalk_prefect.ledger.database import TABLE as CLAIMS
from autotalk_prefect.ledger.database import transaction
from autotalk_prefect.ledger.once import ledger_name
from autotalk_prefect.ledger.store import (
    Claim,
    ClaimLedger,
    LedgerState,
    Resolution,
)
from autotalk_prefect.ratelimit import GlobalRateLimit, TokenBucket

if TYPE_CHECKING:
    from autotalk_prefect.api.client import AsyncAutoTalkClient

__all__ = [
    "MAX_LISTED",
    "ChunkJob",
    "ChunkPlanner",
    "ChunkReport",
    "Diff",
    "Plan",
    "PlannedRow",
    "ResultLine",
    "RowResult",
    "claims_ledger",
    "read_chunk_lines",
    "read_chunk_results",
    "upsert_chunk",
    "write_chunk_results",
]

Outcome = Literal["created", "updated", "unchanged", "failed", "unknown"]
OUTCOMES: tuple[Outcome, ...] = ("created", "updated", "unchanged", "failed", "unknown")
MAX_LISTED = 200  # failed / unknown rows a chunk (and the run's summary) lists
_FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


def claims_ledger(dynadata_type: str, storage: object) -> ClaimLedger:
    """The claim ledger of a type's creates (one ledger per type, keyed by the row key)."""
    return ClaimLedger(ledger_name("warehouse", dynadata_type), storage)


class RowResult(BaseModel):
    """How one row ended."""

    key: str
    item_id: str | None = None
    outcome: Outcome
    error: str | None = None


class Diff(BaseModel):
    """What a (dry-run) update would change in one item: field -> [old, new]."""

    key: str
    item_id: str | None = None
    action: Literal["create", "update"]
    changes: dict[str, list[Any]] = Field(default_factory=dict)


class ChunkReport(BaseModel):
    """What one chunk did: its outcome counts, the file holding every row's result, at most
    ``MAX_LISTED`` failed or unknown rows, the API calls it made, sample diffs.

    Small whatever the chunk's size: the rows' results go to ``results_file`` (CSV: key,
    item id, outcome, error) as the chunk ends, so a million-row run keeps no result per row in
    memory (a task's return value lives as long as Prefect keeps the task run's state).
    """

    number: int
    rows: int = 0
    counts: dict[str, int] = Field(default_factory=lambda: {str(o): 0 for o in OUTCOMES})
    problems: list[RowResult] = Field(default_factory=list)
    results_file: str | None = None
    calls: dict[str, int] = Field(default_factory=dict)
    diffs: list[Diff] = Field(default_factory=list)
    retries: dict[str, int] = Field(default_factory=dict)


def write_chunk_results(path: Path, results: Iterable[RowResult]) -> None:
    """One chunk's row results as CSV (no header): key, item id, outcome, error."""
    with path.open("w", newline="", encoding="utf-8") as file:
        out = csv.writer(file)
        for r in results:
            out.writerow((r.key, r.item_id or "", r.outcome, r.error or ""))


ResultLine = tuple[str, str, str, str]
"""A row's result as written: key, item id (or ""), outcome, error (or "")."""


def read_chunk_lines(path: Path) -> Iterator[ResultLine]:
    """The lines ``write_chunk_results`` wrote, in order, as text (no model per row)."""
    with path.open(newline="", encoding="utf-8") as file:
        yield from (cast(ResultLine, tuple(line)) for line in csv.reader(file))


def read_chunk_results(path: Path) -> Iterator[RowResult]:
    """The rows ``write_chunk_results`` wrote, in order."""
    for key, item_id, outcome, error in read_chunk_lines(path):
        yield RowResult(
            key=key,
            item_id=item_id or None,
            outcome=cast(Outcome, outcome),
            error=error or None,
        )


@dataclass
class PlannedRow:
    """A source row mapped, keyed and hashed (what a job writes)."""

    key: str
    document: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class ChunkJob:
    """Everything one chunk task needs, as one value (opaque to Prefect: passed quoted):
    planned rows that need a call (new keys, changed rows) and what the state knows of them."""

    rows: list[PlannedRow]
    known: dict[str, KnownItem]
    number: int
    dynadata_type: str
    key: str
    mapping: dict[str, str] | None
    schema: dict[str, Any]
    ledger_url: str
    run_id: str
    credentials: Any
    concurrency: int = 16
    requests_per_second: float | None = None
    global_rate_limit_name: str | None = None
    dry_run: bool = False
    sample_diffs: int = 0
    stale_claim_seconds: float = 15 * 60.0
    results_dir: str | None = None  # where the chunk writes its rows' results (else kept none)


@dataclass
class _ClaimRow:
    state: LedgerState
    attempt: str
    run_id: str | None
    claimed_at: float
    item_id: str | None


@dataclass
class _Chunk:
    """The mutable bookkeeping of one chunk run."""

    results: dict[str, RowResult] = field(default_factory=dict)
    state_rows: list[StateRow] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    diffs: list[Diff] = field(default_factory=list)

    def call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def done(
        self,
        row: PlannedRow,
        outcome: Outcome,
        item_id: str | None,
        error: str | None = None,
        *,
        record: bool = True,
    ) -> None:
        """The row's result; its state row too unless the state already holds it (a re-run
        of unchanged rows writes nothing to the state table)."""
        self.results[row.key] = RowResult(
            key=row.key, item_id=item_id, outcome=outcome, error=error
        )
        if record and outcome in ("created", "updated", "unchanged") and item_id:
            self.state_rows.append(StateRow(row.key, item_id, row.hash))


def _claim_rows(ledger: ClaimLedger, keys: list[str]) -> dict[str, _ClaimRow]:
    """The claims of ``keys``, with their attempt ids (a stale one is released by attempt)."""
    c = CLAIMS.c

    def read(conn: Any) -> dict[str, _ClaimRow]:
        found: dict[str, _ClaimRow] = {}
        for start in range(0, len(keys), 500):
            query = sa.select(
                c.key, c.state, c.attempt, c.run_id, c.claimed_at, c.message_id
            ).where(c.campaign == ledger.campaign_id, c.key.in_(keys[start : start + 500]))
            for r in conn.execute(query):
                found[r.key] = _ClaimRow(
                    LedgerState(r.state), r.attempt, r.run_id, float(r.claimed_at), r.message_id
                )
        return found

    return transaction(ledger.engine, read, write=False)


class _RunStates:
    """Whether the Prefect flow run that made a claim is over (cached per chunk)."""

    def __init__(self) -> None:
        self._over: dict[str, bool] = {}

    async def over(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        if run_id not in self._over:
            self._over[run_id] = await self._read(run_id)
        return self._over[run_id]

    @staticmethod
    async def _read(run_id: str) -> bool:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        try:
            flow_run_id = uuid.UUID(run_id)
        except ValueError:
            return False  # not a Prefect run: only its age can tell
        try:
            async with get_client() as client:
                run = await client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            return True  # deleted: nothing of it runs any more
        except Exception:
            return False
        return run.state is not None and run.state.type.value in _FINAL_STATES


def _differences(item: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, list[Any]]:
    return {
        name: [item.get(name), value] for name, value in document.items() if item.get(name) != value
    }


@dataclass
class Plan:
    """One source chunk, planned: the rows that need no call (``unchanged``, and ``failed``
    ones that cannot be mapped or break the schema) are decided; the rest wait for a job."""

    pending: list[PlannedRow] = field(default_factory=list)
    known: dict[str, KnownItem] = field(default_factory=dict)  # the pending rows' state
    unchanged: list[tuple[str, str]] = field(default_factory=list)  # key, item id
    failed: list[RowResult] = field(default_factory=list)


class ChunkPlanner:
    """Maps, hashes and validates source rows and compares them with the state, in the flow:
    an unchanged row costs a dict, a hash and its share of one state query, no task, no call."""

    def __init__(
        self,
        schema: TypeSchema,
        key: str,
        mapping: dict[str, str] | None,
        state: WarehouseState,
        adopted: dict[str, KnownItem] | None = None,
    ) -> None:
        self.schema, self.key, self.mapping, self.state = schema, key, mapping, state
        self.mapper = RowMapper(schema, key, mapping)
        self.adopted = adopted  # a dry first run: the key index kept in memory

    def plan(self, rows: Iterable[Row]) -> Plan:
        plan = Plan()
        planned = self._prepare(rows, plan)
        known = self._known(planned)
        for row in planned:
            item = known.get(row.key)
            if item is not None and item.hash == row.hash:
                plan.unchanged.append((row.key, item.item_id))
                continue  # unchanged rows are not checked again: they were valid when sent
            issues = self.schema.issues(row.document)
            if issues:
                plan.failed.append(
                    RowResult(key=row.key, outcome="failed", error="; ".join(issues))
                )
                continue
            plan.pending.append(row)
            if item is not None:
                plan.known[row.key] = item
        return plan

    def _prepare(self, rows: Iterable[Row], plan: Plan) -> list[PlannedRow]:
        """Map, key and hash; a row that cannot be mapped is ``failed`` here, with its reason."""
        planned: list[PlannedRow] = []
        seen: set[str] = set()

        def fail(key: str, error: str) -> None:
            plan.failed.append(RowResult(key=key, outcome="failed", error=error))

        for row in rows:
            try:
                document = self.mapper.document(row)
            except (TypeError, ValueError) as exc:
                fail(str(row.get(self._key_column()) or ""), f"cannot map the row: {exc}")
                continue
            key = self.mapper.key_of(document)
            if key is None:
                fail("", f"{self.key}: the key is empty")
                continue
            if key in seen:
                fail(key, "the key appears twice in the source: an earlier row has it")
                continue
            seen.add(key)
            planned.append(PlannedRow(key, document, document_hash(document)))
        return planned

    def _known(self, rows: list[PlannedRow]) -> dict[str, KnownItem]:
        known = self.state.known([r.key for r in rows])
        if self.adopted is not None:
            found = {r.key: self.adopted[r.key] for r in rows if r.key in self.adopted}
            known = {**found, **known}
        return known

    def _key_column(self) -> str:
        if self.mapping is None:
            return self.key
        return next((c for c, f in self.mapping.items() if f == self.key), self.key)


class ChunkUpserter:
    """Runs one job (planned rows) against AutoTalk with bounded concurrency and the shared
    rate limits."""

    def __init__(self, job: ChunkJob, client: AsyncAutoTalkClient) -> None:
        self.job, self.client = job, client
        self.schema = TypeSchema(job.dynadata_type, job.schema)
        self.mapper = RowMapper(self.schema, job.key, job.mapping)
        self.state = WarehouseState(job.dynadata_type, job.ledger_url)
        self.ledger = claims_ledger(job.dynadata_type, job.ledger_url)
        self.semaphore = asyncio.Semaphore(job.concurrency)
        self.bucket = TokenBucket(job.requests_per_second) if job.requests_per_second else None
        self.limit = (
            GlobalRateLimit(job.global_rate_limit_name) if job.global_rate_limit_name else None
        )
        self.runs = _RunStates()
        self.chunk = _Chunk()

    async def run(self) -> ChunkReport:
        rows, known = self.job.rows, self.job.known
        if self.job.dry_run:
            await self._dry(rows, known)
        else:
            await self._write(rows, known)
        results = [self.chunk.results[r.key] for r in rows if r.key in self.chunk.results]
        report = ChunkReport(
            number=self.job.number,
            rows=len(results),
            problems=[r for r in results if r.outcome in ("failed", "unknown")][:MAX_LISTED],
            calls=dict(self.chunk.calls),
            diffs=self.chunk.diffs,
        )
        for r in results:
            report.counts[r.outcome] += 1
        if self.job.results_dir is not None:
            path = Path(self.job.results_dir) / f"chunk-{self.job.number:07d}.csv"
            await asyncio.to_thread(write_chunk_results, path, results)
            report.results_file = str(path)
        return report

    async def _write(self, rows: list[PlannedRow], known: dict[str, KnownItem]) -> None:
        new = [r for r in rows if r.key not in known]
        claims = await asyncio.to_thread(_claim_rows, self.ledger, [r.key for r in new])
        to_create: list[PlannedRow] = []
        to_look_up: list[tuple[PlannedRow, _ClaimRow | None]] = []
        for row in new:
            claim = claims.get(row.key)
            if claim is None or claim.state is LedgerState.FAILED:
                to_create.append(row)
            else:  # created before (its state row lost), or in flight / unknown: ask AutoTalk
                to_look_up.append((row, claim))
        work: list[Coroutine[Any, Any, None]] = []
        for row in rows:
            item = known.get(row.key)
            if item is None:
                continue
            if item.hash == row.hash:  # planned as pending anyway: nothing to send or record
                self.chunk.done(row, "unchanged", item.item_id, record=False)
            else:
                work.append(self._update(row, item.item_id))
        work += [self._reconcile(row, claim) for row, claim in to_look_up]
        won = await asyncio.to_thread(self._claim, to_create)
        for row in to_create:
            if row.key in won:
                work.append(self._create(row, won[row.key]))
            else:  # another run claimed it between our read and our claim
                work.append(self._reconcile(row, None))
        try:
            await asyncio.gather(*work)
        finally:
            await asyncio.to_thread(self._commit)

    def _claim(self, rows: list[PlannedRow]) -> dict[str, str]:
        if not rows:
            return {}
        return self.ledger.claim([Claim(r.key) for r in rows], self.job.run_id)

    def _commit(self) -> None:
        """The chunk's state rows, then its claim outcomes (a crash between them is
        reconciled by a lookup on the next run)."""
        self.state.record(self.chunk.state_rows, self.job.run_id)
        self.ledger.resolve(self.chunk.resolutions)

    # ---- calls -------------------------------------------------------------------------------

    async def _slot(self) -> None:
        if self.bucket is not None:
            await self.bucket.acquire()
        if self.limit is not None:
            await self.limit.acquire()

    async def _update(self, row: PlannedRow, item_id: str) -> None:
        async with self.semaphore:
            await self._slot()
            self.chunk.call("update")
            try:
                await self.client.update_dynadata_item(
                    self.job.dynadata_type, item_id, row.document
                )
            except NotFoundError:
                pass  # deleted in AutoTalk since: created again below
            except AutoTalkError as exc:
                self._stop_if_refused(exc)
                self.chunk.done(row, "failed", item_id, str(exc))
                return
            else:
                self.chunk.done(row, "updated", item_id)
                return
        await self._recreate(row)

    async def _recreate(self, row: PlannedRow) -> None:
        """The state's item is gone from AutoTalk: release the key's old claim and create."""
        claims = await asyncio.to_thread(_claim_rows, self.ledger, [row.key])
        old = claims.get(row.key)
        if old is not None and old.state is not LedgerState.FAILED:
            await asyncio.to_thread(
                self.ledger.resolve,
                [
                    Resolution(
                        row.key, old.attempt, LedgerState.FAILED, reason="item deleted in AutoTalk"
                    )
                ],
            )
        won = await asyncio.to_thread(self._claim, [row])
        if row.key in won:
            await self._create(row, won[row.key])
        else:
            await self._reconcile(row, None)

    async def _create(self, row: PlannedRow, attempt: str) -> None:
        async with self.semaphore:
            await self._slot()
            self.chunk.call("create")
            try:
                item = await self.client.create_dynadata_item(self.job.dynadata_type, row.document)
            except AutoTalkError as exc:
                self._stop_if_refused(exc, row.key, attempt)
                outcome = from_exception(exc, create=True)
                if outcome.state == "failed":
                    self._resolve(row.key, attempt, LedgerState.FAILED, reason=str(exc))
                    self.chunk.done(row, "failed", None, str(exc))
                    return
                error = str(exc)
            else:
                if item.id:
                    self._resolve(row.key, attempt, LedgerState.SENT, item_id=item.id)
                    self.chunk.done(row, "created", item.id)
                    return
                error = "created, but the answer named no item id"
        # ambiguous (or accepted without an id): AutoTalk itself says whether it exists
        try:
            found = await self._look_up(row)
        except (AutoTalkError, LookupError) as exc:
            found, error = None, f"{error}; the lookup failed too ({exc})"
        if found is not None:
            self._resolve(row.key, attempt, LedgerState.SENT, item_id=found["_id"])
            self.chunk.done(row, "created", found["_id"])
            return
        self._resolve(row.key, attempt, LedgerState.UNKNOWN, reason=error)
        self.chunk.done(
            row, "unknown", None, f"{error}; not found by key yet (the next run looks again)"
        )

    def _resolve(
        self,
        key: str,
        attempt: str,
        state: LedgerState,
        *,
        item_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.chunk.resolutions.append(
            Resolution(key, attempt, state, message_id=item_id, reason=reason)
        )

    def _stop_if_refused(
        self, exc: AutoTalkError, key: str | None = None, attempt: str | None = None
    ) -> None:
        """A rejected key stops the whole run: every other call would fail the same way."""
        if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
            if key is not None and attempt is not None:
                self._resolve(key, attempt, LedgerState.FAILED, reason=str(exc))
            raise exc

    async def _look_up(self, row: PlannedRow) -> dict[str, Any] | None:
        """The item whose key field equals the row's key (the first listed, if several).

        A server that ignored the filter (it listed items with other keys) cannot answer:
        that raises, and the row stays ``unknown`` rather than risk a second create.
        """
        async with self.semaphore:
            self.chunk.call("lookup")
            filters = {self.job.key: row.key}
            async for page in self.client.iter_dynadata_pages(
                self.job.dynadata_type, page_size=2, **filters
            ):
                for item in page:
                    if item.id and self.mapper.key_of(item.data) == row.key:
                        return {"_id": item.id, **item.data}
                if page:
                    raise LookupError(
                        f"the list of {self.job.dynadata_type!r} ignored the filter "
                        f"{self.job.key}=...: items cannot be looked up by key"
                    )
                break  # one page is enough: the first match is the one
        return None

    async def _reconcile(self, row: PlannedRow, claim: _ClaimRow | None) -> None:
        """A key with a claim but no state: adopt what AutoTalk holds, or create it once."""
        try:
            found = await self._look_up(row)
        except (AutoTalkError, LookupError) as exc:
            if isinstance(exc, AutoTalkError):
                self._stop_if_refused(exc)
            self.chunk.done(row, "unknown", None, f"could not look the key up: {exc}")
            return
        if found is not None:
            if claim is not None and claim.state is not LedgerState.SENT:
                self._resolve(row.key, claim.attempt, LedgerState.SENT, item_id=found["_id"])
            await self._adopt(row, found)
            return
        if claim is None:  # held by another run right now (it won the claim)
            claims = await asyncio.to_thread(_claim_rows, self.ledger, [row.key])
            claim = claims.get(row.key)
            if claim is None or claim.state is LedgerState.FAILED:
                won = await asyncio.to_thread(self._claim, [row])
                if row.key in won:
                    await self._create(row, won[row.key])
                    return
                claim = None
        if claim is not None and await self._claim_is_over(claim):
            await asyncio.to_thread(
                self.ledger.resolve,
                [
                    Resolution(
                        row.key,
                        claim.attempt,
                        LedgerState.FAILED,
                        reason="not in AutoTalk, and the run that claimed it is over",
                    )
                ],
            )
            won = await asyncio.to_thread(self._claim, [row])
            if row.key in won:
                await self._create(row, won[row.key])
                return
        self.chunk.done(
            row,
            "unknown",
            None,
            "another run is creating this key (or stopped before recording it): not created "
            "twice; the next run looks it up again",
        )

    async def _claim_is_over(self, claim: _ClaimRow) -> bool:
        if claim.state is LedgerState.SENT:
            return True  # created, and AutoTalk no longer holds it: deleted since
        if time.time() - claim.claimed_at >= self.job.stale_claim_seconds:
            return True
        return claim.run_id != self.job.run_id and await self.runs.over(claim.run_id)

    async def _adopt(self, row: PlannedRow, item: dict[str, Any]) -> None:
        """An item found by key: record it, and update it if it differs from the row."""
        changes = _differences(item, row.document)
        if not changes:
            self.chunk.done(row, "unchanged", item["_id"])
            return
        await self._update(row, item["_id"])

    # ---- dry run -----------------------------------------------------------------------------

    async def _dry(self, rows: list[PlannedRow], known: dict[str, KnownItem]) -> None:
        """What a real run would do, from the state (or the key index), writing nothing."""
        samples: list[tuple[PlannedRow, str]] = []
        for row in rows:
            item = known.get(row.key)
            if item is None:
                self.chunk.done(row, "created", None)
                if len(self.chunk.diffs) < self.job.sample_diffs:
                    self.chunk.diffs.append(
                        Diff(
                            key=row.key,
                            action="create",
                            changes={k: [None, v] for k, v in row.document.items()},
                        )
                    )
            elif item.hash == row.hash:
                self.chunk.done(row, "unchanged", item.item_id)
            else:
                self.chunk.done(row, "updated", item.item_id)
                if len(samples) + len(self.chunk.diffs) < self.job.sample_diffs:
                    samples.append((row, item.item_id))
        self.chunk.state_rows.clear()  # a dry run records nothing

        async def sample(row: PlannedRow, item_id: str) -> None:
            async with self.semaphore:
                self.chunk.call("read")
                try:
                    current = (
                        await self.client.get_dynadata_item(self.job.dynadata_type, item_id)
                    ).data
                except AutoTalkError:
                    current = {}
            self.chunk.diffs.append(
                Diff(
                    key=row.key,
                    item_id=item_id,
                    action="update",
                    changes=_differences(current, row.document),
                )
            )

        await asyncio.gather(*(sample(r, i) for r, i in samples))


async def upsert_chunk(job: ChunkJob) -> ChunkReport:
    """One chunk, start to finish, with its own client."""
    credentials = resolve_credentials(job.credentials)
    with count_retries() as tally:
        async with credentials.get_async_client(max_connections=job.concurrency) as client:
            report = await ChunkUpserter(job, client).run()
    report.retries = dict(tally.by_reason)
    return report
