"""A ledger as people read it: counts per state, and one row per contact as CSV or JSON."""

from __future__ import annotations

import csv
import json
from typing import TextIO

from autotalk_prefect.ledger.store import ClaimLedger

__all__ = ["EXPORT_FIELDS", "counts_text", "write_export"]

EXPORT_FIELDS = (
    "contact_id",
    "state",
    "message_id",
    "attempts",
    "reason",
    "claimed_at",
    "updated_at",
)


def counts_text(ledger: ClaimLedger) -> str:
    """``state: count`` lines and the total, for ``ledger show``."""
    counts = ledger.counts()
    width = max(len(state) for state in counts)
    lines = [f"ledger {ledger.describe()}"]
    lines += [f"  {state:<{width}}  {count}" for state, count in counts.items()]
    lines.append(f"  {'total':<{width}}  {sum(counts.values())}")
    return "\n".join(lines)


def write_export(ledger: ClaimLedger, fmt: str, out: TextIO) -> int:
    """Write every row (streamed) as ``csv`` or ``json`` (JSON lines); returns the row count."""
    if fmt not in ("csv", "json"):
        raise ValueError(f"format must be 'csv' or 'json', got {fmt!r}")
    count = 0
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for row in ledger.rows():
        record = row.as_dict()
        if writer is not None:
            writer.writerow(record)
        else:
            out.write(json.dumps(record) + "\n")
        count += 1
    return count
