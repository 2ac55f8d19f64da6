"""A campaign's audience from a SQL query: each row is a contact and its template variables.

``Audience(query=..., url=..., contact_column="contact_id")`` (``outreach.engine``): the rows are streamed from the
warehouse (the same reader as ``sync_from_warehouse``: DuckDB by default, any SQLAlchemy URL) in
batches, so a 1,000,000-row audience plans in flat memory, and no record is fetched from
AutoTalk per contact. The rows then take the campaign's one send path, so the claim (and every
check it makes) applies to them as to any audience.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from autotalk_prefect.flows.warehouse_in.mapping import json_value
from autotalk_prefect.flows.warehouse_in.source import (
    DEFAULT_WAREHOUSE_URL,
    iter_query,
    resolve_url,
)

__all__ = ["iter_sql_audience"]


def iter_sql_audience(
    query: str, url: str | None, contact_column: str, *, keep_rows: bool = True
) -> Iterator[tuple[str, Any]]:
    """(contact id, the row's other columns as template variables) for each row with a contact.

    The first row is checked for ``contact_column`` before anything is yielded (so a wrong
    column stops the campaign before any send, naming the columns there are); rows whose
    contact id is empty are skipped.
    """
    column = contact_column
    rows = iter_query(resolve_url(url or DEFAULT_WAREHOUSE_URL), query)
    first = True
    for row in rows:
        if first:
            if column not in row:
                raise ValueError(
                    f"audience.contact_column {column!r} is not a column of the query "
                    f"(its columns: {list(row)}): nothing was sent"
                )
            first = False
        contact = row.get(column)
        if contact is None or not str(contact).strip():
            continue
        record = {k: json_value(v) for k, v in row.items()} if keep_rows else {}
        yield str(contact).strip(), record
