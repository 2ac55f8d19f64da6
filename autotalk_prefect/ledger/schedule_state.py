"""The last known state of each appointment (and each contact's silence), in the ledger's database.

Reminders are scheduled from events that may arrive twice or out of order. One row per
(kind, subject) keeps the newest event seen: an event replaces the row only if it is newer
(its time, then its id, break ties the same way everywhere); a redelivery (same event id)
or an older event changes nothing. ``send_reminder`` re-reads this row at send time, so a
reminder whose Prefect run escaped cancellation still sends nothing for a moved or cancelled
appointment. Same database, engines and transaction rules as the claim ledger (``store``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autotalk_prefect.ledger.database import engine_with_tables, transaction
from autotalk_prefect.ledger.location import ledger_url, shown_url

__all__ = ["Applied", "Recorded", "ScheduleState", "ScheduleStateStore"]

Applied = Literal["new", "newer", "duplicate", "older", "unchanged"]

metadata = sa.MetaData()
TABLE = sa.Table(
    "autotalk_schedule_state",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("subject", sa.String(512), primary_key=True),
    sa.Column("event_key", sa.String(512), nullable=False),
    sa.Column("event_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("basis", sa.Text),  # the appointment time (UTC ISO) or the silence's event key
    sa.Column("since", sa.String(512), nullable=False),  # the event that set this status+basis
    sa.Column("data", sa.Text),  # JSON: contact id, name, zone, ...
    sa.Column("updated_at", sa.Float, nullable=False),
)


def _engine(url: str) -> Engine:
    return engine_with_tables(url, metadata)


@dataclass(frozen=True)
class ScheduleState:
    """What stands for one subject: the newest event's status and basis."""

    kind: str
    subject: str
    event_key: str
    event_at: float
    status: str
    basis: str | None
    since: str  # the event key that brought this status and basis (later same-time updates keep it)
    data: dict[str, Any]


@dataclass(frozen=True)
class Recorded:
    """The state after recording an event, and how the event compared with what was there."""

    applied: Applied
    state: ScheduleState


def _state(row: Any) -> ScheduleState:
    return ScheduleState(
        kind=row.kind,
        subject=row.subject,
        event_key=row.event_key,
        event_at=float(row.event_at),
        status=row.status,
        basis=row.basis,
        since=row.since,
        data=json.loads(row.data) if row.data else {},
    )


class ScheduleStateStore:
    """Read and record the last known state of scheduled subjects (sync; engines are shared)."""

    def __init__(self, storage: object = None) -> None:
        self.url = ledger_url(storage)
        self.engine = _engine(self.url)

    def describe(self) -> str:
        return shown_url(self.url).strip("'")

    def read(self, kind: str, subject: str) -> ScheduleState | None:
        c = TABLE.c
        query = sa.select(TABLE).where(c.kind == kind, c.subject == subject)

        def work(conn: Connection) -> ScheduleState | None:
            row = conn.execute(query).first()
            return _state(row) if row is not None else None

        return transaction(self.engine, work, write=False)

    def record(
        self,
        kind: str,
        subject: str,
        *,
        event_key: str,
        event_at: float,
        status: str,
        basis: str | None,
        data: dict[str, Any],
        keep_basis_for: frozenset[str] = frozenset(),
    ) -> Recorded:
        """Record an event unless the row holds a newer one (or this very one).

        ``keep_basis_for``: statuses for which a newer event of the *same* status leaves the
        row as it is (``unchanged``): a silence is counted from its first unanswered message,
        not restarted by the next one (our own nudge among them).
        """
        values = {
            "kind": kind,
            "subject": subject,
            "event_key": event_key,
            "event_at": float(event_at),
            "status": status,
            "basis": basis,
            "since": event_key,
            "data": json.dumps(data, sort_keys=True, default=str),
            "updated_at": time.time(),
        }

        def work(conn: Connection) -> Recorded:
            inserted = conn.execute(self._insert_new(), values).first()
            if inserted is not None:
                return Recorded("new", self._read(conn, kind, subject, lock=False))
            current = self._read(conn, kind, subject, lock=True)
            if current.event_key == event_key:
                return Recorded("duplicate", current)
            if (event_at, event_key) < (current.event_at, current.event_key):
                return Recorded("older", current)
            if current.status == status and status in keep_basis_for:
                return Recorded("unchanged", current)
            same = current.status == status and current.basis == basis
            c = TABLE.c
            conn.execute(
                sa.update(TABLE)
                .where(c.kind == kind, c.subject == subject)
                .values(**{**values, "since": current.since if same else event_key})
            )
            return Recorded("newer", self._read(conn, kind, subject, lock=False))

        return transaction(self.engine, work, write=True)

    def _insert_new(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            insert: Any = pg_insert(TABLE)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            insert = sqlite_insert(TABLE)
        return insert.on_conflict_do_nothing(
            index_elements=[TABLE.c.kind, TABLE.c.subject]
        ).returning(TABLE.c.subject)

    @staticmethod
    def _read(conn: Connection, kind: str, subject: str, *, lock: bool) -> ScheduleState:
        c = TABLE.c
        query = sa.select(TABLE).where(c.kind == kind, c.subject == subject)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).one()
        return _state(row)
