"""The opt-out list: who said STOP, kept in the ledger's database beside the claims.

One row per identifier: a contact id, a phone number (E.164, normalized with ``phonenumbers``)
or an email (lower-cased). Rows written together (one STOP, one CSV line) share an ``entry``
id, so removing any of them (START, ``optouts remove``) removes the whole entry: a contact who
opted out by replying from their phone is opted back in by their contact id, and the reverse.
Each entry keeps when, why and from which event (or import) it came.

Every send path reads the list inside its claim (``autotalk_prefect.ledger.consent``), in the
same transaction that claims the contact, so a STOP committed before a claim always wins.
"""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autotalk_prefect.ledger.database import engine_with_tables, transaction
from autotalk_prefect.ledger.location import ledger_url
from autotalk_prefect.ledger.location import shown_url as _shown
from autotalk_prefect.ledger.settings import ConsentSettings

__all__ = [
    "EXPORT_FIELDS",
    "Identity",
    "OptOut",
    "OptOutList",
    "normalize_email",
    "normalize_phone",
]

Kind = Literal["contact", "phone", "email"]
KINDS: tuple[Kind, ...] = ("contact", "phone", "email")
EXPORT_FIELDS = ("contact_id", "phone", "email", "reason", "source", "opted_out_at")
_MAX_TEXT = 500
_BATCH = 400  # identifiers per IN (...) query (SQLite caps bound parameters per statement)

metadata = sa.MetaData()
TABLE = sa.Table(
    "autotalk_optouts",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(512), primary_key=True),
    sa.Column("entry", sa.String(64), nullable=False),
    sa.Column("contact_id", sa.String(512)),
    sa.Column("phone", sa.String(64)),
    sa.Column("email", sa.String(512)),
    sa.Column("reason", sa.Text),
    sa.Column("source", sa.Text),  # the event id, "cli", "import:<file>", "api", ...
    sa.Column("opted_out_at", sa.Float, nullable=False),
    sa.Index("autotalk_optouts_entry", "entry"),
)


def ensure_table(url: str) -> Engine:
    """The engine for ``url`` with the opt-out table created (once per process)."""
    return engine_with_tables(url, metadata)


# ---- normalizing identifiers -----------------------------------------------------------------


def default_region() -> str | None:
    """The region national phone numbers are read in (``AUTOTALK_PHONE_REGION``, e.g. ``ES``)."""
    return ConsentSettings().phone_region


def normalize_phone(phone: object, region: str | None = None) -> str | None:
    """``phone`` in E.164 (``+34600111222``), or ``None`` when it is not a possible number.

    A number without ``+`` is read in ``region`` (``None``: ``AUTOTALK_PHONE_REGION``; ``""``:
    none); without a region only international numbers normalize.
    """
    if not isinstance(phone, str) or not phone.strip():
        return None
    text = phone.strip()
    if text[:1] == "+" and text[1:].isdigit() and 8 <= len(text) <= 16:
        # already E.164-shaped: as a lookup key it can only equal an entry phonenumbers made
        # (parsing costs ~50 us a number, the check runs for every contact of a campaign)
        return text
    import phonenumbers

    try:
        # None: the setting; "" (a caller that read the setting once): no region
        parsed = phonenumbers.parse(text, (default_region() if region is None else region) or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(email: object) -> str | None:
    """``email`` trimmed and lower-cased, or ``None`` when it has no ``@`` between two parts."""
    if not isinstance(email, str):
        return None
    text = email.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or " " in text:
        return None
    return text


@dataclass(frozen=True)
class Identity:
    """Who a message is for, by every identifier known: any one opted out blocks the send."""

    contact_id: str | None = None
    phone: str | None = None
    email: str | None = None

    @classmethod
    def of(
        cls,
        contact_id: str | None = None,
        phone: object = None,
        email: object = None,
        *,
        region: str | None = None,
    ) -> Identity:
        """An identity with its phone and email normalized (unreadable ones are dropped)."""
        cid = contact_id.strip() if isinstance(contact_id, str) and contact_id.strip() else None
        return cls(cid, normalize_phone(phone, region), normalize_email(email))

    def identifiers(self) -> list[tuple[Kind, str]]:
        found: list[tuple[Kind, str]] = []
        if self.contact_id:
            found.append(("contact", self.contact_id))
        if self.phone:
            found.append(("phone", self.phone))
        if self.email:
            found.append(("email", self.email))
        return found

    def __bool__(self) -> bool:
        return bool(self.contact_id or self.phone or self.email)


@dataclass(frozen=True)
class OptOut:
    """One entry of the list: the identifiers it holds, when, why and from where."""

    entry: str
    contact_id: str | None
    phone: str | None
    email: str | None
    reason: str | None
    source: str | None
    opted_out_at: float

    def as_dict(self) -> dict[str, Any]:
        from datetime import datetime, timezone

        when = datetime.fromtimestamp(self.opted_out_at, timezone.utc)
        return {
            "contact_id": self.contact_id,
            "phone": self.phone,
            "email": self.email,
            "reason": self.reason,
            "source": self.source,
            "opted_out_at": when.isoformat(timespec="seconds"),
        }


def _cap(text: str | None) -> str | None:
    if text is None or len(text) <= _MAX_TEXT:
        return text
    return text[: _MAX_TEXT - 1] + "…"


# ---- reading inside a transaction (the claim's) ----------------------------------------------


#: THE lookup, built once (every claim batch runs it: building and cache-keying a select per
#: batch cost more CPU than SQLite's answer): the listed identifiers among up to ``_PER_KIND``
#: values of each kind, all kinds in one query (a kind with no values matches nothing).
_PER_KIND = _BATCH // len(KINDS)
_LOOKUP = sa.select(TABLE.c.kind, TABLE.c.value).where(
    sa.or_(
        *(
            sa.and_(
                TABLE.c.kind == kind,
                TABLE.c.value.in_(sa.bindparam(f"{kind}_values", expanding=True)),
            )
            for kind in KINDS
        )
    )
)


def opted_out_keys(conn: Connection, identities: Sequence[tuple[str, Identity]]) -> set[str]:
    """The keys of ``identities`` ({key: identity}) whose contact id, phone or email is on the
    list, read on ``conn`` (inside the caller's transaction): one query per ``_PER_KIND``
    identifiers of each kind (one for a claim batch)."""
    wanted: dict[tuple[Kind, str], list[str]] = {}
    for key, identity in identities:
        for pair in identity.identifiers():
            wanted.setdefault(pair, []).append(key)
    if not wanted:
        return set()
    values: dict[Kind, list[str]] = {kind: [] for kind in KINDS}
    for kind, value in wanted:
        values[kind].append(value)
    blocked: set[str] = set()
    for start in range(0, max(len(v) for v in values.values()), _PER_KIND):
        params = {f"{kind}_values": values[kind][start : start + _PER_KIND] for kind in KINDS}
        for row in conn.execute(_LOOKUP, params):
            blocked.update(wanted.get((row.kind, str(row.value)), ()))
    return blocked


# ---- the list as users see it ----------------------------------------------------------------


class OptOutList:
    """The opt-out list in a ledger database (the same storage values as ``ledger_storage``)."""

    def __init__(self, storage: object = None) -> None:
        self.url = ledger_url(storage)
        self.engine = ensure_table(self.url)

    def describe(self) -> str:
        return _shown(self.url).strip("'")

    def add(
        self,
        identity: Identity,
        *,
        reason: str | None = None,
        source: str | None = None,
        at: float | None = None,
    ) -> bool:
        """Opt ``identity`` out; True if anything new was added (a repeat changes nothing)."""
        return self.add_many([(identity, reason, source)], at=at) > 0

    def add_many(
        self,
        entries: Iterable[tuple[Identity, str | None, str | None]],
        *,
        at: float | None = None,
    ) -> int:
        """Opt many out in one transaction: (identity, reason, source) each; returns how many
        identifiers were new. Identifiers already on the list keep their first entry."""
        when = time.time() if at is None else at
        rows: list[dict[str, Any]] = []
        for number, (identity, reason, source) in enumerate(entries):
            if not identity:
                raise ValueError("an opt-out needs a contact id, a phone number or an email")
            entry = uuid.uuid4().hex
            at_entry = when + number * 1e-6  # entries of one import keep their order
            rows += [
                {
                    "kind": kind,
                    "value": value,
                    "entry": entry,
                    "contact_id": identity.contact_id,
                    "phone": identity.phone,
                    "email": identity.email,
                    "reason": _cap(reason),
                    "source": _cap(source),
                    "opted_out_at": at_entry,
                }
                for kind, value in identity.identifiers()
            ]
        if not rows:
            return 0

        def write(conn: Connection) -> int:
            added = 0
            for start in range(0, len(rows), _BATCH):
                stmt = _insert_ignore(self.engine).values(rows[start : start + _BATCH])
                added += len(conn.execute(stmt.returning(TABLE.c.value)).all())
            return added

        return transaction(self.engine, write, write=True)

    def remove(self, identity: Identity) -> int:
        """Opt ``identity`` back in: every entry holding any of its identifiers goes; returns
        how many identifiers were removed."""
        pairs = identity.identifiers()
        if not pairs:
            raise ValueError("give a contact id, a phone number or an email to opt back in")
        c = TABLE.c

        def write(conn: Connection) -> int:
            match = sa.or_(*(sa.and_(c.kind == kind, c.value == value) for kind, value in pairs))
            entries: list[Any] = list(conn.execute(sa.select(c.entry).where(match)).scalars())
            if not entries:
                return 0
            result = conn.execute(sa.delete(TABLE).where(c.entry.in_(entries)))
            return int(result.rowcount or 0)

        return transaction(self.engine, write, write=True)

    def is_opted_out(self, identity: Identity) -> bool:
        return bool(
            transaction(
                self.engine, lambda conn: opted_out_keys(conn, [("x", identity)]), write=False
            )
        )

    def find(self, identity: Identity) -> list[OptOut]:
        """The entries holding any of ``identity``'s identifiers."""
        pairs = identity.identifiers()
        if not pairs:
            return []
        c = TABLE.c
        match = sa.or_(*(sa.and_(c.kind == kind, c.value == value) for kind, value in pairs))
        query = sa.select(TABLE).where(
            c.entry.in_(sa.select(c.entry).where(match).scalar_subquery())
        )
        rows = transaction(self.engine, lambda conn: list(conn.execute(query)), write=False)
        return list(_entries(rows))

    def entries(self) -> Iterator[OptOut]:
        """Every entry, oldest first (read in one snapshot)."""
        query = sa.select(TABLE).order_by(TABLE.c.opted_out_at, TABLE.c.entry)
        rows = transaction(self.engine, lambda conn: list(conn.execute(query)), write=False)
        return _entries(rows)

    def count(self) -> int:
        """How many entries (people, not identifiers) are on the list."""
        query = sa.select(sa.func.count(sa.distinct(TABLE.c.entry)))
        found = transaction(self.engine, lambda conn: conn.execute(query).scalar(), write=False)
        return int(found or 0)

    # ---- CSV ----

    def import_csv(
        self, source: TextIO, *, source_name: str = "import", region: str | None = None
    ) -> ImportReport:
        """Add every row of a CSV with a ``contact_id``, ``phone`` and/or ``email`` column
        (``reason`` optional). A row none of whose identifiers is readable is refused, naming
        its line; nothing is written when any row is refused."""
        reader = csv.DictReader(source)
        columns = {(name or "").strip().lower() for name in reader.fieldnames or []}
        if not columns & {"contact_id", "phone", "email"}:
            raise ValueError(
                "the CSV needs a header with at least one of contact_id, phone, email "
                f"(found: {', '.join(sorted(c for c in columns if c)) or 'no header'})"
            )
        entries: list[tuple[Identity, str | None, str | None]] = []
        bad: list[str] = []
        for line, row in enumerate(reader, start=2):
            fields = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            identity = Identity.of(
                fields.get("contact_id"), fields.get("phone"), fields.get("email"), region=region
            )
            if not identity:
                given = {k: fields[k] for k in ("contact_id", "phone", "email") if fields.get(k)}
                bad.append(f"line {line}: {given or 'empty'}")
                continue
            entries.append((identity, fields.get("reason") or "imported", source_name))
        if bad:
            raise ValueError(
                f"{len(bad)} row(s) have no readable contact id, phone or email (a phone needs "
                "+country code, or set AUTOTALK_PHONE_REGION / --region): "
                + "; ".join(bad[:5])
                + ("; ..." if len(bad) > 5 else "")
                + ". Nothing was imported."
            )
        added = self.add_many(entries)
        return ImportReport(rows=len(entries), identifiers_added=added)

    def export_csv(self, out: TextIO) -> int:
        """Write every entry as CSV (``EXPORT_FIELDS``); returns how many."""
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        count = 0
        for entry in self.entries():
            writer.writerow(entry.as_dict())
            count += 1
        return count


@dataclass(frozen=True)
class ImportReport:
    rows: int
    identifiers_added: int


def _entries(rows: Iterable[Any]) -> Iterator[OptOut]:
    seen: set[str] = set()
    for r in rows:
        if r.entry in seen:
            continue
        seen.add(r.entry)
        yield OptOut(
            r.entry, r.contact_id, r.phone, r.email, r.reason, r.source, float(r.opted_out_at)
        )


def _insert_ignore(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(TABLE).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(TABLE).on_conflict_do_nothing()
