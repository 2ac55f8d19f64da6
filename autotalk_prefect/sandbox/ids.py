"""Ids and timestamps in the contract's wire format (24-hex ids, ISO 8601 ms ``Z`` times)."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import datetime, timedelta, timezone


def now_iso() -> str:
    """The current UTC time as ``2026-11-25T10:00:00.000Z`` (milliseconds, ``Z``)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def normalize_timestamp(value: str) -> str:
    """Parse any ISO 8601 time and return it in the wire format, so strings compare in time order.

    Raises ``ValueError`` (naming the value) when ``value`` is not an ISO 8601 date-time. A time
    between two milliseconds is rounded up, so ``updatedAt >= cursor`` stays exact.
    """
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    millis, rest = divmod(parsed.microsecond, 1000)
    head = parsed.strftime("%Y-%m-%dT%H:%M:%S.")
    if rest:
        millis += 1
        if millis == 1000:  # 12:00:00.9995 -> 12:00:01.000
            bumped = parsed.replace(microsecond=0) + timedelta(seconds=1)
            return bumped.strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"
    return f"{head}{millis:03d}Z"


class IdFactory:
    """Deterministic 24-hex ids: a 14-hex prefix drawn from the seed, then a 10-hex counter.

    The same seed gives the same ids in the same order, so seeded contacts keep their ids across
    resets and runs; the counter makes every id unique within one sandbox.
    """

    def __init__(self, seed: int) -> None:
        self._prefix = f"{random.Random(f'ids:{seed}').getrandbits(56):014x}"
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self) -> str:
        """A fresh id (thread-safe)."""
        with self._lock:
            n = next(self._counter)
        return f"{self._prefix}{n:010x}"
