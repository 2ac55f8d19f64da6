"""A campaign's dry run: who would get what, with nothing claimed, written or sent.

``preview_campaign`` walks the audience exactly as a run would (page by page, one chunk at a
time) and asks the same questions a run asks, read-only: the ledger (already sent, claimed by
another run, an earlier unknown outcome), THE consent check (``ledger.consent.check_read_only``:
opted out, frequency cap), quiet hours, and the template (rendered per contact). Only counts and
a handful of samples are kept, so a 1,000,000-contact audience plans in flat memory.

Used by ``outreach_campaign(..., dry_run=True)`` (a Prefect artifact and the run's log) and by
``autotalk-prefect campaign preview`` (the terminal).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from autotalk_prefect.api.errors import AutoTalkError
from autotalk_prefect.flows.outreach.engine import Audience, WorkItem, chunked, iter_audience
from autotalk_prefect.flows.templating import MessageTemplate, RenderError
from autotalk_prefect.ledger.consent import Consent, Verdict, check_read_only
from autotalk_prefect.ledger.database import transaction
from autotalk_prefect.ledger.optouts import Identity, default_region
from autotalk_prefect.ledger.store import ClaimLedger, LedgerState

if TYPE_CHECKING:
    from autotalk_prefect.api.client import AutoTalkClient

__all__ = ["CampaignPreview", "PreviewSample", "preview_campaign"]

#: is this contact (id, record) inside its quiet hours right now? (the quiet-hours code's hook)
QuietCheck = Callable[[str, Mapping[str, Any]], bool]


class PreviewSample(BaseModel):
    """One contact that would get the message, and the message it would get."""

    contact_id: str
    message: str


class CampaignPreview(BaseModel):
    """What a run would do now, by outcome (nothing was claimed, written or sent)."""

    campaign_id: str
    audience: int = Field(default=0, description="Contacts in the audience.")
    would_send: int = Field(default=0, description="Would be messaged now.")
    opted_out: int = Field(default=0, description="Would be skipped: opted out.")
    frequency_cap: int = Field(default=0, description="Would be deferred: frequency cap.")
    quiet_hours: int = Field(default=0, description="Would be deferred: quiet hours.")
    already_sent: int = Field(default=0, description="An earlier run messaged them.")
    claimed_by_another_run: int = Field(default=0, description="Another run holds them.")
    unknown: int = Field(default=0, description="An earlier send's outcome is unknown.")
    template_errors: int = Field(default=0, description="The template does not fit the record.")
    transactional: int = Field(
        default=0, description="Of would_send: on the opt-out list, sent as transactional."
    )
    samples: list[PreviewSample] = Field(default_factory=list)
    ledger: str = ""
    duration_seconds: float = 0.0

    def rows(self) -> list[tuple[str, int]]:
        return [
            ("send", self.would_send),
            ("skipped: opted out", self.opted_out),
            ("deferred: frequency cap", self.frequency_cap),
            ("deferred: quiet hours", self.quiet_hours),
            ("already sent", self.already_sent),
            ("claimed by another run", self.claimed_by_another_run),
            ("unknown (earlier send)", self.unknown),
            ("template error", self.template_errors),
        ]

    def headline(self) -> str:
        return (
            f"dry run: {self.would_send} of {self.audience} would be sent now, "
            f"{self.opted_out} opted out, {self.frequency_cap} capped, "
            f"{self.quiet_hours} in quiet hours, {self.already_sent} already sent"
        )

    def text(self) -> str:
        """The preview as the terminal shows it."""
        width = max(len(name) for name, _ in self.rows())
        lines = [
            f"campaign {self.campaign_id}: {self.headline()}",
            f"  {'audience':<{width}}  {self.audience}",
        ]
        lines += [f"  {name:<{width}}  {count}" for name, count in self.rows()]
        if self.transactional:
            lines.append(f"  (of send: {self.transactional} opted out, sent as transactional)")
        if self.samples:
            lines.append("samples:")
            lines += [f"  {s.contact_id}: {s.message}" for s in self.samples]
        lines.append(f"ledger {self.ledger}; nothing was claimed, written or sent")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The preview as a Prefect artifact."""
        lines = [
            f"# Dry run of `{self.campaign_id}`: {self.would_send} of {self.audience} would be "
            "sent now",
            "",
            "| outcome | contacts |",
            "|---|---:|",
            f"| audience | {self.audience} |",
        ]
        lines += [f"| {name} | {count} |" for name, count in self.rows()]
        if self.transactional:
            lines.append(f"\nOf those sent, {self.transactional} are opted out (transactional).")
        if self.samples:
            lines += ["", "## Samples", "", "| contact | message |", "|---|---|"]
            lines += [
                f"| `{s.contact_id}` | {s.message[:300].replace('|', '/')} |" for s in self.samples
            ]
        lines.append(f"\nLedger `{self.ledger}`: nothing was claimed, written or sent.")
        return "\n".join(lines)


def preview_campaign(
    client: AutoTalkClient,
    ledger: ClaimLedger,
    audience: Audience,
    template: MessageTemplate,
    *,
    consent: Consent,
    quiet: QuietCheck | None = None,
    keep_record: bool = False,
    resend_unknown: bool = False,
    samples: int = 5,
    chunk_size: int = 1000,
) -> CampaignPreview:
    """Count what a run of ``ledger.campaign_id`` would do now (reads only)."""
    started = time.monotonic()
    result = CampaignPreview(campaign_id=ledger.campaign_id, ledger=ledger.describe())
    region = default_region() or ""
    fetch_type = audience.dynadata_type if audience.contact_ids is not None else None
    items = iter_audience(client, audience, template, keep_record=keep_record)
    for chunk in chunked(items, chunk_size):
        _chunk(
            client,
            ledger,
            audience,
            template,
            chunk,
            result,
            consent,
            quiet,
            region,
            resend_unknown,
            samples,
            fetch_type,
        )
    result.duration_seconds = round(time.monotonic() - started, 3)
    return result


def _chunk(
    client: AutoTalkClient,
    ledger: ClaimLedger,
    audience: Audience,
    template: MessageTemplate,
    chunk: list[WorkItem],
    result: CampaignPreview,
    consent: Consent,
    quiet: QuietCheck | None,
    region: str,
    resend_unknown: bool,
    samples: int,
    fetch_type: str | None,
) -> None:
    unique = list({contact_id: (contact_id, record) for contact_id, record in chunk}.values())
    result.audience += len(unique)
    statuses = ledger.statuses(contact_id for contact_id, _ in unique)
    open_items: list[WorkItem] = []
    for item in unique:
        status = statuses.get(item[0])
        if status is None or status.state is LedgerState.FAILED or resend_unknown:
            open_items.append(item)
        elif status.state is LedgerState.SENT:
            result.already_sent += 1
        elif status.state is LedgerState.UNKNOWN:
            result.unknown += 1
        else:
            result.claimed_by_another_run += 1
    if not open_items:
        return
    who = [
        (
            contact_id,
            Identity.of(
                contact_id,
                record.get(audience.phone_field),
                record.get(audience.email_field),
                region=region,
            ),
        )
        for contact_id, record in open_items
    ]
    now = time.time()
    verdicts = transaction(
        ledger.engine,
        lambda conn: check_read_only(conn, ledger.campaign_id, who, consent, now),
        write=False,
    )
    for contact_id, record in open_items:
        verdict = verdicts.get(contact_id)
        if verdict is Verdict.OPTED_OUT:
            result.opted_out += 1
            continue
        if verdict is Verdict.CAPPED:
            result.frequency_cap += 1
            continue
        if quiet is not None and quiet(contact_id, record):
            result.quiet_hours += 1
            continue
        fetched = not (fetch_type and template.needs_record and not record)
        if not fetched and len(result.samples) >= samples:
            result.would_send += 1  # its record is read only for the samples
            result.transactional += verdict is Verdict.TRANSACTIONAL
            continue
        try:
            if not fetched:
                assert fetch_type is not None
                record = client.get_dynadata_item(fetch_type, contact_id).to_wire()
            text = template.render(record)
        except (RenderError, AutoTalkError):
            result.template_errors += 1
            continue
        result.would_send += 1
        result.transactional += verdict is Verdict.TRANSACTIONAL
        if len(result.samples) < samples:
            result.samples.append(PreviewSample(contact_id=contact_id, message=text))
