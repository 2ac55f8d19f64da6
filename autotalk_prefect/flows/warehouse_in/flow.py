"""The prebuilt flow ``sync_from_warehouse`` (deployment entrypoint ``flows/warehouse_in.py``).

Warehouse rows -> Dynadata upserts. The source is streamed a chunk at a time; the flow plans
each chunk itself (maps, validates, detects changes against the state table: ``ChunkPlanner``)
and gathers only the rows that need a call into jobs of ``chunk_size`` rows, each ONE task
(``upsert-chunk-N``) that claims its creates and writes with bounded concurrency (see
``engine``): an unchanged row costs no task and no call. The flow checks everything it
can before the first write (the type, its schema, the mapping against the source's columns),
matches existing items by key on a first run (one paged read), then folds the chunks' results
into a CSV file, the ``autotalk_sync_results`` table in the source database, artifacts and the
returned :class:`WarehouseSyncSummary`.
"""

# No ``from __future__ import annotations`` here: a deployment's flow-run process must see
# the parameter types as objects (string annotations break its parameter validation).

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

from prefect import Flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from prefect.utilities.asyncutils import run_coro_as_sync

from autotalk_prefect.credentials import AutoTalkCredentials, resolve_credentials
from autotalk_prefect.flows.common import unknown_type_error
from autotalk_prefect.flows.runinfo import (
    artifact_key,
    emit_completed,
    label_run,
    run_parameters,
    slug,
)
from autotalk_prefect.flows.warehouse_in.engine import (
    MAX_LISTED,
    OUTCOMES,
    ChunkJob,
    ChunkPlanner,
    ChunkReport,
    Diff,
    Plan,
    PlannedRow,
    RowResult,
    upsert_chunk,
)
from autotalk_prefect.flows.warehouse_in.mapping import RowMapper, TypeSchema, document_hash
from autotalk_prefect.flows.warehouse_in.results import RESULTS_TABLE, ResultsFile, write_back
from autotalk_prefect.flows.warehouse_in.source import (
    DEFAULT_WAREHOUSE_URL,
    Row,
    check_query,
    chunks_of,
    iter_query,
    iter_rows,
    resolve_url,
    shown_url,
)
from autotalk_prefect.flows.warehouse_in.state import KnownItem, StateRow, WarehouseState
from autotalk_prefect.flows.warehouse_in.summary import WarehouseSyncSummary
from autotalk_prefect.ratelimit import check_global_rate_limit

_LIMITS = {"chunk_size": (1, 10_000), "max_concurrency": (1, 256), "parallel_chunks": (1, 16)}


# ---- checks ----------------------------------------------------------------------------------


def _check_number(name: str, value: object) -> int:
    low, high = _LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _check_name(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _source(query: str | None, url: str | None, rows: Any) -> tuple[Iterator[Row], str | None]:
    """The rows to read and the database the results go back to (``None``: no database)."""
    if rows is not None and query is not None:
        raise ValueError("give either query= (with url=) or rows=, not both")
    if rows is not None:
        return iter_rows(rows), (resolve_url(url) if url else None)
    if query is None:
        raise ValueError(
            "nothing to read: give query= (a SELECT or a table name, with url=) or rows= "
            "(an iterable of dicts)"
        )
    source_url = resolve_url(url or DEFAULT_WAREHOUSE_URL)
    return iter_query(source_url, check_query(query)), source_url


# ---- the chunk task --------------------------------------------------------------------------


def _chunk_run_name() -> str:
    from prefect.runtime import task_run

    job: Any = (task_run.parameters or {}).get("job")
    job = job.unquote() if hasattr(job, "unquote") else job
    if not isinstance(job, ChunkJob):
        return "upsert-chunk"
    return f"upsert-chunk-{job.number}-{len(job.rows)}-rows"


_PROGRESS_EVERY_SECONDS = 2.0  # an artifact update is an API call (~0.1 s on a loaded box)


@task(name="autotalk-upsert-chunk", task_run_name=_chunk_run_name, retries=0, cache_policy=NO_CACHE)
async def upsert_rows(job: ChunkJob) -> ChunkReport:
    """Upsert one chunk (claims make a re-run of it safe; updates are idempotent)."""
    report = await upsert_chunk(job)
    counts = report.counts
    get_run_logger().info(
        "chunk %s: %s created, %s updated, %s unchanged, %s failed, %s unknown (%s)",
        job.number,
        *(counts[o] for o in OUTCOMES),
        ", ".join(f"{n} {k}" for k, n in sorted(report.calls.items())) or "no calls",
    )
    return report


# ---- matching existing items on a first run ---------------------------------------------------


def _existing_hash(item: dict[str, Any], fields: list[str]) -> str:
    return document_hash({f: item[f] for f in fields if item.get(f) is not None})


def match_existing(
    client: Any,
    mapper: RowMapper,
    fields: list[str],
    state: WarehouseState,
    *,
    record: bool,
    calls: dict[str, int],
) -> tuple[int, dict[str, KnownItem] | None]:
    """One paged read of the type: every item with a key becomes a state row (its hash over the
    mapped fields), so rows already in AutoTalk are updated or left alone, never created again.
    A dry run keeps the index in memory instead (it writes nothing)."""
    index: dict[str, KnownItem] | None = None if record else {}
    seen: set[str] = set()
    batch: list[StateRow] = []
    matched = 0
    for page in client.iter_dynadata_pages(mapper.schema.type_name, page_size=100):
        calls["list"] = calls.get("list", 0) + 1
        for item in page:
            data = item.data
            key = mapper.key_of(data)
            if key is None or not item.id or key in seen:
                continue  # no key, or a second item with the same key: the first one wins
            seen.add(key)
            known = StateRow(key, item.id, _existing_hash(data, fields))
            matched += 1
            if index is not None:
                index[key] = KnownItem(known.item_id, known.hash)
            else:
                batch.append(known)
                if len(batch) >= 1000:
                    state.record(batch, "match-existing")
                    batch = []
    if batch:
        state.record(batch, "match-existing")
    return matched, index


# ---- the flow --------------------------------------------------------------------------------


def _run_name() -> str:
    params = run_parameters()
    dry = "-dry-run" if params.get("dry_run") else ""
    return f"warehouse-to-{slug(params.get('dynadata_type', 'dynadata'))}{dry}"[:100]


def _flow_run_id() -> str:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        return str(context.flow_run.id)
    return uuid4().hex


class _Totals:
    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.calls: dict[str, int] = {}
        self.retries: dict[str, int] = {}
        self.problems: list[RowResult] = []
        self.diffs: list[Diff] = []
        self.rows = 0
        self.chunks = 0

    def add_plan(self, plan: Plan) -> None:
        """The rows a plan decided without a call (unchanged, failed)."""
        self.counts["unchanged"] += len(plan.unchanged)
        self.counts["failed"] += len(plan.failed)
        self.rows += len(plan.unchanged) + len(plan.failed)
        self.problems += plan.failed[: max(0, MAX_LISTED - len(self.problems))]

    def add(self, report: ChunkReport, sample_diffs: int) -> None:
        self.chunks += 1
        for outcome, n in report.counts.items():
            self.counts[outcome] += n
        self.rows += report.rows
        for name, n in report.calls.items():
            self.calls[name] = self.calls.get(name, 0) + n
        for name, n in report.retries.items():
            self.retries[name] = self.retries.get(name, 0) + n
        self.problems += report.problems[: max(0, MAX_LISTED - len(self.problems))]
        self.diffs += report.diffs[: max(0, sample_diffs - len(self.diffs))]


class _SyncFlow(Flow[Any, WarehouseSyncSummary]):
    """The flow, with ``rows`` kept out of the flow run's stored parameters: Prefect would
    otherwise encode (and, for a generator, consume) every row into the API."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        rows = parameters.get("rows")
        if rows is None:
            return super().serialize_parameters(parameters)
        stored = super().serialize_parameters({k: v for k, v in parameters.items() if k != "rows"})
        stored["rows"] = f"<{type(rows).__name__}>"
        return stored


def _flow(fn: Callable[..., WarehouseSyncSummary]) -> _SyncFlow:
    """``@flow`` with this flow's options, as a ``_SyncFlow``."""
    return _SyncFlow(
        fn=fn,
        name="autotalk-sync-from-warehouse",
        flow_run_name=_run_name,
        description="Upsert warehouse rows into AutoTalk Dynadata: changes only, each key "
        "created once.",
        validate_parameters=True,
        task_runner=ThreadPoolTaskRunner(max_workers=16),  # type: ignore[arg-type]
    )


@_flow
def sync_from_warehouse(
    dynadata_type: str,
    key: str,
    query: str | None = None,
    url: str | None = None,
    rows: Any = None,
    mapping: dict[str, str] | None = None,
    dry_run: bool = False,
    chunk_size: int = 1000,
    max_concurrency: int = 16,
    parallel_chunks: int = 2,
    requests_per_second: float | None = None,
    global_rate_limit_name: str | None = None,
    match_existing_items: bool | None = None,
    write_results: bool = True,
    results_csv: str | None = None,
    sample_diffs: int = 10,
    stale_claim_minutes: float = 15.0,
    ledger_storage: str | None = None,
    credentials: AutoTalkCredentials | None = None,
) -> WarehouseSyncSummary:
    """Upsert warehouse rows into a Dynadata type: create new keys, update changed rows, skip
    the rest; each key created once, across re-runs, crashes and overlapping runs.

    Args:
        dynadata_type: The Dynadata type to write (``clients``, ``orders``, ...).
        key: The type's field that identifies a row (``email``, ``externalId``, ...): the item
            whose ``key`` equals the row's is the one updated.
        query: A SQL SELECT (or a table name) run against ``url``.
        url: A SQLAlchemy URL: ``duckdb:///path.duckdb`` (default: the DuckDB file
            ``sync_to_warehouse`` writes, ``.autotalk/warehouse.duckdb``), ``sqlite:///...``,
            ``postgresql://...``, or ``secret/<name>``: a Prefect Secret block holding the URL
            (keeps a password out of the parameters). With ``rows``: where the results table
            goes (optional).
        rows: Instead of a query: any iterable of dicts (a list, a generator, a dlt resource).
        mapping: ``{column: field}``; default: every column to the field of the same name.
        dry_run: Report what would happen (counts, sample diffs) and write nothing anywhere.
        chunk_size: Rows per chunk task.
        max_concurrency: AutoTalk calls in flight at once, across the run (each of the
            ``parallel_chunks`` chunks in flight gets its share).
        parallel_chunks: Chunk tasks in flight at once (one plans and records while another
            writes).
        requests_per_second: Client-side cap on writes per second, per chunk.
        global_rate_limit_name: A Prefect global concurrency limit with slot decay that every
            write takes a slot from (the one the other flows use, so all share one budget).
        match_existing_items: Read the type once and match its items by key before writing
            (default: only on the first run for the type, when the state table knows no key).
        write_results: Append every row's outcome to ``autotalk_sync_results`` in the source
            database.
        results_csv: Also keep the per-row results as this CSV file.
        sample_diffs: How many sample diffs (field: old -> new) a dry run reports.
        stale_claim_minutes: A create claimed this long ago, by a run that never recorded it and
            whose key AutoTalk does not hold, is created again (sooner when that run is over).
        ledger_storage: Where the claims and the change-detection state live: a SQLAlchemy URL
            (SQLite file or PostgreSQL), a directory, or ``secret/<name>``; default
            ``$AUTOTALK_LEDGER_URL``, else ``.autotalk/ledger``.
        credentials: The AutoTalk block (default: ``AUTOTALK_*`` from the environment).
    """
    started = time.monotonic()
    logger = get_run_logger()
    dynadata_type = _check_name("dynadata_type", dynadata_type)
    key = _check_name("key", key)
    label_run(tags=["warehouse", slug(dynadata_type), *(["dry-run"] if dry_run else [])])
    chunk_size = _check_number("chunk_size", chunk_size)
    max_concurrency = _check_number("max_concurrency", max_concurrency)
    parallel_chunks = _check_number("parallel_chunks", parallel_chunks)
    if requests_per_second is not None and not requests_per_second > 0:
        raise ValueError(f"requests_per_second must be > 0 (or unset), got {requests_per_second!r}")
    if (
        isinstance(sample_diffs, bool)
        or not isinstance(sample_diffs, int)
        or not 0 <= sample_diffs <= 1000
    ):
        raise ValueError(f"sample_diffs must be an integer from 0 to 1000, got {sample_diffs!r}")
    if not stale_claim_minutes >= 0:
        raise ValueError(f"stale_claim_minutes must be >= 0, got {stale_claim_minutes!r}")
    source, results_url = _source(query, url, rows)
    state = WarehouseState(dynadata_type, ledger_storage)
    block = resolve_credentials(credentials)
    calls: dict[str, int] = {}
    with block.get_client() as client:
        known_types = [t.name for t in client.list_dynadata_types()]
        calls["types"] = 1
        if dynadata_type not in known_types:
            raise unknown_type_error(
                "dynadata_type", dynadata_type, known_types, "nothing was written."
            )
        schema = client.get_dynadata_schema(dynadata_type)
        calls["schema"] = 1
    type_schema = TypeSchema(dynadata_type, schema)
    mapper = RowMapper(type_schema, key, mapping)
    if global_rate_limit_name and not dry_run:
        limit = run_coro_as_sync(check_global_rate_limit(global_rate_limit_name))
        logger.info("global rate limit %r: %s", global_rate_limit_name, limit)

    chunks = chunks_of(source, chunk_size)
    first = next(chunks, None)
    if first is not None:
        mapper.check(list(first[0]))  # stops here, before any write, if the mapping cannot fit
    run_id = _flow_run_id()
    matched: int | None = None
    adopted: dict[str, KnownItem] | None = None
    wanted = match_existing_items if match_existing_items is not None else state.is_empty()
    if first is not None and wanted:
        fields = [f for _, f in mapper.pairs(list(first[0]))]
        with block.get_client() as client:
            matched, adopted = match_existing(
                client, mapper, fields, state, record=not dry_run, calls=calls
            )
        logger.info(
            "matched %s existing %r items by %r (one paged read)", matched, dynadata_type, key
        )

    totals = _Totals()
    label = artifact_key("warehouse", dynadata_type)
    progress = cast(
        UUID,
        create_progress_artifact(
            0.0,
            key=f"{label}-progress",
            description=f"Chunks done of the sync into {dynadata_type}",
        ),
    )
    keep_csv = results_csv is not None
    scratch = None if keep_csv else tempfile.TemporaryDirectory(prefix="autotalk-results-")
    csv_path = (
        Path(results_csv)
        if results_csv is not None
        else Path(cast(Any, scratch).name) / "results.csv"
    )
    results = ResultsFile(csv_path, dynadata_type, run_id)
    # each chunk writes its rows' results here; the flow appends them to the CSV as they come
    chunk_dir = tempfile.TemporaryDirectory(prefix="autotalk-chunks-")
    chunk_files = Path(chunk_dir.name)
    in_flight: set[PrefectFuture[ChunkReport]] = set()
    submitted = 0
    progress_at = time.monotonic()

    def collect_one() -> None:
        nonlocal progress_at
        done = next(as_completed(list(in_flight)))
        in_flight.discard(done)
        report = done.result()  # a failed chunk (a revoked key) fails the run
        totals.add(report, sample_diffs)
        if report.results_file is not None:  # the chunk's rows, appended then removed
            results.add_chunk(Path(report.results_file))
        if time.monotonic() - progress_at >= _PROGRESS_EVERY_SECONDS:
            update_progress_artifact(progress, 100.0 * totals.chunks / max(submitted, 1))
            progress_at = time.monotonic()

    def submit(rows: list[PlannedRow], known: dict[str, KnownItem]) -> None:
        nonlocal submitted
        while len(in_flight) >= parallel_chunks:
            collect_one()
        submitted += 1
        job = ChunkJob(
            rows=rows,
            known=known,
            number=submitted,
            dynadata_type=dynadata_type,
            key=key,
            mapping=mapping,
            schema=schema,
            ledger_url=state.url,
            run_id=run_id,
            credentials=credentials,
            concurrency=max(1, max_concurrency // parallel_chunks),
            requests_per_second=requests_per_second,
            global_rate_limit_name=global_rate_limit_name,
            dry_run=dry_run,
            sample_diffs=sample_diffs,
            stale_claim_seconds=stale_claim_minutes * 60.0,
            results_dir=str(chunk_files),
        )
        # a job is opaque data: Prefect need not walk its rows
        future = upsert_rows.submit(cast(Any, quote(job)))
        in_flight.add(cast(PrefectFuture[ChunkReport], future))

    def all_chunks() -> Iterable[list[Row]]:
        if first is not None:
            yield first
            yield from chunks

    planner = ChunkPlanner(type_schema, key, mapping, state, adopted)
    pending: dict[str, PlannedRow] = {}  # rows that need a call, by key, up to chunk_size
    pending_known: dict[str, KnownItem] = {}

    def flush() -> None:
        if pending:
            submit(list(pending.values()), dict(pending_known))
            pending.clear()
            pending_known.clear()

    try:  # the next chunk is read and planned while the jobs in flight write
        for chunk in all_chunks():
            plan = planner.plan(chunk)
            totals.add_plan(plan)
            results.add_lines((k, i, "unchanged", "") for k, i in plan.unchanged)
            results.add(plan.failed)
            for row in plan.pending:
                if row.key in pending:  # the same key in two source chunks: never one job
                    flush()
                pending[row.key] = row
                if row.key in plan.known:
                    pending_known[row.key] = plan.known[row.key]
                if len(pending) >= chunk_size:
                    flush()
        flush()
        while in_flight:
            collect_one()
    finally:
        results.close()
        chunk_dir.cleanup()
    update_progress_artifact(progress, 100.0)

    table = None
    if results_url is not None and write_results and not dry_run:
        written = write_back(results_url, csv_path)
        table = f"{RESULTS_TABLE} in {shown_url(results_url)}"
        logger.info("wrote %s row results to %s", written, table)
    summary = WarehouseSyncSummary(
        dynadata_type=dynadata_type,
        key=key,
        dry_run=dry_run,
        rows=totals.rows,
        **totals.counts,
        matched_existing=matched,
        api_calls=dict(sorted({**calls, **totals.calls}.items())),
        retries=totals.retries,
        problems=totals.problems,
        diffs=totals.diffs,
        results_csv=str(csv_path) if keep_csv else None,
        results_table=table,
        duration_seconds=round(time.monotonic() - started, 3),
    )
    if scratch is not None:
        scratch.cleanup()
    _publish(summary, label)
    logger.info("%s", _headline(summary))
    return summary


def _headline(summary: WarehouseSyncSummary) -> str:
    verb = "would be " if summary.dry_run else ""
    counts = ", ".join(f"{n} {verb}{o}" for o, n in summary.counts().items())
    return f"{summary.rows} rows into {summary.dynadata_type!r}: {counts}; {summary.writes} writes"


def _publish(summary: WarehouseSyncSummary, label: str) -> None:
    """The run's artifacts: the counts, the problem rows, a dry run's sample diffs; its event."""
    line = _headline(summary)
    create_table_artifact(
        [{"outcome": o, "rows": n} for o, n in summary.counts().items()]
        + [{"outcome": f"calls: {k}", "rows": n} for k, n in summary.api_calls.items()],
        key=f"{label}-counts{'-dry-run' if summary.dry_run else ''}",
        description=line,
    )
    if summary.problems:
        create_table_artifact(
            [p.model_dump() for p in summary.problems],
            key=f"{label}-problems",
            description=f"Rows not written: {summary.failed} failed, {summary.unknown} unknown",
        )
    if summary.dry_run:
        lines = [f"# Dry run: {line}", "", "Nothing was written. Sample changes:", ""]
        for diff in summary.diffs:
            lines.append(
                f"- **{diff.action}** `{diff.key}`" + (f" ({diff.item_id})" if diff.item_id else "")
            )
            lines += [f"    - `{f}`: {old!r} -> {new!r}" for f, (old, new) in diff.changes.items()]
        create_markdown_artifact("\n".join(lines), key=f"{label}-dry-run", description=line)
        return
    emit_completed(
        "autotalk.warehouse.synced",
        "dynadata-type",
        summary.dynadata_type,
        payload={"rows": summary.rows, **summary.counts(), "api_calls": summary.api_calls},
    )
