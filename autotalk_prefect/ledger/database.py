"""The ledger's database: its tables, one engine per URL, and the transaction every write uses.

Below the claim store (``store``), the opt-out list (``optouts``) and the consent check
(``consent``), which all share these: the claims table is here because the consent check
counts a contact's recent claims across campaigns to enforce frequency caps.
"""

from __future__ import annotations

import importlib.util
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autotalk_prefect.ledger.migrate import migrate

__all__ = ["TABLE", "engine_for", "engine_with_tables", "metadata", "transaction"]

_BUSY_BUDGET_S = 120.0  # how long a transaction SQLite refused as locked is tried again
_WRITE = "autotalk_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)
T = TypeVar("T")
_backoff_rng = random.Random()  # our own generator: a user's seeded ``random`` stays theirs


# ---- where: URL resolution and engines ------------------------------------------------------

# URL resolution and the Secret block: ledger/location.py
_engines: dict[str, Engine] = {}
_cache_lock = threading.Lock()  # guards the cache above


metadata = sa.MetaData()
TABLE = sa.Table(
    "autotalk_ledger",
    metadata,
    sa.Column("campaign", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempt", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("run_id", sa.String(64)),
    sa.Column("message_id", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("text", sa.Text),  # what was sent (the rendered message), for reconciliation
    sa.Column("raw", sa.Text),  # the raw answer when it was not what we expected
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # the Prefect flow run that made the claim: a claim of a crashed run is not "in flight"
    sa.Column("flow_run_id", sa.String(64)),
    sa.Index("autotalk_ledger_state", "campaign", "state"),
    sa.Index("autotalk_ledger_key", "key", "claimed_at"),  # frequency caps: across campaigns
)


def _sqlite_engine(url: sa.engine.URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=8
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")  # many processes: wait, do not fail
        cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous = FULL")  # a committed claim survives power loss
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # a writer takes the write lock at BEGIN: no deadlock-prone read->write upgrade between
        # processes; a reader takes none (WAL: it reads a snapshot and never blocks a writer)
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def engine_for(url_text: str) -> Engine:
    """One engine per URL per process (its table created on first use)."""
    with _cache_lock:
        engine = _engines.get(url_text)
        if engine is not None:
            return engine
        url = sa.engine.make_url(url_text)
        if url.get_backend_name() == "sqlite":
            engine = _sqlite_engine(url)
        else:
            if url.drivername == "postgresql":  # no driver named: the one installed
                url = url.set(drivername=f"postgresql+{_pg_driver()}")
            try:
                engine = sa.create_engine(url, pool_size=8, pool_pre_ping=True)
            except ModuleNotFoundError as exc:
                raise ModuleNotFoundError(
                    f"The PostgreSQL ledger needs a driver ({exc.name} is missing): "
                    "pip install psycopg2-binary (or psycopg)"
                ) from exc
        # a claims table made by an earlier version gains the new columns
        _create_tables(engine, metadata, then=migrate)
        _engines[url_text] = engine
        return engine


def _create_tables(
    engine: Engine, tables: sa.MetaData, then: Callable[[Engine], object] | None = None
) -> None:
    """``tables`` created if missing (then ``then``), tried again: several processes may
    create the same table at once, and all but one see it appear under them."""
    for _ in range(3):
        try:
            tables.create_all(engine, checkfirst=True)
            if then is not None:
                then(engine)
            return
        except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):
            time.sleep(0.2)
    tables.create_all(engine, checkfirst=True)
    if then is not None:
        then(engine)


_tables_made: set[tuple[str, int]] = set()
_tables_lock = threading.Lock()


def engine_with_tables(url_text: str, tables: sa.MetaData) -> Engine:
    """The engine for ``url_text`` with ``tables`` created, once per process: for the tables
    that live beside the claims (opt-outs, reminder state, warehouse state)."""
    engine = engine_for(url_text)
    with _tables_lock:
        if (url_text, id(tables)) not in _tables_made:
            _create_tables(engine, tables)
            _tables_made.add((url_text, id(tables)))
    return engine


_PG_ROLLED_BACK = ("40P01", "40001")  # deadlock detected, serialization failure


def _rolled_back_whole(engine: Engine, exc: sa.exc.OperationalError) -> bool:
    """An error that guarantees the transaction wrote nothing and may simply run again:
    SQLite's SQLITE_BUSY / SQLITE_LOCKED ("database is locked"), PostgreSQL's deadlock and
    serialization failures. (A lost connection is not one: its COMMIT may have happened.)"""
    if engine.dialect.name == "postgresql":
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return code in _PG_ROLLED_BACK
    if engine.dialect.name != "sqlite":
        return False
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF in (5, 6)
    return "database is locked" in str(exc.orig) or "database table is locked" in str(exc.orig)


def transaction(engine: Engine, work: Callable[[Connection], T], *, write: bool) -> T:
    """Run ``work`` in one transaction, committed when it returns (rolled back if it raises).

    SQLite's busy timeout makes a writer wait for the lock, but WAL mode also answers "database
    is locked" at once in a few moments (another process opening or closing the file, recovery),
    and the busy timeout does not cover those; PostgreSQL aborts one side of a deadlock. Such a
    transaction was rolled back whole, so it is run again, with jittered backoff, for up to two
    minutes. Any other error is raised at once.
    """
    deadline = time.monotonic() + _BUSY_BUDGET_S
    delay = 0.02
    while True:
        try:
            with engine.connect() as conn:
                if write:
                    conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    return work(conn)
        except sa.exc.OperationalError as exc:
            if not _rolled_back_whole(engine, exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(_backoff_rng.uniform(delay / 2, delay))
            delay = min(delay * 2, 1.0)


def _pg_driver() -> str:
    for module, name in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return name
    return "psycopg"  # not installed: create_engine names it in its error
