"""What a campaign run shows in the Prefect UI: artifact keys, the headline, the table, the summary.

Numbers only and contact ids: message text and record contents are customer data and stay out
of Prefect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autotalk_prefect.flows.outreach.engine import OutreachSummary
from autotalk_prefect.flows.outreach.quiet import DEFERRED


def artifact_key(campaign_id: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) for the campaign."""
    cleaned = "".join(c if c.isalnum() else "-" for c in campaign_id.lower()).strip("-")
    return f"outreach-{cleaned}"[:100]


def retries_text(retries: Mapping[str, int]) -> str:
    """``"28 retried: 19 x 429, 9 x 503"``, or ``"no retries"``."""
    total = sum(retries.values())
    if not total:
        return "no retries"
    parts = ", ".join(
        f"{n} x {reason}" for reason, n in sorted(retries.items(), key=lambda kv: -kv[1])
    )
    return f"{total} retried: {parts}"


def headline(summary: OutreachSummary) -> str:
    """One line that tells two runs apart: ``"301 sent, 0 failed, 0 unknown of 301"``."""
    if summary.quiet_hours_skipped:
        return f"nothing sent: inside the quiet hours ({summary.total} contacts not read)"
    already = (
        f", {summary.skipped_already_sent} already sent" if summary.skipped_already_sent else ""
    )
    claimed = (
        f", {summary.skipped_claimed} claimed by another run" if summary.skipped_claimed else ""
    )
    opted = f", {summary.skipped_opted_out} skipped: opted out" if summary.skipped_opted_out else ""
    capped = (
        f", {summary.deferred_frequency_cap} deferred: frequency cap"
        if summary.deferred_frequency_cap
        else ""
    )
    quiet = (
        f", {summary.deferred_quiet_hours} deferred: quiet hours"
        if summary.deferred_quiet_hours
        else ""
    )
    return (
        f"{summary.sent} sent{already}{claimed}{opted}{capped}{quiet}, {summary.failed} failed, "
        f"{summary.unknown} unknown of {summary.total}"
    )


def has_rows(summary: OutreachSummary) -> bool:
    """True when some contact has something to show (failed, unknown, or held by another run)."""
    return bool(
        summary.failures
        or summary.unknowns
        or summary.claimed
        or summary.opted_out
        or summary.capped
        or summary.quiet_deferred
    )


def summary_table(summary: OutreachSummary) -> list[dict[str, Any]]:
    """One row per contact this run did not message (failed, unknown, or claimed by another
    run), capped."""
    rows: list[dict[str, Any]] = []
    listed: tuple[tuple[str, Sequence[Any]], ...] = (
        ("failed", summary.failures),
        ("unknown", summary.unknowns),
        ("claimed by another run", summary.claimed),
        (DEFERRED, summary.quiet_deferred),
    )
    for outcome, problems in listed:
        rows += [
            {"contact": p.contact_id, "outcome": outcome, "reason": p.reason[:200]}
            for p in problems
        ]
    rows += [
        {"contact": c, "outcome": "skipped: opted out", "reason": "on the opt-out list"}
        for c in summary.opted_out
    ]
    rows += [
        {"contact": c, "outcome": "deferred: frequency cap", "reason": "sent by a later run"}
        for c in summary.capped
    ]
    return rows


_COLOURS = {
    "sent": "#2e7d32",
    "already sent": "#90a4ae",
    "claimed": "#5c6bc0",
    "failed": "#c62828",
    "unknown": "#ef6c00",
}


def outcomes_svg(summary: OutreachSummary, width: int = 360) -> str:
    """A small horizontal bar chart of the outcomes, as SVG text (no plotting library)."""
    bars = [
        ("sent", summary.sent),
        ("already sent", summary.skipped_already_sent),
        ("claimed", summary.skipped_claimed),
        ("failed", summary.failed),
        ("unknown", summary.unknown),
    ]
    top = max([n for _, n in bars] + [1])
    row, label_w, value_w = 18, 90, 50
    scale = (width - label_w - value_w) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(bars) + 4}" '
        'font-family="sans-serif" font-size="12">'
    ]
    for i, (label, n) in enumerate(bars):
        y = i * row + 2
        parts.append(f'<text x="0" y="{y + 13}">{label}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{n * scale:.1f}" height="{row - 6}" '
            f'fill="{_COLOURS[label]}"/>'
        )
        parts.append(f'<text x="{label_w + n * scale + 4:.1f}" y="{y + 13}">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _data_uri(svg: str) -> str:
    import base64

    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def summary_markdown(
    summary: OutreachSummary, *, template: str | None = None, channel_id: str | None = None
) -> str:
    """The run's summary: the counts, what the retries absorbed, where the ledger is."""
    listed = len(summary.failures) + len(summary.unknowns)
    more = summary.failed + summary.unknown - listed
    source = (template or "").strip()
    first_line = source.splitlines()[0] if source else ""
    template_text = first_line[:80] + ("..." if first_line[:80] != source else "")
    lines = [
        f"# Outreach `{summary.campaign_id}`: {headline(summary)}",
        "",
        "| audience | sent now | already sent | claimed by another run | failed | unknown "
        "| seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary.total} | {summary.sent} | {summary.skipped_already_sent} | "
        f"{summary.skipped_claimed} | {summary.failed} | {summary.unknown} | "
        f"{summary.duration_seconds:.1f} |",
        "",
        f"![outcomes by state]({_data_uri(outcomes_svg(summary))})",
        "",
        "| | |",
        "|---|---|",
        f"| Retries absorbed | {retries_text(summary.retries)} (429 and 503 answers are "
        "retried by the client; each retry is logged at INFO) |",
        f"| Template | `{template_text}` |" if template_text else "| Template | - |",
        f"| Channel | `{channel_id}` |" if channel_id else "| Channel | AutoTalk's default |",
        f"| Ledger | `{summary.ledger}` |",
        f"| Duration | {summary.duration_seconds:.1f} s |",
    ]
    if summary.quiet_hours_skipped:
        lines.append("\nNothing was sent: the run started inside the quiet hours.")
    if summary.skipped_opted_out:
        lines.append(
            f"\n**Skipped: opted out**: {summary.skipped_opted_out} contacts are on the opt-out "
            "list (`autotalk-prefect optouts show`); never sent, never failed."
        )
    if summary.deferred_frequency_cap:
        lines.append(
            f"\n**Deferred: frequency cap**: {summary.deferred_frequency_cap} contacts already "
            "had their campaign messages in the cap's window; a later run sends them."
        )
    if summary.sent_transactional:
        lines.append(
            f"\n**Transactional**: {summary.sent_transactional} of the sent contacts are on the "
            "opt-out list; they were messaged because the campaign is transactional."
        )
    if summary.deferred_quiet_hours:
        lines.append(
            f"\n**Deferred: quiet hours**: {summary.deferred_quiet_hours} contacts were inside "
            "the quiet hours on their own clock: not messaged and not claimed, so the next run "
            "sends them once their window is open."
        )
    if summary.quiet_waited:
        lines.append(
            f"\n**Sent after waiting**: {summary.quiet_waited} contacts were sent when their "
            'quiet hours ended (`on_quiet_hours="wait"`).'
        )
    if summary.skipped_claimed:
        lines.append(
            "\n**Claimed by another run**: another run of this campaign held these contacts "
            "(it is sending them now, or it stopped before recording the outcome); skipped so no "
            "one is messaged twice."
        )
    if summary.failed:
        lines.append(
            "\n**Failed** contacts were definitely not messaged; re-running the campaign retries "
            "them."
        )
    rec = summary.reconciliation
    if rec is not None:
        lines.append(
            f"\n**Reconciliation**: {rec.unknown_before} unknown outcomes looked up in AutoTalk: "
            f"{rec.found_sent} found sent, {rec.marked_failed} marked failed after the grace "
            f"period, {rec.still_unknown} still unknown."
        )
    if summary.unknown:
        lines.append(
            "\n**Unknown**: the send may have reached the customer (no usable answer came back, "
            "and AutoTalk does not show it yet). Not re-sent unless the campaign is re-run with "
            "`resend_unknown=True`; `autotalk-prefect ledger reconcile` looks again."
        )
    if more > 0:
        lines.append(f"\n{more} more contacts are not listed in the table (capped).")
    return "\n".join(lines)


__all__ = [
    "artifact_key",
    "has_rows",
    "headline",
    "outcomes_svg",
    "retries_text",
    "summary_markdown",
    "summary_table",
]
