"""Sending a campaign's chunks: the send context built once, the chunk sender, the chunk queue.

The flow resolves everything a send needs ONCE, into one picklable :class:`SendContext`: the
credentials block (its key a ``SecretStr``), the compiled template, the campaign's ledger, the
throttles (token bucket, Prefect global rate limit), consent, quiet hours. Each chunk task gets
a :class:`ChunkJob` (that context, its contacts, its number) and uses the context as it is: with
the thread runner the very same objects, on a Dask worker an unpickled copy (the template
compiles and the ledger's engine opens once per worker process, through their caches). What a
chunk makes itself is only what belongs to its own event loop: an async client (its connection
pool) and a claim writer (its group commit).

:func:`send_chunks` is the submit/collect loop the flow runs: at most ``parallel_chunks`` chunks
in flight, the next one read from the audience while they send, then the contacts that quiet
hours held back, each zone when its window opens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect.futures import PrefectFuture, as_completed

from autotalk_prefect.api.errors import AuthenticationError, AutoTalkError, PermissionDeniedError
from autotalk_prefect.api.outcomes import FAILED, SENT, Outcome, from_answer, from_exception
from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.outreach import quiet as quiet_hours
from autotalk_prefect.flows.outreach.engine import (
    CLAIMED_REASON,
    ChunkResult,
    ContactProblem,
    Totals,
    WorkItem,
    chunked,
)
from autotalk_prefect.flows.outreach.quiet import QuietRule, QuietTally
from autotalk_prefect.flows.templating import MessageTemplate, RenderError
from autotalk_prefect.ledger.consent import Consent, Verdict
from autotalk_prefect.ledger.optouts import Identity, default_region
from autotalk_prefect.ledger.store import ClaimLedger, Resolution
from autotalk_prefect.ledger.writer import OURS, ClaimWriter
from autotalk_prefect.ratelimit import GlobalRateLimit, TokenBucket

if TYPE_CHECKING:
    from autotalk_prefect.api.client import AsyncAutoTalkClient

__all__ = [
    "ChunkJob",
    "ChunkSender",
    "SendContext",
    "send_chunk_async",
    "send_chunks",
    "send_context",
]


@dataclass(frozen=True)
class SendContext:
    """Everything every send of one campaign run uses, resolved once by the flow (picklable).

    ``concurrency`` is each chunk's share of the run's; ``bucket`` is shared by the chunks of
    one process (threads: the run's rate) or copied to each Dask chunk (its share of the rate).
    """

    campaign_id: str
    run_id: str
    credentials: AutoTalkCredentials = field(repr=False)
    template: MessageTemplate
    ledger: ClaimLedger
    concurrency: int = 16
    channel_id: str | None = None
    bucket: TokenBucket | None = None
    global_limit: GlobalRateLimit | None = None
    fetch_type: str | None = None  # an id-list audience: fetch records from this type
    resend_unknown: bool = False
    consent: Consent = field(default_factory=Consent)
    flow_run_id: str | None = None
    phone_field: str = "phone"
    email_field: str = "email"
    quiet: QuietRule | None = None
    region: str = ""  # the opt-out check's phone region, read once


def send_context(
    *,
    campaign_id: str,
    run_id: str,
    credentials: AutoTalkCredentials,
    template: MessageTemplate,
    ledger: ClaimLedger,
    max_concurrency: int,
    parallel_chunks: int,
    requests_per_second: float | None,
    global_rate_limit_name: str | None,
    one_process: bool,
    **options: Any,
) -> SendContext:
    """The run's context: each chunk's share of the concurrency, and the throttles built once.

    ``one_process`` (the thread runner): the chunks share one token bucket at the run's rate.
    Otherwise each chunk gets a copy of the bucket, holding its share of the rate.
    """
    share = 1 if one_process else parallel_chunks
    return SendContext(
        campaign_id=campaign_id,
        run_id=run_id,
        credentials=credentials,
        template=template,
        ledger=ledger,
        concurrency=max(1, max_concurrency // parallel_chunks),
        bucket=TokenBucket(requests_per_second / share) if requests_per_second else None,
        global_limit=GlobalRateLimit(global_rate_limit_name) if global_rate_limit_name else None,
        region=default_region() or "",
        **options,
    )


@dataclass(frozen=True)
class ChunkJob:
    """One chunk task's parameter: the run's context (shared) and this chunk's contacts."""

    context: SendContext
    items: list[WorkItem]
    number: int


class ChunkSender:
    """Sends one chunk with bounded concurrency, rate limits and a committed claim before every
    send; classifies every send with THE outcome rule (``api.outcomes``)."""

    def __init__(
        self, context: SendContext, client: AsyncAutoTalkClient, writer: ClaimWriter
    ) -> None:
        self.context, self.client, self.writer = context, client, writer
        self.template, self.quiet = context.template, context.quiet
        self.semaphore = asyncio.Semaphore(context.concurrency)
        self.result = ChunkResult()

    async def run(self, items: list[WorkItem]) -> ChunkResult:
        await asyncio.gather(*(self._one(contact_id, record) for contact_id, record in items))
        await self.writer.flush()
        self.result.transactional = len(self.writer.overridden)
        return self.result

    async def _text_for(self, contact_id: str, record: dict[str, Any]) -> tuple[str, Identity]:
        ctx = self.context
        if ctx.fetch_type and self.template.needs_record and not record:
            item = await self.client.get_dynadata_item(ctx.fetch_type, contact_id)
            record = item.to_wire()
        phone, email = record.get(ctx.phone_field), record.get(ctx.email_field)
        return self.template.render(record), Identity.of(
            contact_id, phone, email, region=ctx.region
        )

    async def _claim(
        self, contact_id: str, text: str | None = None, identity: Identity | None = None
    ) -> str | None:
        """This run's attempt id for ``contact_id`` once its claim is committed; ``None`` (and
        counted) when the contact was listed twice, another run holds it, or the consent check
        blocked it (opted out: skipped; at its frequency cap: deferred)."""
        attempt = await self.writer.claim(contact_id, text, identity)
        if isinstance(attempt, Verdict):
            blocked = self.result.opted_out if attempt is Verdict.OPTED_OUT else self.result.capped
            blocked.append(contact_id)
            return None
        if attempt == OURS:  # listed twice: this run has it already
            self.result.duplicates += 1
            return None
        if attempt is None:
            self.result.claimed_elsewhere.append(
                ContactProblem(contact_id=contact_id, reason=CLAIMED_REASON)
            )
        return attempt

    async def _not_sendable(self, contact_id: str, reason: str) -> None:
        """Failed before any send (template, record): a ``failed`` row, unless another run
        holds the contact."""
        attempt = await self._claim(contact_id)
        if attempt is None:
            return
        self.writer.resolve(Resolution(contact_id, attempt, FAILED, reason=reason))
        self.result.failed.append(ContactProblem(contact_id=contact_id, reason=reason))

    async def _zone_record(self, contact_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """An id-list audience's record, fetched when quiet hours read the contact's zone."""
        fetch_type = self.context.fetch_type
        if fetch_type and self.quiet is not None and self.quiet.field and not record:
            return (await self.client.get_dynadata_item(fetch_type, contact_id)).to_wire()
        return record

    async def _one(self, contact_id: str, record: dict[str, Any]) -> None:
        ctx = self.context
        async with self.semaphore:
            try:
                record = await self._zone_record(contact_id, record)
                text, identity = await self._text_for(contact_id, record)
            except RenderError as exc:
                await self._not_sendable(contact_id, str(exc))
                return
            except AutoTalkError as exc:
                await self._not_sendable(contact_id, f"could not load the record: {exc}")
                return
            if self.quiet is not None:  # on the contact's clock, before any rate-limit slot
                verdict = self.quiet.check(record, quiet_hours.now())
                if verdict.problem is not None:
                    await self._not_sendable(contact_id, verdict.problem)
                    return
                if verdict.opens is not None:  # not claimed: a later pass or run sends it
                    self.result.quiet.hold(contact_id, record, verdict, self.quiet)
                    return
            if ctx.bucket is not None:
                await ctx.bucket.acquire()
            if ctx.global_limit is not None:
                await ctx.global_limit.acquire()
            attempt = await self._claim(contact_id, text, identity)  # committed before the send
            if attempt is None:
                return
            fields = {"channelId": ctx.channel_id} if ctx.channel_id else {}
            try:
                message = await self.client.send_message(contact_id, text, **fields)
            except BaseException as exc:
                outcome = from_exception(exc)
                self._record(contact_id, attempt, outcome)
                if not isinstance(exc, Exception) or (
                    outcome.state is FAILED
                    and isinstance(exc, (AuthenticationError, PermissionDeniedError))
                ):
                    raise  # interrupted, or every other send would fail the same way: stop
                return
            self._record(contact_id, attempt, from_answer(message))

    def _record(self, contact_id: str, attempt: str, outcome: Outcome) -> None:
        """The outcome, as the rule gave it, into the ledger and the chunk's result."""
        self.writer.resolve(Resolution.of(contact_id, attempt, outcome))
        if outcome.state is SENT:
            self.result.sent += 1
            self.result.accepted_odd_answer += outcome.raw is not None or outcome.reason is not None
            return
        problem = ContactProblem(contact_id=contact_id, reason=outcome.reason or outcome.state)
        (self.result.failed if outcome.state is FAILED else self.result.unknown).append(problem)


async def send_chunk_async(job: ChunkJob) -> ChunkResult:
    """One chunk, start to finish, with the run's context; its own client and claim writer
    (both belong to this chunk's event loop)."""
    ctx = job.context
    async with (
        ctx.credentials.get_async_client(max_connections=ctx.concurrency) as client,
        ClaimWriter(
            ctx.ledger,
            ctx.run_id,
            resend_unknown=ctx.resend_unknown,
            consent=ctx.consent,
            flow_run_id=ctx.flow_run_id,
        ) as writer,
    ):
        return await ChunkSender(ctx, client, writer).run(job.items)


# ---- the submit/collect loop ----------------------------------------------------------------


class _ChunkQueue:
    """At most ``parallel`` chunk tasks in flight; each result folded into ``totals`` (and its
    held-back contacts into ``tally``) as it finishes."""

    def __init__(
        self,
        context: SendContext,
        submit: Callable[[ChunkJob], PrefectFuture[ChunkResult]],
        parallel: int,
        totals: Totals,
        tally: QuietTally,
        progress: Callable[[float], None],
    ) -> None:
        self.context, self.submit, self.parallel = context, submit, parallel
        self.totals, self.tally, self._progress = totals, tally, progress
        self.in_flight: set[PrefectFuture[ChunkResult]] = set()
        self.number = self.submitted = 0

    def show_progress(self) -> None:
        # the audience is streamed, so its size is known only at the end: show chunks done
        self._progress(100.0 * self.totals.chunks / max(self.submitted, 1))

    def _collect_one(self) -> None:
        finished = next(as_completed(list(self.in_flight)))
        self.in_flight.discard(finished)
        result = finished.result()  # a failed chunk (e.g. a revoked key) fails the run
        self.totals.add(result)
        self.tally.add(result.quiet)

    def add(self, items: list[WorkItem], *, show: bool = True) -> None:
        """Submit ``items`` as the next chunk, once a place is free."""
        self.number += 1
        collected = self.totals.chunks
        while len(self.in_flight) >= self.parallel:
            self._collect_one()
        self.in_flight.add(self.submit(ChunkJob(self.context, items, self.number)))
        self.submitted += 1
        if show and self.totals.chunks > collected:  # after the submit: the next chunk starts
            self.show_progress()

    def drain(self) -> None:
        while self.in_flight:
            self._collect_one()
            self.show_progress()


def send_chunks(
    context: SendContext,
    chunks: Iterable[list[WorkItem]],
    submit: Callable[[ChunkJob], PrefectFuture[ChunkResult]],
    *,
    parallel_chunks: int,
    chunk_size: int,
    totals: Totals,
    tally: QuietTally,
    progress: Callable[[float], None],
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Send every chunk, then (``on_quiet_hours="wait"``) each zone's held-back contacts when
    their window opens. Returns when every chunk has finished (call it inside the submitter's
    block: a Dask cluster lives until its chunks are done)."""
    queue = _ChunkQueue(context, submit, parallel_chunks, totals, tally, progress)
    # The next chunk is read from the API (and planned against the ledger: one query for its
    # contacts) while the chunks in flight send, and is submitted as soon as one finishes.
    for items in chunks:
        if items:
            queue.add(items)
    queue.drain()
    sent_before_wait = totals.sent
    while tally:
        opens, waiting, zones = tally.next_opening()
        logger.info(
            "quiet hours: waiting until %s for %s contacts (%s)",
            opens.isoformat(),
            waiting,
            ", ".join(zones),
        )
        quiet_hours.wait_until(opens)
        for items in chunked(tally.take_due(quiet_hours.now()), chunk_size):
            queue.add(items, show=False)
        queue.drain()
    tally.waited = totals.sent - sent_before_wait
