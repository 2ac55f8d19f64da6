"""Rows out of the warehouse, a chunk at a time: any SQLAlchemy URL, DuckDB, or an iterable.

``sync_from_warehouse`` and SQL audiences read through here. A query's rows are fetched in
batches from a server-side cursor (``yield_per``; DuckDB's ``fetchmany``), so a table of
millions of rows never sits in memory. DuckDB is reached with its own Python module (the file
``sync_to_warehouse`` writes, ``duckdb:///.autotalk/warehouse.duckdb`` by default), so no
SQLAlchemy dialect package is needed for it; every other URL goes through SQLAlchemy (SQLite,
PostgreSQL, and any dialect the user installed: Snowflake, BigQuery, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = [
    "DEFAULT_WAREHOUSE_URL",
    "Row",
    "check_query",
    "check_url",
    "chunks_of",
    "duckdb_path",
    "iter_query",
    "shown_url",
]

DEFAULT_WAREHOUSE_URL = "duckdb:///.autotalk/warehouse.duckdb"
"""The embedded DuckDB file ``sync_to_warehouse`` writes by default."""
FETCH_ROWS = 2000  # rows per fetch from the database cursor

Row = dict[str, Any]


def shown_url(url: str) -> str:
    """A URL for logs and errors, password hidden."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unreadable URL)"


def check_url(url: object) -> str:
    """A SQLAlchemy URL (``duckdb:///file``, ``sqlite:///file``, ``postgresql://...``), or one
    clear error saying what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"url must be a SQLAlchemy URL such as {DEFAULT_WAREHOUSE_URL!r}")
    text = url.strip()
    try:
        sa.engine.make_url(text)
    except sa.exc.ArgumentError:
        raise ValueError(
            f"url is not a SQLAlchemy URL (dialect://user:pass@host/db, "
            f"e.g. {DEFAULT_WAREHOUSE_URL!r} or 'postgresql://user:pass@host/db')"
        ) from None
    return text


def resolve_url(url: object) -> str:
    """``url`` itself, or for ``secret/<name>`` the URL a Prefect ``Secret`` block holds (so a
    password stays out of flow parameters, which Prefect stores in plain text)."""
    if isinstance(url, str) and url.strip().startswith("secret/") and "://" not in url:
        from prefect.blocks.system import Secret

        name = url.strip()[len("secret/") :]
        try:
            block: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]
            value = block.get()
        except ValueError as exc:
            if "Unable to find block document" not in str(exc):
                raise
            raise ValueError(f"url {url!r}: there is no Secret block named {name!r}") from None
        if not isinstance(value, str):
            raise ValueError(f"url {url!r}: the Secret block must hold a SQLAlchemy URL as text")
        return check_url(value)
    return check_url(url)


def check_query(query: object) -> str:
    """A non-empty SQL text."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a SQL SELECT (or a table name), got an empty value")
    text = query.strip().rstrip(";")
    if " " not in text and "\n" not in text:  # a bare table name: read all of it
        return f"SELECT * FROM {text}"
    return text


def duckdb_path(url: str) -> str | None:
    """The file of a ``duckdb:///path`` URL (``:memory:`` for none); ``None`` for other URLs."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "duckdb":
        return None
    database = parsed.database or ":memory:"
    if database != ":memory:":
        database = str(Path(database).expanduser())
    return database


def open_engine(url: str) -> sa.engine.Engine:
    """A SQLAlchemy engine for ``url`` (PostgreSQL: whichever driver is installed)."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername == "postgresql":  # no driver named: the one installed
        import importlib.util

        driver = "psycopg2" if importlib.util.find_spec("psycopg2") is not None else "psycopg"
        parsed = parsed.set(drivername=f"postgresql+{driver}")
    try:
        return sa.create_engine(parsed)
    except (ModuleNotFoundError, sa.exc.NoSuchModuleError) as exc:
        raise ValueError(
            f"cannot open {shown_url(url)}: its SQLAlchemy dialect or driver is not installed "
            f"({exc})"
        ) from None


def _duckdb_rows(path: str, query: str, batch: int) -> Iterator[Row]:
    try:
        import duckdb
    except ImportError:
        raise ValueError(
            "a duckdb:// URL needs the duckdb package: pip install 'autotalk-prefect[dlt]' "
            "(or pip install duckdb)"
        ) from None
    if path != ":memory:" and not Path(path).exists():
        raise ValueError(f"the DuckDB file {path!r} does not exist")
    with duckdb.connect(path, read_only=True) as conn:
        try:
            cursor = conn.execute(query)
        except duckdb.Error as exc:
            raise ValueError(f"the query failed in DuckDB {path!r}: {exc}") from None
        columns = [d[0] for d in cursor.description or []]
        while True:
            fetched = cursor.fetchmany(batch)
            if not fetched:
                return
            for values in fetched:
                yield dict(zip(columns, values, strict=True))


def _sql_rows(url: str, query: str, batch: int) -> Iterator[Row]:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            try:
                result = conn.execution_options(stream_results=True, yield_per=batch).execute(
                    sa.text(query)
                )
            except sa.exc.DBAPIError as exc:
                raise ValueError(
                    f"the query failed in {shown_url(url)}: {str(exc.orig).strip()}"
                ) from None
            for mapping in result.mappings():
                yield dict(mapping)
    finally:
        engine.dispose()


def iter_query(url: str, query: str, *, batch: int = FETCH_ROWS) -> Iterator[Row]:
    """Every row of ``query`` at ``url`` as a dict, fetched ``batch`` rows at a time."""
    url, query = check_url(url), check_query(query)
    path = duckdb_path(url)
    if path is not None:
        return _duckdb_rows(path, query, batch)
    return _sql_rows(url, query, batch)


def iter_rows(rows: Iterable[Any]) -> Iterator[Row]:
    """The dicts of an iterable (a list, a generator, a dlt resource: its pages are flattened)."""
    if isinstance(rows, (str, bytes, Mapping)):
        raise TypeError(
            "rows must be an iterable of dicts (a list, a generator, a dlt resource), "
            f"not a {type(rows).__name__}"
        )
    for number, item in enumerate(rows, start=1):
        if isinstance(item, Mapping):
            yield dict(item)
        elif isinstance(item, list):  # dlt resources may yield pages
            for inner in item:
                if not isinstance(inner, Mapping):
                    raise TypeError(f"row {number}: expected a dict, got {type(inner).__name__}")
                yield dict(inner)
        else:
            raise TypeError(f"row {number}: expected a dict, got {type(item).__name__}")


def chunks_of(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """Consecutive lists of ``size`` rows (the last may be shorter); the source is closed at the
    end or when the consumer stops early."""
    chunk: list[Row] = []
    iterator = iter(rows)
    try:
        for row in iterator:
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
