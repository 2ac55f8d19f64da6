"""The prebuilt flow ``outreach_campaign`` (deployment entrypoint ``flows/outreach.py``): a bulk campaign, sent once.

The audience is streamed page by page and cut into chunks; each chunk is ONE task that sends
with bounded concurrency (a task run per contact would cost more than the sends). Every send is
guarded by the campaign's ledger, so a re-run after a crash, a cancel or a retry messages only
the contacts that have not been messaged yet (see ``autotalk_prefect.flows.outreach.engine``).
"""

import datetime as dt
import time
from typing import Any, Literal, cast
from uuid import UUID, uuid4

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from prefect.utilities.asyncutils import run_coro_as_sync

from autotalk_prefect.api.retries import count_retries
from autotalk_prefect.credentials import AutoTalkCredentials, resolve_credentials
from autotalk_prefect.flows.outreach import quiet as quiet_clock
from autotalk_prefect.flows.outreach.engine import (
    Audience,
    ChunkResult,
    OutreachSummary,
    Plan,
    QuietHours,
    Totals,
    check_audience_type,
    check_numbers,
    chunked,
    iter_audience,
    summarise,
)
from autotalk_prefect.flows.outreach.preview import CampaignPreview, preview_campaign
from autotalk_prefect.flows.outreach.quiet import QuietRule, QuietTally, build_rule
from autotalk_prefect.flows.outreach.report import (
    artifact_key,
    has_rows,
    headline,
    retries_text,
    summary_markdown,
    summary_table,
)
from autotalk_prefect.flows.outreach.send import (
    ChunkJob,
    SendContext,
    send_chunk_async,
    send_chunks,
    send_context,
)
from autotalk_prefect.flows.runinfo import emit_completed, label_run, slug
from autotalk_prefect.flows.task_runners import TaskRunnerChoice, chunk_submitter
from autotalk_prefect.flows.templating import MessageTemplate, compile_template
from autotalk_prefect.ledger.consent import Consent, FrequencyCap, resolve_cap
from autotalk_prefect.ledger.reconcile import ReconcileReport, reconcile
from autotalk_prefect.ledger.stopped_runs import FlowRunStates
from autotalk_prefect.ledger.store import ClaimLedger
from autotalk_prefect.ratelimit import check_global_rate_limit


def _chunk_run_name() -> str:
    """``send-chunk-3-1000-contacts``: the chunk's number and size, read from its parameters."""
    from prefect.runtime import task_run

    job: Any = (task_run.parameters or {}).get("job")
    job = job.unquote() if hasattr(job, "unquote") else job
    if not isinstance(job, ChunkJob):
        return "send-chunk"
    return f"send-chunk-{job.number}-{len(job.items)}-contacts"


@task(
    name="autotalk-send-chunk",
    task_run_name=_chunk_run_name,
    retries=0,
    cache_policy=NO_CACHE,
)
async def send_chunk(job: ChunkJob) -> ChunkResult:
    """Send one chunk of the campaign (the claim ledger makes a retry of this task safe)."""
    with count_retries() as tally:  # each retry logs at INFO; the chunk sums them in one line
        result = await send_chunk_async(job)
    result.retries = dict(tally.by_reason)
    logger = get_run_logger()
    if tally.total:
        logger.warning(
            "chunk %s: %s (the answers were 'not now'; every retry was absorbed)",
            job.number,
            tally.describe(),
        )
    logger.info(
        "chunk %s: %s sent, %s failed, %s unknown, %s claimed by another run, %s skipped: "
        "opted out, %s deferred: frequency cap",
        job.number,
        result.sent,
        len(result.failed),
        len(result.unknown),
        len(result.claimed_elsewhere),
        len(result.opted_out),
        len(result.capped),
    )
    return result


def _wait_for_quiet_hours(rule: QuietRule) -> bool:
    """One zone for everybody: True if the run may send now (after waiting, when asked to)."""
    opens = rule.campaign_opens(quiet_clock.now())
    if opens is None:
        return True
    left = (opens - quiet_clock.now()).total_seconds()
    logger = get_run_logger()
    if not rule.may_wait(opens):
        bound = " (beyond max_wait)" if rule.wait else ""
        logger.info("inside quiet hours (%.0f s left%s): sending nothing", left, bound)
        return False
    logger.info("inside quiet hours: waiting %.0f s for the window to end", left)
    quiet_clock.wait_until(opens)
    return True


@flow(
    name="autotalk-outreach-campaign",
    flow_run_name="outreach-{campaign_id}",
    description="Send a templated message once to every contact of an audience (ledger-guarded).",
    task_runner=ThreadPoolTaskRunner(max_workers=8),  # type: ignore[arg-type]
)
def outreach_campaign(
    campaign_id: str,
    message_template: str,
    audience: Audience | None = None,
    channel_id: str | None = None,
    quiet_hours: QuietHours | None = None,
    on_quiet_hours: Literal["wait", "skip"] = "wait",
    timezone_field: str | None = None,
    max_wait: float | dt.timedelta | None = None,
    chunk_size: int = 1000,
    max_concurrency: int = 16,
    parallel_chunks: int = 1,
    requests_per_second: float | None = None,
    global_rate_limit_name: str | None = None,
    resend_unknown: bool = False,
    reconcile_unknown: bool = True,
    unknown_grace_minutes: float | None = None,
    ledger_storage: str | None = None,
    credentials: AutoTalkCredentials | None = None,
    task_runner: TaskRunnerChoice = "threads",
    dask_address: str | None = None,
    frequency_cap: FrequencyCap | None = None,
    transactional: bool = False,
    dry_run: bool = False,
) -> OutreachSummary | CampaignPreview:
    """Send ``message_template`` once to every contact of ``audience``.

    Args:
        campaign_id: Names the campaign's ledger: re-running the same id never messages a
            contact twice (letters, digits, '.', '_', '-').
        message_template: Jinja2 text; the contact's Dynadata record fields are variables
            (``{{ name }}``), also under ``contact``.
        audience: A Dynadata query (type + equality filters), explicit contact ids, or a SQL
            query (`{"query": ..., "url": ..., "contact_column": "contact_id"}`: each row a
            contact and its template variables)
            (default: every contact, i.e. all `clients` items).
        channel_id: Send through this channel (default: AutoTalk's choice).
        quiet_hours: A daily window in which nothing is sent, on each contact's clock (see
            ``timezone_field``).
        on_quiet_hours: Contacts inside the window: ``wait`` for it to open (within
            ``max_wait``), or ``skip`` them (``deferred: quiet hours``: the next run sends them).
        timezone_field: The record field holding each contact's time zone (an IANA name or a
            UTC offset such as ``-06:00``); missing or empty: ``quiet_hours.timezone``.
        max_wait: With ``wait``: the longest the run waits for a window to open (seconds or a
            timedelta); contacts whose window opens later are deferred. Default: no bound.
        chunk_size: Contacts per chunk task (one task run each).
        max_concurrency: Sends in flight at once, across the whole run.
        parallel_chunks: Chunk tasks in flight at once; each gets its share of
            ``max_concurrency`` and ``requests_per_second``. More than 1 pays off when the task
            runner spreads chunks over processes or machines (Dask); in one process, one chunk
            with all the concurrency is fastest.
        requests_per_second: Client-side cap on sends per second for this run.
        global_rate_limit_name: A Prefect global concurrency limit with slot decay that every
            send takes a slot from, so all runs and workers share one rate limit.
        resend_unknown: Also send to contacts whose earlier send has an unknown outcome (or
            that another run holds): may message them twice.
        reconcile_unknown: At the end, look up every unknown outcome in AutoTalk (the
            contact's conversations) and record the ones found as sent.
        unknown_grace_minutes: With reconciliation, treat an unknown send still not found
            this many minutes after it began as not applied (``failed``: the next run sends
            it). Default: never (it stays unknown).
        ledger_storage: The claim ledger: a SQLAlchemy URL (``sqlite:////path/ledger.sqlite3``,
            or ``postgresql://...`` shared by many machines) or a directory (a SQLite file inside
            it), or ``secret/<name>``: a Prefect Secret block holding the URL. Default:
            ``$AUTOTALK_LEDGER_URL``, else ``.autotalk/ledger``.
        credentials: The AutoTalk credentials block (default: ``AUTOTALK_*`` environment).
        task_runner: Where chunk tasks run: ``threads`` in this process, or ``dask`` (extra
            ``autotalk-prefect[dask]``): a LocalCluster of ``parallel_chunks`` processes, or
            the cluster at ``dask_address``. Workers need ``PREFECT_API_URL`` of a server.
        dask_address: Scheduler address of an existing Dask cluster (``task_runner="dask"``).
        frequency_cap: ``{"messages": N, "hours": H}``: a contact gets at most N campaign
            messages in any H-hour window across every campaign sharing the ledger; capped
            contacts are deferred to a later run. Default: ``$AUTOTALK_FREQUENCY_CAP``, else
            no cap.
        transactional: Send to contacts on the opt-out list too (an order update, not
            marketing); the summary counts them. Default: opted-out contacts are skipped.
        dry_run: Send nothing: count what a run would do now per outcome (send, opted out,
            capped, quiet hours, already sent, claimed by another run) with a few rendered
            samples, as an artifact and in the log; returns a ``CampaignPreview``. Claims
            nothing and writes nothing to the ledger.
    """
    started = time.monotonic()
    label_run(tags=["outreach", slug(campaign_id)])
    audience = audience or Audience()
    _check_parameters(
        channel_id,
        unknown_grace_minutes,
        chunk_size=chunk_size,
        max_concurrency=max_concurrency,
        requests_per_second=requests_per_second,
        parallel_chunks=parallel_chunks,
    )
    rule = build_rule(
        quiet_hours,
        timezone_field=timezone_field,
        on_quiet_hours=on_quiet_hours,
        max_wait=max_wait,
        at=quiet_clock.now(),
    )
    template = compile_template(message_template)  # a bad template fails before anything else
    ledger = ClaimLedger(campaign_id, ledger_storage)
    block = resolve_credentials(credentials)
    _check_audience_and_limit(block, audience, template, global_rate_limit_name)
    consent = Consent(transactional=transactional, cap=resolve_cap(frequency_cap))
    flow_run_id = _flow_run_id()
    if dry_run:
        return _dry_run(
            campaign_id, ledger, block, audience, template, consent, rule, resend_unknown
        )
    context = send_context(
        campaign_id=campaign_id,
        run_id=uuid4().hex,
        credentials=block,
        template=template,
        ledger=ledger,
        max_concurrency=max_concurrency,
        parallel_chunks=parallel_chunks,
        requests_per_second=requests_per_second,
        global_rate_limit_name=global_rate_limit_name,
        one_process=task_runner == "threads",
        channel_id=channel_id,
        fetch_type=audience.dynadata_type if audience.contact_ids is not None else None,
        resend_unknown=resend_unknown,
        consent=consent,
        flow_run_id=flow_run_id,
        phone_field=audience.phone_field,
        email_field=audience.email_field,
        quiet=rule,
    )
    plan = Plan(ledger, context.run_id, resend_unknown=resend_unknown, flow_runs=FlowRunStates())
    totals, tally = Totals(), QuietTally()
    key = artifact_key(campaign_id)
    if rule is not None and rule.field is None and not _wait_for_quiet_hours(rule):
        summary = summarise(campaign_id, plan, totals, started=started, ledger=ledger.describe())
        summary.quiet_hours_skipped = True  # one zone for everybody, inside its quiet hours
        _publish(summary, key, message_template, channel_id)
        return summary
    _send(
        context,
        plan,
        audience,
        totals,
        tally,
        chunk_size,
        parallel_chunks,
        task_runner,
        dask_address,
    )
    reconciled = _reconcile(ledger, block, plan, totals, reconcile_unknown, unknown_grace_minutes)
    summary = summarise(
        campaign_id, plan, totals, started=started, ledger=ledger.describe(), reconciled=reconciled
    )
    _add_quiet(summary, rule, tally)
    _publish(summary, key, message_template, channel_id)
    _log_summary(summary)
    return summary


def _check_parameters(
    channel_id: str | None, unknown_grace_minutes: float | None, **numbers: Any
) -> None:
    """Refuse sizes that would stall or flood the run, and empty strings, naming the parameter."""
    check_numbers(**numbers)
    if channel_id is not None and not channel_id.strip():
        raise ValueError("channel_id is empty: give a channel id, or leave it unset")
    if unknown_grace_minutes is not None and not unknown_grace_minutes >= 0:
        raise ValueError(
            f"unknown_grace_minutes must be >= 0 (or unset), got {unknown_grace_minutes!r}"
        )


def _check_audience_and_limit(
    block: AutoTalkCredentials,
    audience: Audience,
    template: MessageTemplate,
    global_rate_limit_name: str | None,
) -> None:
    """Fail before any send: an audience type the account lacks, a global limit that is
    missing, inactive or without decay."""
    with block.get_client() as client:
        check_audience_type(client, audience, template)
    if global_rate_limit_name:
        limit = run_coro_as_sync(check_global_rate_limit(global_rate_limit_name))
        get_run_logger().info("global rate limit %r: %s", global_rate_limit_name, limit)


def _send(
    context: SendContext,
    plan: Plan,
    audience: Audience,
    totals: Totals,
    tally: QuietTally,
    chunk_size: int,
    parallel_chunks: int,
    task_runner: TaskRunnerChoice,
    dask_address: str | None,
) -> None:
    """Stream the audience in planned chunks through the chunk tasks (``send.send_chunks``)."""
    key = artifact_key(context.campaign_id)
    progress = cast(
        UUID,
        create_progress_artifact(
            0.0, key=f"{key}-progress", description=f"Chunks done of campaign {context.campaign_id}"
        ),
    )
    rule = context.quiet
    with (
        chunk_submitter(task_runner, dask_address, n_workers=parallel_chunks) as submit,
        context.credentials.get_client() as client,
    ):
        records = iter_audience(
            client, audience, context.template, keep_record=bool(rule and rule.field)
        )
        send_chunks(
            context,
            (plan.chunk(items) for items in chunked(records, chunk_size)),
            # a chunk is opaque data: Prefect need not walk its items
            lambda job: submit(send_chunk, quote(job)),
            parallel_chunks=parallel_chunks,
            chunk_size=chunk_size,
            totals=totals,
            tally=tally,
            progress=lambda percent: _show_progress(progress, percent),
            logger=get_run_logger(),
        )
    update_progress_artifact(progress, 100.0)


def _show_progress(artifact: UUID, percent: float) -> None:
    update_progress_artifact(artifact, percent)


def _reconcile(
    ledger: ClaimLedger,
    block: AutoTalkCredentials,
    plan: Plan,
    totals: Totals,
    wanted: bool,
    grace_minutes: float | None,
) -> ReconcileReport | None:
    """Look every unknown outcome up in AutoTalk (when asked to and there is one)."""
    if not (wanted and (totals.unknown or plan.earlier_unknown_count or plan.claimed_count)):
        return None
    with block.get_client() as client:
        reconciled = reconcile(ledger, client, grace_minutes=grace_minutes)
    get_run_logger().info("reconciliation: %s", reconciled.line())
    return reconciled


def _add_quiet(summary: OutreachSummary, rule: QuietRule | None, tally: QuietTally) -> None:
    """The quiet-hours figures of the run, in the summary and the log."""
    summary.deferred_quiet_hours, summary.quiet_waited = tally.deferred_count, tally.waited
    summary.quiet_deferred = tally.deferred
    if rule is not None:
        get_run_logger().info("quiet hours %s: %s", rule.window(), tally.line())


def _log_summary(summary: OutreachSummary) -> None:
    get_run_logger().info(
        "campaign %s: %s sent, %s already sent, %s claimed by another run, %s failed, "
        "%s unknown, %s skipped: opted out, %s deferred: frequency cap of %s contacts; %s",
        summary.campaign_id,
        summary.sent,
        summary.skipped_already_sent,
        summary.skipped_claimed,
        summary.failed,
        summary.unknown,
        summary.skipped_opted_out,
        summary.deferred_frequency_cap,
        summary.total,
        retries_text(summary.retries),
    )


def _dry_run(
    campaign_id: str,
    ledger: ClaimLedger,
    block: AutoTalkCredentials,
    audience: Audience,
    template: MessageTemplate,
    consent: Consent,
    rule: QuietRule | None,
    resend_unknown: bool,
) -> CampaignPreview:
    """The dry run: the preview, its artifact and its log lines (nothing claimed or sent)."""
    at = quiet_clock.now()
    with block.get_client() as client:
        preview = preview_campaign(
            client,
            ledger,
            audience,
            template,
            consent=consent,
            quiet=(lambda _id, record: rule.is_quiet(record, at)) if rule else None,
            keep_record=bool(rule and rule.field),
            resend_unknown=resend_unknown,
        )
    create_markdown_artifact(
        preview.markdown(),
        key=f"{artifact_key(campaign_id)}-preview",
        description=preview.headline(),
    )
    logger = get_run_logger()
    for line in preview.text().splitlines():
        logger.info("%s", line)
    return preview


def _flow_run_id() -> str | None:
    """This flow run's id, stored on every claim (a later run asks Prefect about it)."""
    from prefect.runtime import flow_run

    value = flow_run.id
    return str(value) if value else None


def _publish(summary: OutreachSummary, key: str, template: str, channel_id: str | None) -> None:
    """The run's artifacts (each keyed and described with its headline) and its event."""
    line = headline(summary)
    if has_rows(summary):
        create_table_artifact(
            summary_table(summary),
            key=f"{key}-outcomes",
            description=f"Contacts not messaged: {summary.failed} failed, {summary.unknown} unknown",
        )
    create_markdown_artifact(
        summary_markdown(summary, template=template, channel_id=channel_id),
        key=f"{key}-summary",
        description=f"{line}; {retries_text(summary.retries)}",
    )
    emit_completed(
        "autotalk.campaign.completed",
        "campaign",
        summary.campaign_id,
        payload={
            "campaign_id": summary.campaign_id,
            "total": summary.total,
            "sent": summary.sent,
            "already_sent": summary.skipped_already_sent,
            "claimed_by_another_run": summary.skipped_claimed,
            "failed": summary.failed,
            "unknown": summary.unknown,
            "retries": summary.retries,
            "quiet_hours_skipped": summary.quiet_hours_skipped,
            "skipped_opted_out": summary.skipped_opted_out,
            "deferred_frequency_cap": summary.deferred_frequency_cap,
            "sent_transactional": summary.sent_transactional,
            "deferred_quiet_hours": summary.deferred_quiet_hours,
            "duration_seconds": summary.duration_seconds,
        },
    )
