"""The outreach engine: who gets the campaign, and sending it exactly once per contact.

The flow (``flows/outreach/flow.py:outreach_campaign``) is thin; this module holds the parameter
models, the audience stream, the per-chunk plan and the summary; ``send.py`` beside it holds the
send context built once per run, the chunk sender and the submit/collect loop.
Exactly-once comes from the claim ledger (``autotalk_prefect.ledger.store``): a send leaves only
after its contact's claim is committed, so a re-run or an overlapping run never messages a
contact twice, and every outcome is classified by THE rule in ``autotalk_prefect.api.outcomes``
(a 2xx is ``sent`` unless its body says it was refused). Inside each claim, THE consent check
(``autotalk_prefect.ledger.consent``) skips opted-out contacts and defers capped ones.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from autotalk_prefect.api.outcomes import FAILED, SENT, UNKNOWN
from autotalk_prefect.api.paging import RESERVED_FILTERS
from autotalk_prefect.flows.common import unknown_type_error
from autotalk_prefect.flows.outreach.quiet import QuietChunk, QuietDeferral
from autotalk_prefect.flows.outreach.quiet import QuietHours as QuietHours  # its old home
from autotalk_prefect.flows.outreach.sql_audience import iter_sql_audience
from autotalk_prefect.flows.templating import MessageTemplate
from autotalk_prefect.ledger.reconcile import ReconcileReport
from autotalk_prefect.ledger.stopped_runs import FlowRunStates
from autotalk_prefect.ledger.store import ClaimLedger

if TYPE_CHECKING:
    from autotalk_prefect.api.client import AutoTalkClient

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
    phone_field: str = Field(
        default="phone",
        min_length=1,
        description="The record field holding the contact's phone (checked against the "
        "opt-out list, normalized to E.164).",
    )
    email_field: str = Field(
        default="email",
        min_length=1,
        description="The record field holding the contact's email (checked against the "
        "opt-out list).",
    )
    query: str | None = Field(
        default=None,
        description="A SQL query whose rows are the audience: each row gives the contact id "
        "(`contact_column`) and the template's variables (its other columns).",
    )
    url: str | None = Field(
        default=None,
        description="With `query`: the SQLAlchemy URL it runs against (default: the DuckDB "
        "file sync_to_warehouse writes).",
    )
    contact_column: str = Field(
        default="contact_id",
        min_length=1,
        description="With `query`: the column holding each row's contact id.",
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

    def identity_fields(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a record the opt-out check reads (its phone and email)."""
        return {
            name: record[name]
            for name in (self.phone_field, self.email_field)
            if record.get(name) is not None
        }

    @model_validator(mode="after")
    def _one_source(self) -> Audience:
        if self.query is not None:
            if not self.query.strip():
                raise ValueError("query is empty: give a SQL SELECT, or leave it unset")
            if self.contact_ids is not None:
                raise ValueError("give either query or contact_ids, not both")
        elif self.url is not None:
            raise ValueError("url is set without a query: give the query the audience comes from")
        return self

    def contact_of(self, record: Mapping[str, Any]) -> str | None:
        """The contact id a record of the queried type stands for."""
        if self.dynadata_type == "clients":
            value = record.get("_id")
        else:
            value = record.get(self.contact_field)
        return value if isinstance(value, str) and value else None


class ContactProblem(BaseModel):
    """A contact that did not get the campaign in this run, and why."""

    contact_id: str
    reason: str


class ChunkResult(BaseModel):
    """What one chunk task did."""

    sent: int = 0
    accepted_odd_answer: int = Field(
        default=0, description="Of `sent`: accepted (2xx) with an answer not in the shape we know."
    )
    failed: list[ContactProblem] = Field(default_factory=list)
    unknown: list[ContactProblem] = Field(default_factory=list)
    retries: dict[str, int] = Field(
        default_factory=dict, description="Requests retried (and absorbed), by status or error."
    )
    claimed_elsewhere: list[ContactProblem] = Field(default_factory=list)
    duplicates: int = Field(default=0, description="Contacts listed twice: sent once.")
    opted_out: list[str] = Field(
        default_factory=list, description="Contact ids on the opt-out list: not sent."
    )
    capped: list[str] = Field(
        default_factory=list, description="Contact ids at their frequency cap: deferred."
    )
    transactional: int = Field(
        default=0, description="Of `sent`: opted-out contacts sent as transactional messages."
    )
    quiet: QuietChunk = Field(default_factory=QuietChunk)


class Reconciliation(BaseModel):
    """What reconciling unknown outcomes against AutoTalk resolved at the end of the run."""

    unknown_before: int = Field(description="Unknown (or stale pending) rows looked up.")
    found_sent: int = Field(description="Found in the contact's conversation: now `sent`.")
    marked_failed: int = Field(
        description="Not found after unknown_grace_minutes: now `failed` (sent on the next run)."
    )
    still_unknown: int = Field(description="Not found (yet): still unknown.")


class OutreachSummary(BaseModel):
    """The campaign run's outcome; the same numbers as the flow run's artifacts."""

    campaign_id: str
    total: int = Field(description="Distinct contacts in the audience.")
    sent: int = Field(description="Messages AutoTalk accepted in this run.")
    skipped_already_sent: int = Field(description="Contacts an earlier run already messaged.")
    skipped_claimed: int = Field(
        default=0,
        description="Contacts another run had claimed (sending them at the same time, or it "
        "stopped before recording the outcome): skipped, never sent twice.",
    )
    failed: int = Field(description="Contacts not messaged (definitely): retried on a re-run.")
    unknown: int = Field(
        description="Contacts whose send may or may not have gone out (this run or an earlier "
        "one), after reconciliation: never re-sent unless resend_unknown=True."
    )
    failures: list[ContactProblem] = Field(default_factory=list)
    unknowns: list[ContactProblem] = Field(default_factory=list)
    claimed: list[ContactProblem] = Field(default_factory=list)
    reconciliation: Reconciliation | None = None
    duration_seconds: float = 0.0
    ledger: str = ""
    quiet_hours_skipped: bool = False
    skipped_opted_out: int = Field(
        default=0, description="Contacts on the opt-out list: never sent, never failed."
    )
    deferred_frequency_cap: int = Field(
        default=0,
        description="Contacts at their frequency cap: not sent now, sent by a later run once "
        "the window allows.",
    )
    sent_transactional: int = Field(
        default=0,
        description="Of `sent`: contacts on the opt-out list messaged because the campaign is "
        "transactional.",
    )
    opted_out: list[str] = Field(default_factory=list, description="Opted-out ids (capped).")
    capped: list[str] = Field(default_factory=list, description="Capped ids (capped list).")
    deferred_quiet_hours: int = Field(
        default=0,
        description="Contacts inside their quiet hours: not messaged, not claimed (a later run "
        "sends them).",
    )
    quiet_deferred: list[QuietDeferral] = Field(default_factory=list)
    quiet_waited: int = Field(
        default=0, description="Of `sent`: contacts sent after waiting for their window to open."
    )
    retries: dict[str, int] = Field(
        default_factory=dict,
        description="429s, 503s and transport errors the client retried, by status or error.",
    )


# ---- the plan: who still needs the message ---------------------------------------------------

CLAIMED_REASON = "claimed by another run (sending now, or it stopped before recording the outcome)"


class Plan:
    """Decides, one chunk at a time, who still needs the message (one ledger query per chunk:
    memory stays flat whatever the campaign's size); counts what it skipped."""

    def __init__(
        self,
        ledger: ClaimLedger,
        run_id: str,
        *,
        resend_unknown: bool,
        flow_runs: FlowRunStates | None = None,
    ) -> None:
        self.ledger, self.run_id = ledger, run_id
        self.resend_unknown = resend_unknown
        self.flow_runs = flow_runs
        self.stopped_runs: dict[str, str] = {}  # flow run id -> its state, claims marked
        self.total = 0
        self.skipped_sent = 0
        self.earlier_unknown: list[ContactProblem] = []
        self.earlier_unknown_count = 0
        self.claimed: list[ContactProblem] = []
        self.claimed_count = 0

    def _unknown(self, contact_id: str, reason: str) -> None:
        self.earlier_unknown_count += 1
        if len(self.earlier_unknown) < MAX_LISTED:
            self.earlier_unknown.append(ContactProblem(contact_id=contact_id, reason=reason))

    def _held(self, contact_id: str) -> None:
        self.claimed_count += 1
        if len(self.claimed) < MAX_LISTED:
            self.claimed.append(ContactProblem(contact_id=contact_id, reason=CLAIMED_REASON))

    def chunk(self, items: list[WorkItem]) -> list[WorkItem]:
        """The items of one chunk that still need the message."""
        unique = list({contact_id: (contact_id, record) for contact_id, record in items}.values())
        statuses = self.ledger.statuses(contact_id for contact_id, _ in unique)
        wanted: list[WorkItem] = []
        for item in unique:
            contact_id = item[0]
            status = statuses.get(contact_id)
            if status is not None and status.run_id == self.run_id:
                continue  # listed twice in the audience: this run already has it
            self.total += 1
            if status is None or status.state is FAILED:
                wanted.append(item)
            elif status.state is SENT:
                self.skipped_sent += 1
            elif self.resend_unknown:
                wanted.append(item)
            elif status.state is UNKNOWN:
                self._unknown(contact_id, status.reason or "an earlier send's outcome is unknown")
            elif self._stopped(status.flow_run_id):
                self._unknown(contact_id, self._stopped_reason(status.flow_run_id))
            else:
                self._held(contact_id)
        return wanted

    def _stopped(self, flow_run_id: str | None) -> bool:
        """True if the pending claim's flow run is one Prefect reports crashed, cancelled or
        failed; its pending claims then become ``unknown`` at once (once per flow run)."""
        if self.flow_runs is None or not flow_run_id:
            return False
        if flow_run_id in self.stopped_runs:
            return True
        state = self.flow_runs.stopped(flow_run_id)
        if state is None:
            return False
        self.ledger.mark_stopped(flow_run_id, self._stopped_reason(flow_run_id, state))
        self.stopped_runs[flow_run_id] = state
        return True

    def _stopped_reason(self, flow_run_id: str | None, state: str | None = None) -> str:
        state = state or self.stopped_runs.get(flow_run_id or "", "stopped")
        return (
            f"its flow run {flow_run_id} is {state.lower()}: it stopped before recording the "
            "outcome"
        )


def iter_audience(
    client: AutoTalkClient,
    audience: Audience,
    template: MessageTemplate,
    page_size: int = 100,
    keep_record: bool = False,
) -> Iterator[WorkItem]:
    """(contact id, record) for every member of the audience, streamed page by page."""
    if audience.query is not None:  # rows of a SQL query: no record is fetched per contact
        yield from iter_sql_audience(
            audience.query, audience.url, audience.contact_column, keep_rows=template.needs_record
        )
        return
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
                yield (
                    member,
                    record
                    if template.needs_record or keep_record
                    else audience.identity_fields(record),
                )


def check_audience_type(
    client: AutoTalkClient, audience: Audience, template: MessageTemplate
) -> None:
    """Fail before anything is sent if the audience's Dynadata type does not exist.

    Checked whenever the type is used (a query, or records the template needs) or was named
    explicitly; an id list with a template that uses no fields never reads it.
    """
    used = audience.query is None and (audience.contact_ids is None or template.needs_record)
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


# ---- summary --------------------------------------------------------------------------------


class Totals:
    """Chunk results folded as they come in (counts, and the first MAX_LISTED of each list)."""

    def __init__(self) -> None:
        self.sent = 0
        self.failed: list[ContactProblem] = []
        self.failed_count = 0
        self.unknown: list[ContactProblem] = []
        self.claimed: list[ContactProblem] = []
        self.claimed_count = 0
        self.duplicates = 0
        self.chunks = 0
        self.retries: collections.Counter[str] = collections.Counter()
        self.opted_out: list[str] = []
        self.opted_out_count = 0
        self.capped: list[str] = []
        self.capped_count = 0
        self.transactional = 0

    def add(self, result: ChunkResult) -> None:
        self.chunks += 1
        self.duplicates += result.duplicates
        self.retries.update(result.retries)
        self.sent += result.sent
        self.failed_count += len(result.failed)
        self.failed += result.failed[: max(0, MAX_LISTED - len(self.failed))]
        self.unknown += result.unknown  # kept whole: reconciliation looks them up
        self.claimed_count += len(result.claimed_elsewhere)
        self.claimed += result.claimed_elsewhere[: max(0, MAX_LISTED - len(self.claimed))]
        self.opted_out_count += len(result.opted_out)
        self.opted_out += result.opted_out[: max(0, MAX_LISTED - len(self.opted_out))]
        self.capped_count += len(result.capped)
        self.capped += result.capped[: max(0, MAX_LISTED - len(self.capped))]
        self.transactional += result.transactional


def summarise(
    campaign_id: str,
    plan: Plan,
    totals: Totals,
    *,
    started: float,
    ledger: str,
    reconciled: ReconcileReport | None = None,
) -> OutreachSummary:
    unknowns = plan.earlier_unknown + totals.unknown
    unknown_count = plan.earlier_unknown_count + len(totals.unknown)
    reconciliation = None
    if reconciled is not None:
        reconciliation = Reconciliation(
            unknown_before=reconciled.unknown_before,
            found_sent=reconciled.found_sent,
            marked_failed=reconciled.marked_failed,
            still_unknown=reconciled.still_unknown,
        )
        unknowns = [p for p in unknowns if p.contact_id not in reconciled.resolved]
        unknown_count -= sum(
            1 for p in plan.earlier_unknown + totals.unknown if p.contact_id in reconciled.resolved
        )
    return OutreachSummary(
        campaign_id=campaign_id,
        total=plan.total - totals.duplicates,
        sent=totals.sent,
        skipped_already_sent=plan.skipped_sent,
        skipped_claimed=plan.claimed_count + totals.claimed_count,
        failed=totals.failed_count,
        unknown=max(0, unknown_count),
        failures=totals.failed[:MAX_LISTED],
        unknowns=unknowns[:MAX_LISTED],
        claimed=(plan.claimed + totals.claimed)[:MAX_LISTED],
        reconciliation=reconciliation,
        duration_seconds=round(time.monotonic() - started, 3),
        ledger=ledger,
        retries=dict(totals.retries.most_common()),
        skipped_opted_out=totals.opted_out_count,
        deferred_frequency_cap=totals.capped_count,
        sent_transactional=totals.transactional,
        opted_out=totals.opted_out,
        capped=totals.capped,
    )


Choice = Literal["wait", "skip"]
