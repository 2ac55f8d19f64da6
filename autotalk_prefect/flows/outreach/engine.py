"""The outreach engine: who gets the campaign, and sending it exactly once per contact.

The flow (``flows/outreach.py:outreach_campaign``) is thin; this module holds the parameter
models, the audience stream, the chunk sender and the summary. Exactly-once comes from the
ledger (``autotalk_prefect.ledger.store``): ``pending`` is durable before a send leaves, ``sent`` after
AutoTalk confirms it, so a re-run skips every contact already served and never repeats a send
whose outcome is unknown unless the caller opts in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from autotalk_prefect.api.errors import (
    AuthenticationError,
    AutoTalkError,
    OutcomeUnknownError,
    PermissionDeniedError,
)
from autotalk_prefect.api.paging import RESERVED_FILTERS
from autotalk_prefect.flows.common import unknown_type_error
from autotalk_prefect.flows.templating import MessageTemplate, RenderError, compile_template
from autotalk_prefect.ledger.store import Ledger, LedgerSnapshot, LedgerState, LedgerWriter
from autotalk_prefect.ratelimit import GlobalRateLimit, TokenBucket

if TYPE_CHECKING:
    from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient

MAX_LISTED = 200  # failures / unknowns listed by contact in the summary and the table artifact
WorkItem = tuple[str, dict[str, Any]]  # (contact id, the record the template renders)


# ---- parameters -----------------------------------------------------------------------------


class Audience(BaseModel):
    """Who gets the campaign: a Dynadata query, or an explicit list of contact ids."""

    dynadata_type: str = Field(
        default="clients",
        min_length=1,
        description="The Dynadata type to query (for `clients`, each item is a contact).",
    )
    filters: dict[str, str] = Field(
        default_factory=dict,
        description="Equality filters on the type's fields, e.g. {'status': 'active'}.",
    )
    contact_ids: list[str] | None = Field(
        default=None,
        description="Message exactly these contacts instead of querying (records are fetched "
        "from `dynadata_type` only when the template uses their fields).",
    )
    contact_field: str = Field(
        default="contactId",
        min_length=1,
        description="For types other than `clients`: the field holding the contact id.",
    )

    @field_validator("filters")
    @classmethod
    def _no_paging_filters(cls, filters: dict[str, str]) -> dict[str, str]:
        reserved = sorted(RESERVED_FILTERS.intersection(filters))
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)} cannot be a filter: the audience reads every page itself"
            )
        return filters

    @field_validator("contact_ids")
    @classmethod
    def _ids_are_strings(cls, ids: list[str] | None) -> list[str] | None:
        if ids is not None:
            bad = [i for i in ids if not isinstance(i, str) or not i.strip()]
            if bad:
                raise ValueError(f"contact_ids must be non-empty strings, got {bad[:3]!r}")
            if not ids:
                raise ValueError("contact_ids is empty: give at least one id, or leave it unset")
        return ids

    def contact_of(self, record: Mapping[str, Any]) -> str | None:
        """The contact id a record of the queried type stands for."""
        if self.dynadata_type == "clients":
            value = record.get("_id")
        else:
            value = record.get(self.contact_field)
        return value if isinstance(value, str) and value else None


class QuietHours(BaseModel):
    """A daily window in which nothing is sent (it may span midnight, e.g. 21:00-08:00)."""

    start: dt.time = Field(description="Start of the quiet window (local time).")
    end: dt.time = Field(description="End of the quiet window (local time).")
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. 'Europe/Madrid'.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (use an IANA name)") from None
        return zone

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end are equal: the window would be empty")
        return self

    def seconds_left(self, now: dt.datetime) -> float:
        """Seconds until the window ends if ``now`` is inside it, else 0."""
        local = now.astimezone(ZoneInfo(self.timezone))
        t = local.time()
        inside = (
            self.start <= t < self.end
            if self.start < self.end
            else (t >= self.start or t < self.end)
        )
        if not inside:
            return 0.0
        end = local.replace(
            hour=self.end.hour, minute=self.end.minute, second=self.end.second, microsecond=0
        )
        if end <= local:
            end += dt.timedelta(days=1)
        return (end - local).total_seconds()


class ContactProblem(BaseModel):
    """A contact that did not get the campaign in this run, and why."""

    contact_id: str
    reason: str


class ChunkResult(BaseModel):
    """What one chunk task did."""

    sent: int = 0
    failed: list[ContactProblem] = Field(default_factory=list)
    unknown: list[ContactProblem] = Field(default_factory=list)
    retries: dict[str, int] = Field(
        default_factory=dict, description="Requests retried (and absorbed), by status or error."
    )


class OutreachSummary(BaseModel):
    """The campaign run's outcome; the same numbers as the flow run's artifacts."""

    campaign_id: str
    total: int = Field(description="Distinct contacts in the audience.")
    sent: int = Field(description="Messages sent and confirmed in this run.")
    skipped_already_sent: int = Field(description="Contacts an earlier run already messaged.")
    failed: int = Field(description="Contacts not messaged (definitely): retried on a re-run.")
    unknown: int = Field(
        description="Contacts whose send may or may not have gone out (this run or an earlier "
        "one): never re-sent unless resend_unknown=True."
    )
    failures: list[ContactProblem] = Field(default_factory=list)
    unknowns: list[ContactProblem] = Field(default_factory=list)
    duration_seconds: float = 0.0
    ledger: str = ""
    quiet_hours_skipped: bool = False
    retries: dict[str, int] = Field(
        default_factory=dict,
        description="429s, 503s and transport errors the client retried, by status or error.",
    )


# ---- the plan: who still needs the message ---------------------------------------------------


class Plan:
    """Audience minus what the ledger settled; counts what it skipped."""

    def __init__(self, snapshot: LedgerSnapshot, *, resend_unknown: bool) -> None:
        self.snapshot = snapshot
        self.resend_unknown = resend_unknown
        self.seen: set[str] = set()
        self.skipped_sent = 0
        self.earlier_unknown: list[ContactProblem] = []

    def wants(self, contact_id: str) -> bool:
        """True the first time a contact that still needs the message comes up."""
        if contact_id in self.seen:
            return False
        self.seen.add(contact_id)
        status = self.snapshot.get(contact_id)
        if status is None or status.state is LedgerState.FAILED:
            return True
        if status.state is LedgerState.SENT:
            self.skipped_sent += 1
            return False
        if self.resend_unknown:
            return True
        reason = status.reason or "an earlier send's outcome is unknown"
        self.earlier_unknown.append(ContactProblem(contact_id=contact_id, reason=reason))
        return False


def iter_audience(
    client: AutoTalkClient, audience: Audience, template: MessageTemplate, page_size: int = 100
) -> Iterator[WorkItem]:
    """(contact id, record) for every member of the audience, streamed page by page."""
    if audience.contact_ids is not None:
        for contact_id in audience.contact_ids:
            yield contact_id, {}
        return
    for page in client.iter_dynadata_pages(
        audience.dynadata_type, page_size=page_size, **audience.filters
    ):
        for item in page:
            record = item.to_wire()
            member = audience.contact_of(record)
            if member is not None:
                yield member, record if template.needs_record else {}


def check_audience_type(
    client: AutoTalkClient, audience: Audience, template: MessageTemplate
) -> None:
    """Fail before anything is sent if the audience's Dynadata type does not exist.

    Checked whenever the type is used (a query, or records the template needs) or was named
    explicitly; an id list with a template that uses no fields never reads it.
    """
    used = audience.contact_ids is None or template.needs_record
    if not used and "dynadata_type" not in audience.model_fields_set:
        return
    known = [t.name for t in client.list_dynadata_types()]
    if audience.dynadata_type not in known:
        raise unknown_type_error(
            "audience.dynadata_type", audience.dynadata_type, known, "nothing was sent."
        )


LIMITS = {"chunk_size": (1, 10_000), "max_concurrency": (1, 256), "parallel_chunks": (1, 64)}


def check_numbers(
    *,
    chunk_size: int,
    max_concurrency: int,
    requests_per_second: float | None,
    parallel_chunks: int = 1,
) -> None:
    """Refuse sizes that would stall or flood the campaign, naming the parameter."""
    numbers = {
        "chunk_size": chunk_size,
        "max_concurrency": max_concurrency,
        "parallel_chunks": parallel_chunks,
    }
    for name, value in numbers.items():
        low, high = LIMITS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    if requests_per_second is not None and not requests_per_second > 0:
        raise ValueError(f"requests_per_second must be > 0 (or unset), got {requests_per_second!r}")


def chunked(items: Iterator[WorkItem], size: int) -> Iterator[list[WorkItem]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    chunk: list[WorkItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---- sending one chunk ----------------------------------------------------------------------


class ChunkSender:
    """Sends one chunk with bounded concurrency, rate limits and the ledger around every send."""

    def __init__(
        self,
        client: AsyncAutoTalkClient,
        writer: LedgerWriter,
        template: MessageTemplate,
        *,
        channel_id: str | None,
        concurrency: int,
        bucket: TokenBucket | None,
        global_limit: GlobalRateLimit | None,
        fetch_type: str | None,
    ) -> None:
        self.client, self.writer, self.template = client, writer, template
        self.channel_id = channel_id
        self.semaphore = asyncio.Semaphore(concurrency)
        self.bucket, self.global_limit = bucket, global_limit
        self.fetch_type = fetch_type
        self.result = ChunkResult()

    async def run(self, items: list[WorkItem]) -> ChunkResult:
        await asyncio.gather(*(self._one(contact_id, record) for contact_id, record in items))
        await self.writer.flush()
        return self.result

    async def _text_for(self, contact_id: str, record: dict[str, Any]) -> str:
        if self.fetch_type and self.template.needs_record and not record:
            item = await self.client.get_dynadata_item(self.fetch_type, contact_id)
            record = item.to_wire()
        return self.template.render(record)

    def _failed(self, contact_id: str, attempt: str | None, reason: str) -> None:
        self.writer.failed(contact_id, attempt, reason)
        self.result.failed.append(ContactProblem(contact_id=contact_id, reason=reason))

    async def _one(self, contact_id: str, record: dict[str, Any]) -> None:
        async with self.semaphore:
            try:
                text = await self._text_for(contact_id, record)
            except RenderError as exc:
                self._failed(contact_id, None, str(exc))
                return
            except AutoTalkError as exc:
                self._failed(contact_id, None, f"could not load the record: {exc}")
                return
            if self.bucket is not None:
                await self.bucket.acquire()
            if self.global_limit is not None:
                await self.global_limit.acquire()
            attempt = await self.writer.begin(contact_id)  # durable before the send leaves
            fields = {"channelId": self.channel_id} if self.channel_id else {}
            try:
                message = await self.client.send_message(contact_id, text, **fields)
            except OutcomeUnknownError as exc:
                self.writer.unknown(contact_id, attempt, str(exc))
                self.result.unknown.append(ContactProblem(contact_id=contact_id, reason=str(exc)))
                return
            except (AuthenticationError, PermissionDeniedError) as exc:
                self._failed(contact_id, attempt, str(exc))
                raise  # every other send would fail the same way: stop the campaign
            except AutoTalkError as exc:  # answered with an error, or never reached: not applied
                self._failed(contact_id, attempt, str(exc))
                return
            except BaseException as exc:
                reason = f"interrupted after the request may have left ({type(exc).__name__})"
                self.writer.unknown(contact_id, attempt, reason)
                self.result.unknown.append(ContactProblem(contact_id=contact_id, reason=reason))
                raise
            self.writer.sent(contact_id, attempt, message.id)
            self.result.sent += 1


async def send_chunk_async(
    items: list[WorkItem],
    *,
    campaign_id: str,
    template_source: str,
    ledger_storage: Any,
    credentials: Any,
    channel_id: str | None,
    concurrency: int,
    requests_per_second: float | None,
    global_rate_limit_name: str | None,
    fetch_type: str | None,
) -> ChunkResult:
    """One chunk, start to finish: its own client and its own ledger writer."""
    from autotalk_prefect.credentials import resolve_credentials

    template = compile_template(template_source)
    ledger = Ledger(campaign_id, ledger_storage)
    bucket = TokenBucket(requests_per_second) if requests_per_second else None
    global_limit = GlobalRateLimit(global_rate_limit_name) if global_rate_limit_name else None
    async with (
        resolve_credentials(credentials).get_async_client(max_connections=concurrency) as client,
        ledger.writer() as writer,
    ):
        sender = ChunkSender(
            client,
            writer,
            template,
            channel_id=channel_id,
            concurrency=concurrency,
            bucket=bucket,
            global_limit=global_limit,
            fetch_type=fetch_type,
        )
        return await sender.run(items)


# ---- summary --------------------------------------------------------------------------------


def summarise(
    campaign_id: str,
    plan: Plan,
    results: list[ChunkResult],
    *,
    started: float,
    ledger: str,
) -> OutreachSummary:
    failures = [p for r in results for p in r.failed]
    unknowns = plan.earlier_unknown + [p for r in results for p in r.unknown]
    return OutreachSummary(
        campaign_id=campaign_id,
        total=len(plan.seen),
        sent=sum(r.sent for r in results),
        skipped_already_sent=plan.skipped_sent,
        failed=len(failures),
        unknown=len(unknowns),
        failures=failures[:MAX_LISTED],
        unknowns=unknowns[:MAX_LISTED],
        duration_seconds=round(time.monotonic() - started, 3),
        ledger=ledger,
    )


Choice = Literal["wait", "skip"]
