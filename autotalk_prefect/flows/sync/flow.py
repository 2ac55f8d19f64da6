"""The prebuilt flow ``sync_to_warehouse`` (deployment entrypoint ``flows/sync.py``): AutoTalk data into a warehouse.

The dlt pipeline (``autotalk_prefect.flows.sync.source``) runs inside one Prefect task: dlt batches,
normalises and loads on its own, so per-page task runs would only add overhead. The flow reports
the rows loaded per table in a table artifact and returns a :class:`SyncSummary`.

Destinations are dlt's own (``duckdb``, ``postgres``, ``bigquery``, ``snowflake``, ...) with
dlt's credential formats. A destination secret (a DSN with a password, a service-account JSON)
should not travel as a flow parameter, which Prefect stores in plain text: keep it in a Prefect
``Secret`` block and pass the block's name as ``destination_secret``. See docs/sync.md.
"""

# No ``from __future__ import annotations`` here: a deployment's flow-run process must see
# the parameter types as objects (string annotations break its parameter validation).

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel, Field

from autotalk_prefect.credentials import AutoTalkCredentials
from autotalk_prefect.flows.runinfo import label_run, run_parameters, slug
from autotalk_prefect.ledger.location import read_secret_block

DEFAULT_DUCKDB_PATH = ".autotalk/warehouse.duckdb"
DUCKDB_MAX_QUERY_BYTES = 256 * 1024
"""DuckDB load statements are cut at this size: dlt's 32 MB default makes DuckDB parse one huge
INSERT per file (2.8 GB peak RSS at 100k rows); 256 KB brings that to ~300 MB, same speed."""
DEFAULT_DUCKDB_MEMORY_LIMIT = "64MB"
"""DuckDB keeps the blocks of the tables it writes cached up to its memory limit (80% of RAM by
default), so a sync's peak memory grew with the table (+75-90 MB from 10k to 100k rows). A 64 MB
limit, one thread and no insertion-order buffering keep it flat (+45 MB) at the same speed: the
merge spills to ``<file>.tmp`` beyond it. Raise it (``duckdb_memory_limit``) for very wide rows."""
_MEMORY_LIMIT = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)

DltCredentials = str | dict[str, Any] | None


class TableSync(BaseModel):
    """One table's share of a sync run."""

    table: str
    rows_loaded: int = Field(description="Rows written to the destination in this run.")
    pages_read: int = Field(description="API requests (pages) the run made for this table.")


class SyncSummary(BaseModel):
    """What ``sync_to_warehouse`` did (no credentials: safe to log and to keep as a result)."""

    pipeline_name: str
    destination: str
    dataset_name: str
    full_refresh: bool
    types: list[str] | None
    load_ids: list[str] = Field(default_factory=list)
    tables: list[TableSync] = Field(default_factory=list)

    @property
    def rows_loaded(self) -> int:
        return sum(t.rows_loaded for t in self.tables)

    @property
    def pages_read(self) -> int:
        return sum(t.pages_read for t in self.tables)

    def tables_by_name(self) -> dict[str, TableSync]:
        return {t.table: t for t in self.tables}

    def rows(self, table: str) -> int:
        """Rows loaded into ``table`` (0 when the run loaded none)."""
        return next((t.rows_loaded for t in self.tables if t.table == table), 0)


# ---- destination -------------------------------------------------------------------------------


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def _secret_credentials(block_name: str) -> DltCredentials:
    """A Prefect Secret block's value: a string (DSN, path) or a JSON object, as dlt takes it."""
    value = read_secret_block(
        block_name,
        parameter="destination_secret",
        holds="the warehouse's credentials (a DSN, a path or a JSON object)",
        example="'postgresql://...'",
    )
    if isinstance(value, str) and value.lstrip().startswith("{"):
        parsed = json.loads(value)
        if isinstance(parsed, dict):
            return parsed
    if isinstance(value, dict | str):
        return value
    raise TypeError(
        f"Secret block {block_name!r} must hold a string or a JSON object, "
        f"got {type(value).__name__}"
    )


def require_dlt() -> None:
    """The sync needs the optional ``dlt`` extra: without it, fail naming how to install it."""
    import autotalk_prefect.flows.sync.source  # noqa: F401  (its ImportError names the extra)


def check_memory_limit(value: object) -> str:
    """A DuckDB memory limit such as ``64MB`` or ``1GB``."""
    if not isinstance(value, str) or not _MEMORY_LIMIT.fullmatch(value.strip()):
        raise ValueError(f"duckdb_memory_limit must be a size like '64MB' or '1GB', got {value!r}")
    return value.strip()


def _bounded_duckdb(path: str, memory_limit: str) -> Any:
    """DuckDB file credentials whose memory stays flat as the tables grow."""
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(path)
    credentials.global_config = {
        "memory_limit": memory_limit,
        "threads": 1,
        "preserve_insertion_order": False,
    }
    return credentials


def build_destination(
    destination: str,
    credentials: DltCredentials = None,
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
) -> Any:
    """The dlt destination for a name and dlt-style credentials.

    ``duckdb`` (the default) writes a local file, ``.autotalk/warehouse.duckdb`` unless a path is
    given. Any other name goes to dlt's registry (``postgres``, ``bigquery``, ``snowflake``, ...);
    with ``credentials=None`` dlt reads them from its own config (env vars, secrets.toml).
    Never log the returned object: its repr shows the credentials.
    """
    require_dlt()
    import dlt
    from dlt.common.destination import Destination
    from dlt.common.destination.exceptions import UnknownDestinationModule

    name = _check_name(destination, "destination")
    if name == "duckdb":
        path = credentials if credentials is not None else DEFAULT_DUCKDB_PATH
        if isinstance(path, str | Path) and str(path) != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            path = _bounded_duckdb(
                str(Path(path).expanduser()), check_memory_limit(duckdb_memory_limit)
            )
        return dlt.destinations.duckdb(path, max_query_length=DUCKDB_MAX_QUERY_BYTES)
    try:
        return Destination.from_reference(name, credentials=credentials)
    except UnknownDestinationModule:
        raise ValueError(
            f"unknown destination {name!r}: use a dlt destination name such as duckdb, "
            "postgres, bigquery, snowflake, redshift, mssql, motherduck or filesystem"
        ) from None


# ---- the run -----------------------------------------------------------------------------------


def _artifact_key(pipeline_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", pipeline_name.lower()).strip("-") or "pipeline"
    return f"autotalk-sync-{slug}"


def _summary(
    pipeline: Any, resources: list[str], pages: Counter[str], info: Any, base: dict[str, Any]
) -> SyncSummary:
    normalize_info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    counts: dict[str, int] = dict(normalize_info.row_counts) if normalize_info else {}
    names = sorted({*resources, *counts, *pages} - {t for t in counts if t.startswith("_dlt")})
    tables = [
        TableSync(table=name, rows_loaded=counts.get(name, 0), pages_read=pages.get(name, 0))
        for name in names
    ]
    return SyncSummary(**base, load_ids=list(info.loads_ids), tables=tables)


@task(name="run-dlt-pipeline", retries=0)
def run_sync_pipeline(
    destination: str,
    destination_credentials: DltCredentials,
    destination_secret: str | None,
    dataset_name: str,
    types: list[str] | None,
    full_refresh: bool,
    pipeline_name: str,
    pipelines_dir: str | None,
    credentials: AutoTalkCredentials | None,
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
) -> SyncSummary:
    """Extract, normalise and load in one go (dlt batches internally; no per-page task runs)."""
    require_dlt()
    import dlt

    from autotalk_prefect.flows.sync.source import autotalk_source

    logger = get_run_logger()
    if destination_secret is not None:
        destination_credentials = _secret_credentials(destination_secret)
    dest = build_destination(destination, destination_credentials, duckdb_memory_limit)
    pages: Counter[str] = Counter()
    source = autotalk_source(credentials, types=types, on_page=lambda table: pages.update([table]))
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        pipelines_dir=cast(str, pipelines_dir),  # None: dlt's default (~/.dlt/pipelines)
        destination=dest,
        dataset_name=dataset_name,
    )
    refresh = cast(Any, "drop_sources" if full_refresh else None)
    info = pipeline.run(source, refresh=refresh)
    summary = _summary(
        pipeline,
        list(source.resources.selected),
        pages,
        info,
        {
            "pipeline_name": pipeline_name,
            "destination": destination,
            "dataset_name": dataset_name,
            "full_refresh": full_refresh,
            "types": types,
        },
    )
    logger.info(
        "Loaded %d rows into %d tables of %s dataset %r (%d pages read)",
        summary.rows_loaded,
        len(summary.tables),
        destination,
        dataset_name,
        summary.pages_read,
    )
    return summary


def _run_name() -> str:
    """``sync-clients-orders`` (``sync-all`` without a type list) ``-to-<destination>``."""
    params = run_parameters()
    types = params.get("types")
    what = "-".join(slug(t) for t in types) if isinstance(types, list) and types else "all"
    return f"sync-{what}-to-{slug(params.get('destination', 'duckdb'))}"[:100]


@flow(
    name="autotalk-sync-to-warehouse",
    flow_run_name=_run_name,
    description="Copy AutoTalk's Dynadata, conversations and messages into a warehouse (dlt).",
    log_prints=False,
)
def sync_to_warehouse(
    destination: str = "duckdb",
    destination_credentials: str | dict[str, Any] | None = None,
    dataset_name: str = "autotalk",
    types: list[str] | None = None,
    full_refresh: bool = False,
    pipeline_name: str = "autotalk",
    pipelines_dir: str | None = None,
    credentials: AutoTalkCredentials | None = None,
    destination_secret: str | None = None,
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
) -> SyncSummary:
    """Sync AutoTalk Dynadata types, conversations, messages, channels and assistants.

    Args:
        destination: a dlt destination name (``duckdb``, ``postgres``, ``bigquery``, ...).
        destination_credentials: dlt credentials for it (DuckDB: the file path, default
            ``.autotalk/warehouse.duckdb``); ``None`` lets dlt read its own config.
        dataset_name: the schema/dataset the tables land in.
        types: Dynadata types to sync (``None``: all of them).
        full_refresh: drop the tables and cursors first and load everything again.
        pipeline_name: dlt pipeline name: its state (cursors) lives under this name, locally
            and in the destination, so keep one name per destination and dataset.
        pipelines_dir: where dlt keeps its working files (default ``~/.dlt/pipelines``).
        credentials: the AutoTalk block (``None``: ``AUTOTALK_*`` from the environment).
        destination_secret: name of a Prefect ``Secret`` block holding the destination
            credentials (a DSN string or a JSON object); wins over ``destination_credentials``.
        duckdb_memory_limit: DuckDB's memory cap for a DuckDB file destination (it spills to
            disk beyond it), so memory stays flat however large the tables grow.
    """
    label_run(tags=["sync", slug(destination)])
    _check_name(destination, "destination")
    _check_name(dataset_name, "dataset_name")
    _check_name(pipeline_name, "pipeline_name")
    if destination_secret is not None:
        _check_name(destination_secret, "destination_secret")
    duckdb_memory_limit = check_memory_limit(duckdb_memory_limit)
    if types is not None and (
        isinstance(types, str) or not all(isinstance(t, str) and t for t in types)
    ):
        raise ValueError(f"types must be a list of Dynadata type names, got {types!r}")
    require_dlt()
    summary = run_sync_pipeline(
        destination,
        destination_credentials,
        destination_secret,
        dataset_name,
        types,
        full_refresh,
        pipeline_name,
        pipelines_dir,
        credentials,
        duckdb_memory_limit,
    )
    create_table_artifact(
        key=_artifact_key(pipeline_name),
        table=[t.model_dump() for t in summary.tables],
        description=(
            f"AutoTalk sync into {destination} dataset `{dataset_name}`"
            f"{' (full refresh)' if full_refresh else ''}: {summary.rows_loaded} rows loaded, "
            f"{summary.pages_read} pages read."
        ),
    )
    return summary
