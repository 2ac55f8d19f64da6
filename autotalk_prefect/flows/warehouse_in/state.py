"""Change detection's memory: per (Dynadata type, key), the hash of what was sent and the item id.

Lives in the ledger's database (SQLite file or PostgreSQL, the same engines and transaction
rules as the claim ledger), so a second run knows what changed without reading AutoTalk, and
many machines sharing PostgreSQL share it. A row is written only after AutoTalk accepted the
create or update it records, so a crash leaves at worst a row that is sent again (an update is
idempotent) or a create that the claim ledger reconciles.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autotalk_prefect.ledger.database import engine_with_tables, transaction
from autotalk_prefect.ledger.location import ledger_url
from autotalk_prefect.ledger.location import shown_url as _shown

__all__ = ["KnownItem", "StateRow", "WarehouseState"]

_BATCH = 500  # rows per INSERT (six bound parameters a row; SQLite caps them per statement)
_READ_BATCH = 1000  # keys per IN (...): a default chunk's keys in one query

metadata = sa.MetaData()
TABLE = sa.Table(
    "autotalk_warehouse_state",
    metadata,
    sa.Column("dynadata_type", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("updated_at", sa.Float, nullable=False),
)


def _engine(url: str) -> Engine:
    return engine_with_tables(url, metadata)


@dataclass(frozen=True)
class KnownItem:
    """What the state knows of one key: the item it maps to and the hash last sent."""

    item_id: str
    hash: str


@dataclass(frozen=True)
class StateRow:
    """One (key -> item, hash) to record."""

    key: str
    item_id: str
    hash: str


class WarehouseState:
    """The state rows of one Dynadata type (sync; engines are shared per process)."""

    def __init__(self, dynadata_type: str, storage: object = None) -> None:
        self.dynadata_type = dynadata_type
        self.url = ledger_url(storage)
        self.engine = _engine(self.url)

    def describe(self) -> str:
        return _shown(self.url).strip("'")

    def known(self, keys: Iterable[str]) -> dict[str, KnownItem]:
        """The rows of ``keys`` (absent keys are absent)."""
        wanted = list(dict.fromkeys(keys))
        c = TABLE.c

        def read(conn: Connection) -> dict[str, KnownItem]:
            found: dict[str, KnownItem] = {}
            for start in range(0, len(wanted), _READ_BATCH):
                query = sa.select(c.key, c.item_id, c.hash).where(
                    c.dynadata_type == self.dynadata_type,
                    c.key.in_(wanted[start : start + _READ_BATCH]),
                )
                for r in conn.execute(query):
                    found[r.key] = KnownItem(r.item_id, r.hash)
            return found

        return transaction(self.engine, read, write=False)

    def is_empty(self) -> bool:
        """No key of this type recorded yet (the first run)."""
        c = TABLE.c
        query = sa.select(c.key).where(c.dynadata_type == self.dynadata_type).limit(1)
        return (
            transaction(self.engine, lambda conn: conn.execute(query).first(), write=False) is None
        )

    def count(self) -> int:
        c = TABLE.c
        query = sa.select(sa.func.count()).where(c.dynadata_type == self.dynadata_type)
        return int(
            transaction(self.engine, lambda conn: conn.execute(query).scalar_one(), write=False)
        )

    def record(self, rows: Sequence[StateRow], run_id: str | None = None) -> None:
        """Write ``rows`` (insert or replace), in key order, in one transaction."""
        if not rows:
            return
        unique = sorted({r.key: r for r in rows}.values(), key=lambda r: r.key)
        now = time.time()
        values = [
            {
                "dynadata_type": self.dynadata_type,
                "key": r.key,
                "item_id": r.item_id,
                "hash": r.hash,
                "run_id": run_id,
                "updated_at": now,
            }
            for r in unique
        ]
        statement = self._upsert()

        def write(conn: Connection) -> None:
            for start in range(0, len(values), _BATCH):
                conn.execute(statement, values[start : start + _BATCH])

        transaction(self.engine, write, write=True)

    def _upsert(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            insert: Any = pg_insert(TABLE)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            insert = sqlite_insert(TABLE)
        excluded = insert.excluded
        return insert.on_conflict_do_update(
            index_elements=[TABLE.c.dynadata_type, TABLE.c.key],
            set_={
                "item_id": excluded.item_id,
                "hash": excluded.hash,
                "run_id": excluded.run_id,
                "updated_at": excluded.updated_at,
            },
        )

    def forget(self) -> int:
        """Drop every row of this type (the next run matches by key again); rows dropped."""
        c = TABLE.c
        statement = sa.delete(TABLE).where(c.dynadata_type == self.dynadata_type)
        return int(
            transaction(self.engine, lambda conn: conn.execute(statement).rowcount, write=True)
        )
