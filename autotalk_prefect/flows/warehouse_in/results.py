"""Per-row results where a data engineer looks: a CSV file, and a table in the source database.

Every row's outcome is streamed to a CSV file as its chunk finishes (flat memory, whatever the
run's size); at the end of the run the file is appended to ``autotalk_sync_results`` in the
source database (created on first use): key, item id, outcome, error, the Dynadata type, the
flow run id and the time. So ``SELECT * FROM autotalk_sync_results WHERE outcome = 'failed'``
next to the model that produced the rows tells what did not land and why.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from autotalk_prefect.flows.warehouse_in.engine import ResultLine, RowResult, read_chunk_lines
from autotalk_prefect.flows.warehouse_in.source import duckdb_path, open_engine, shown_url

__all__ = ["COLUMNS", "RESULTS_TABLE", "ResultsFile", "write_back"]

RESULTS_TABLE = "autotalk_sync_results"
COLUMNS = ("key", "item_id", "outcome", "error", "dynadata_type", "flow_run_id", "synced_at")
_BATCH = 1000
_MAX_ERROR = 2000

metadata = sa.MetaData()
TABLE = sa.Table(
    RESULTS_TABLE,
    metadata,
    sa.Column("key", sa.Text),
    sa.Column("item_id", sa.Text),
    sa.Column("outcome", sa.String(16)),
    sa.Column("error", sa.Text),
    sa.Column("dynadata_type", sa.String(128)),
    sa.Column("flow_run_id", sa.String(64)),
    sa.Column("synced_at", sa.String(40)),
)


class ResultsFile:
    """Appends the run's row results to a CSV file (a header, then one line per row)."""

    def __init__(self, path: Path, dynadata_type: str, flow_run_id: str) -> None:
        self.path = path
        self.dynadata_type, self.flow_run_id = dynadata_type, flow_run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)
        self.rows = 0

    def add(self, results: Iterable[RowResult]) -> None:
        self.add_lines((r.key, r.item_id or "", r.outcome, r.error or "") for r in results)

    def add_lines(self, lines: Iterable[ResultLine]) -> None:
        """Rows as text (key, item id or "", outcome, error or ""): no model per row."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        run = (self.dynadata_type, self.flow_run_id, now)
        before = self.rows
        for key, item_id, outcome, error in lines:
            self._csv.writerow((key, item_id, outcome, error[:_MAX_ERROR], *run))
            self.rows += 1
        if self.rows != before:
            self._file.flush()

    def add_chunk(self, path: Path) -> None:
        """Append the results one chunk wrote (``engine.write_chunk_results``), then drop its file."""
        self.add_lines(read_chunk_lines(path))
        path.unlink(missing_ok=True)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            yield {k: (v if v != "" or k in ("key", "error") else None) for k, v in row.items()}


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


DUCKDB_SLICE_ROWS = 20_000
"""Rows per INSERT into DuckDB. One ``read_csv`` INSERT of the whole file made DuckDB hold it
all (+280 MB peak RSS at 1,000,000 rows: the cause of the flow's growing peak; under a memory
limit it fails instead). Slices under the limit below keep it bounded: measured alone on a
1,000,000-row results file, peak RSS 211 -> 244 MB from 100k to 1M rows with 50,000-row
slices at 64 MB, 180 -> 201 MB with 20,000-row slices at 32 MB (same time, ~10 s). read_csv's
buffer is 4 MB (default 32 MB, more than the limit: rows with long errors failed to allocate)."""
_DUCKDB_CONFIG: dict[str, Any] = {
    "memory_limit": "32MB",
    "threads": 1,
    "preserve_insertion_order": False,
}


def _slices(path: Path, rows: int) -> Iterator[tuple[Path, int]]:
    """The results file cut into CSV files of ``rows`` rows (each removed once consumed; read
    as CSV, so an error text spanning lines stays one row)."""
    with path.open(newline="", encoding="utf-8") as source:
        reader = csv.reader(source)
        header = next(reader, None)
        number = 0
        while header is not None:
            batch = [row for _, row in zip(range(rows), reader, strict=False)]
            if not batch:
                return
            part = path.with_name(f"{path.stem}.slice{number}.csv")
            with part.open("w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file)
                writer.writerow(header)
                writer.writerows(batch)
            try:
                yield part, len(batch)
            finally:
                part.unlink(missing_ok=True)
            number += 1


def _duckdb_write(database: str, path: Path) -> int:
    import duckdb

    columns = ", ".join(f"{c} VARCHAR" for c in COLUMNS)
    types = ", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS)
    insert = (
        f"INSERT INTO {RESULTS_TABLE} SELECT {', '.join(COLUMNS)} FROM read_csv(?, "
        f"header=true, buffer_size=4194304, columns={{{types}}})"
    )
    with duckdb.connect(database, config=dict(_DUCKDB_CONFIG)) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} ({columns})")
        written = 0
        for part, rows in _slices(path, DUCKDB_SLICE_ROWS):
            conn.execute(insert, [str(part)])
            written += rows
    return written


def write_back(url: str, path: Path) -> int:
    """Append the results file to ``autotalk_sync_results`` at ``url``; rows written."""
    database = duckdb_path(url)
    if database is not None:
        return _duckdb_write(database, path)
    engine = open_engine(url)
    written = 0
    try:
        metadata.create_all(engine, checkfirst=True)
        with engine.begin() as conn:
            for batch in _batches(_read(path)):
                conn.execute(sa.insert(TABLE), batch)
                written += len(batch)
    except sa.exc.DBAPIError as exc:
        raise RuntimeError(
            f"could not write {RESULTS_TABLE} in {shown_url(url)}: {str(exc.orig).strip()}"
        ) from None
    finally:
        engine.dispose()
    return written
