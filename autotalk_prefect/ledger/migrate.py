"""Bring an existing claim table up to date, safely while other processes use it.

Ledgers made by earlier versions lack what later features read: the ``flow_run_id`` of each
claim (so a run can tell a claim of a crashed flow run from one in flight) and the index on
``key`` (frequency caps count a contact's claims across campaigns). Each step checks first and
tolerates a concurrent process doing the same step (``ADD COLUMN IF NOT EXISTS`` on
PostgreSQL; SQLite's "duplicate column" is taken as done).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["migrate"]

_COLUMNS = {"flow_run_id": "VARCHAR(64)"}
_INDEXES = {"autotalk_ledger_key": "(key, claimed_at)"}


def migrate(engine: Engine, table: str = "autotalk_ledger") -> list[str]:
    """Add missing columns and indexes to ``table``; returns what was added."""
    done: list[str] = []
    present = {c["name"] for c in sa.inspect(engine).get_columns(table)}
    for name, sql_type in _COLUMNS.items():
        if name in present:
            continue
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(
                    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {sql_type}"
                )
            else:
                try:
                    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
                except sa.exc.OperationalError as exc:
                    if "duplicate column" not in str(exc).lower():
                        raise
        done.append(f"column {name}")
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes(table)}
    for name, columns in _INDEXES.items():
        if name in indexes:
            continue
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {columns}")
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            # PostgreSQL: another process created it between our check and ours
            if name not in {i["name"] for i in sa.inspect(engine).get_indexes(table)}:
                raise
        done.append(f"index {name}")
    return done
